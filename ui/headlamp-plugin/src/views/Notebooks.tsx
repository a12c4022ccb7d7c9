import {
  NameValueTable,
  SectionBox,
  SimpleTable,
} from '@kinvolk/headlamp-plugin/lib/CommonComponents';
import { Box, Typography } from '@mui/material';
import React from 'react';
import { useParams } from 'react-router-dom';
import { setNotebookStopped } from '../actions';
import { useKilnItem, useKilnList } from '../data';
import { Notebook } from '../types';
import {
  ActionButton,
  age,
  ConditionsSection,
  ErrorState,
  Guard,
  ObjectLink,
  StateLabel,
} from './common';

const how = (
  <>
    Start one with <code>kubectl apply -f</code> a Notebook manifest (see examples/ in the Kiln
    repository).
  </>
);

export function NotebookList() {
  const { items, error } = useKilnList<Notebook>('notebooks');
  return (
    <SectionBox title="Notebooks">
      <Guard items={items} error={error} what="Notebooks" how={how}>
        {list => (
          <SimpleTable
            columns={[
              {
                label: 'Name',
                getter: (n: Notebook) => <ObjectLink route="kiln-notebook" meta={n.metadata} />,
              },
              { label: 'Namespace', getter: (n: Notebook) => n.metadata.namespace },
              { label: 'State', getter: (n: Notebook) => <StateLabel state={n.status?.state} /> },
              { label: 'GPUs', getter: (n: Notebook) => n.spec.resources?.gpus ?? 0 },
              { label: 'Age', getter: (n: Notebook) => age(n.metadata.creationTimestamp) },
            ]}
            data={list}
          />
        )}
      </Guard>
    </SectionBox>
  );
}

export function NotebookDetailRoute() {
  const { namespace, name } = useParams<{ namespace: string; name: string }>();
  return <NotebookDetail namespace={namespace} name={name} />;
}

export function NotebookDetail({ namespace, name }: { namespace: string; name: string }) {
  const { item: nb, error } = useKilnItem<Notebook>('notebooks', name, namespace);
  if (error || !nb) {
    return (
      <SectionBox title={`Notebook ${namespace}/${name}`}>
        {error ? <ErrorState error={error} what="Notebooks" /> : <Typography>Loading…</Typography>}
      </SectionBox>
    );
  }
  const stopped = nb.spec.stopped === true;
  return (
    <>
      <SectionBox title={`Notebook ${namespace}/${name}`}>
        <Box sx={{ mb: 1 }}>
          <ActionButton
            label={stopped ? 'Start' : 'Stop'}
            run={() => setNotebookStopped(namespace, name, !stopped)}
          />
        </Box>
        <NameValueTable
          rows={[
            { name: 'State', value: <StateLabel state={nb.status?.state} /> },
            { name: 'URL', value: nb.status?.url ?? '-' },
            { name: 'Image', value: nb.spec.image ?? 'default' },
            { name: 'GPUs', value: String(nb.spec.resources?.gpus ?? 0) },
            {
              name: 'Last activity',
              value: nb.status?.lastActivity ? `${age(nb.status.lastActivity)} ago` : '-',
            },
          ]}
        />
      </SectionBox>
      <ConditionsSection conditions={nb.status?.conditions} />
    </>
  );
}
