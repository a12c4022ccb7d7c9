import {
  NameValueTable,
  SectionBox,
  SimpleTable,
} from '@kinvolk/headlamp-plugin/lib/CommonComponents';
import { Box, Typography } from '@mui/material';
import React from 'react';
import { useParams } from 'react-router-dom';
import { promote, rollback } from '../actions';
import { useKilnItem, useKilnList } from '../data';
import { trafficSplit } from '../logic';
import { ModelServer, TrackStatus } from '../types';
import { ActionButton, age, ConditionsSection, ErrorState, Guard, ObjectLink } from './common';

const how = (
  <>
    Serve a model with <code>kubectl kiln serve</code> or <code>kubectl apply -f</code> a
    ModelServer manifest (see examples/ in the Kiln repository).
  </>
);

function ready(ms: ModelServer): string {
  const c = ms.status?.conditions?.find(c => c.type === 'Ready');
  return c ? (c.status === 'True' ? 'Ready' : c.reason ?? 'Not ready') : 'Pending';
}

export function ModelServerList() {
  const { items, error } = useKilnList<ModelServer>('modelservers');
  return (
    <SectionBox title="Model servers">
      <Guard items={items} error={error} what="ModelServers" how={how}>
        {list => (
          <SimpleTable
            columns={[
              {
                label: 'Name',
                getter: (m: ModelServer) => (
                  <ObjectLink route="kiln-modelserver" meta={m.metadata} />
                ),
              },
              { label: 'Namespace', getter: (m: ModelServer) => m.metadata.namespace },
              { label: 'Ready', getter: (m: ModelServer) => ready(m) },
              { label: 'URL', getter: (m: ModelServer) => m.status?.url ?? '-' },
              {
                label: 'Canary',
                getter: (m: ModelServer) => (m.spec.canary ? `${trafficSplit(m).canary}%` : '-'),
              },
              { label: 'Age', getter: (m: ModelServer) => age(m.metadata.creationTimestamp) },
            ]}
            data={list}
          />
        )}
      </Guard>
    </SectionBox>
  );
}

// TrafficBar shows the split between the stable and canary versions.
export function TrafficBar({ stable, canary }: { stable: number; canary: number }) {
  return (
    <Box
      role="img"
      aria-label={`traffic: stable ${stable}%, canary ${canary}%`}
      sx={{
        display: 'flex',
        width: 480,
        height: 28,
        borderRadius: 1,
        overflow: 'hidden',
        border: '1px solid #ccc',
      }}
    >
      {stable > 0 && (
        <Box
          sx={{
            width: `${stable}%`,
            bgcolor: '#1976d2',
            color: '#fff',
            px: 1,
            fontSize: 13,
            lineHeight: '28px',
          }}
        >
          stable {stable}%
        </Box>
      )}
      {canary > 0 && (
        <Box
          sx={{
            width: `${canary}%`,
            bgcolor: '#f57c00',
            color: '#fff',
            px: 1,
            fontSize: 13,
            lineHeight: '28px',
          }}
        >
          canary {canary}%
        </Box>
      )}
    </Box>
  );
}

export function ModelServerDetailRoute() {
  const { namespace, name } = useParams<{ namespace: string; name: string }>();
  return <ModelServerDetail namespace={namespace} name={name} />;
}

function track(t?: TrackStatus): string {
  return t ? `${t.readyReplicas}/${t.replicas} ready${t.modelURI ? `, ${t.modelURI}` : ''}` : '-';
}

export function ModelServerDetail({ namespace, name }: { namespace: string; name: string }) {
  const { item: ms, error } = useKilnItem<ModelServer>('modelservers', name, namespace);
  if (error || !ms) {
    return (
      <SectionBox title={`ModelServer ${namespace}/${name}`}>
        {error ? (
          <ErrorState error={error} what="ModelServers" />
        ) : (
          <Typography>Loading…</Typography>
        )}
      </SectionBox>
    );
  }
  const split = trafficSplit(ms);
  const st = ms.status ?? {};
  return (
    <>
      <SectionBox title={`ModelServer ${namespace}/${name}`}>
        <Box sx={{ mb: 1 }}>
          <ActionButton label="Promote canary" disabled={!ms.spec.canary} run={() => promote(ms)} />
          <ActionButton
            label="Roll back canary"
            disabled={!ms.spec.canary}
            run={() => rollback(ms)}
          />
        </Box>
        <NameValueTable
          rows={[
            { name: 'URL', value: st.url ?? 'not serving yet' },
            { name: 'Model', value: ms.spec.model.uri },
            { name: 'Runtime', value: ms.spec.runtime.preset ?? ms.spec.runtime.image ?? '-' },
            {
              name: 'Replicas',
              value: `min ${ms.spec.replicas?.min ?? 1}, max ${
                ms.spec.replicas?.max ?? ms.spec.replicas?.min ?? 1
              }`,
            },
            { name: 'Stable', value: track(st.stable) },
            {
              name: 'Canary',
              value: ms.spec.canary
                ? `${ms.spec.canary.model?.uri ?? ms.spec.model.uri}; ${track(st.canary)}`
                : 'none',
            },
            {
              name: 'Traffic',
              value: (
                <>
                  <TrafficBar stable={split.stable} canary={split.canary} />
                  <Typography variant="caption">
                    {split.observed
                      ? `as routed (${st.traffic?.method ?? ''})`
                      : 'as asked; not yet reported by the controller'}
                    {st.traffic?.message ? `: ${st.traffic.message}` : ''}
                  </Typography>
                </>
              ),
            },
          ]}
        />
      </SectionBox>
      <ConditionsSection conditions={st.conditions} />
    </>
  );
}
