import {
  NameValueTable,
  SectionBox,
  SimpleTable,
} from '@kinvolk/headlamp-plugin/lib/CommonComponents';
import { Box, MenuItem, TextField, Typography } from '@mui/material';
import React from 'react';
import { useParams } from 'react-router-dom';
import { CartesianGrid, Scatter, ScatterChart, Tooltip, XAxis, YAxis } from 'recharts';
import { useKilnItem, useKilnList, useLabelled } from '../data';
import { TrialRow, trialRows } from '../logic';
import { LABEL_SWEEP, Sweep, TrainingJob } from '../types';
import { age, ConditionsSection, ErrorState, Guard, ObjectLink, StateLabel } from './common';

const how = (
  <>
    Create one with <code>kubectl apply -f</code> a Sweep manifest: parameters to search, an
    objective metric and a trial template (see examples/ in the Kiln repository).
  </>
);

export function SweepList() {
  const { items, error } = useKilnList<Sweep>('sweeps');
  return (
    <SectionBox title="Sweeps">
      <Guard items={items} error={error} what="Sweeps" how={how}>
        {sweeps => (
          <SimpleTable
            columns={[
              {
                label: 'Name',
                getter: (s: Sweep) => <ObjectLink route="kiln-sweep" meta={s.metadata} />,
              },
              { label: 'Namespace', getter: (s: Sweep) => s.metadata.namespace },
              { label: 'State', getter: (s: Sweep) => <StateLabel state={s.status?.state} /> },
              {
                label: 'Trials',
                getter: (s: Sweep) => `${s.status?.trials ?? 0}/${s.spec.maxTrials}`,
              },
              {
                label: 'Objective',
                getter: (s: Sweep) => `${s.spec.objective.direction} ${s.spec.objective.metric}`,
              },
              { label: 'Best', getter: (s: Sweep) => s.status?.bestTrial?.value ?? '-' },
              { label: 'Age', getter: (s: Sweep) => age(s.metadata.creationTimestamp) },
            ]}
            data={sweeps}
          />
        )}
      </Guard>
    </SectionBox>
  );
}

export function SweepDetailRoute() {
  const { namespace, name } = useParams<{ namespace: string; name: string }>();
  return <SweepDetail namespace={namespace} name={name} />;
}

export function SweepDetail({ namespace, name }: { namespace: string; name: string }) {
  const { item, error } = useKilnItem<Sweep>('sweeps', name, namespace);
  if (error || !item) {
    return (
      <SectionBox title={`Sweep ${namespace}/${name}`}>
        {error ? <ErrorState error={error} what="Sweeps" /> : <Typography>Loading…</Typography>}
      </SectionBox>
    );
  }
  return <SweepView sweep={item} />;
}

function SweepView({ sweep }: { sweep: Sweep }) {
  const ns = sweep.metadata.namespace ?? 'default';
  const st = sweep.status ?? {};
  const trials = useLabelled<TrainingJob>(
    'trainingjobs',
    ns,
    `${LABEL_SWEEP}=${sweep.metadata.name}`
  );
  return (
    <>
      <SectionBox title={`Sweep ${ns}/${sweep.metadata.name}`}>
        <NameValueTable
          rows={[
            { name: 'State', value: <StateLabel state={st.state} /> },
            {
              name: 'Objective',
              value: `${sweep.spec.objective.direction} ${sweep.spec.objective.metric}`,
            },
            { name: 'Algorithm', value: sweep.spec.algorithm ?? 'random' },
            {
              name: 'Trials',
              value: `${st.trials ?? 0} of ${sweep.spec.maxTrials}: ${st.running ?? 0} running, ${
                st.succeeded ?? 0
              } succeeded, ${st.failed ?? 0} failed, ${st.stopped ?? 0} stopped early`,
            },
            {
              name: 'Best trial',
              value: st.bestTrial
                ? `#${st.bestTrial.index} ${st.bestTrial.name}: ${sweep.spec.objective.metric}=${st.bestTrial.value}`
                : 'none yet',
            },
          ]}
        />
      </SectionBox>
      <ConditionsSection conditions={st.conditions} />
      <SectionBox title="Trials">
        <Guard
          items={trials.items}
          error={trials.error}
          what="trials"
          how="The Sweep creates trial TrainingJobs, up to its parallelism at a time, once the controller sees it."
        >
          {items => <Trials sweep={sweep} rows={trialRows(sweep, items)} />}
        </Guard>
      </SectionBox>
    </>
  );
}

export function Trials({ sweep, rows }: { sweep: Sweep; rows: TrialRow[] }) {
  const params = sweep.spec.parameters.map(p => p.name);
  const [param, setParam] = React.useState(params[0] ?? '');
  const metric = sweep.spec.objective.metric;
  const scored = rows.filter(r => r.objective !== undefined);
  const byTrial = scored.map(r => ({ x: r.index, y: r.objective, name: r.name }));
  const byParam = scored
    .map(r => ({ x: parseFloat(r.parameters[param] ?? ''), y: r.objective, name: r.name }))
    .filter(p => !isNaN(p.x));
  return (
    <>
      <SimpleTable
        columns={[
          { label: '#', getter: (r: TrialRow) => (isNaN(r.index) ? '-' : r.index) },
          {
            label: 'Trial',
            getter: (r: TrialRow) => (
              <span
                data-testid={r.best ? 'kiln-best-trial' : undefined}
                style={r.best ? { fontWeight: 700 } : undefined}
              >
                {r.best ? '★ ' : ''}
                <ObjectLink
                  route="kiln-trainingjob"
                  meta={{ name: r.name, namespace: sweep.metadata.namespace }}
                />
              </span>
            ),
          },
          {
            label: 'State',
            getter: (r: TrialRow) => (r.stopped ? `stopped early: ${r.stopped}` : r.state),
          },
          ...params.map(p => ({ label: p, getter: (r: TrialRow) => r.parameters[p] ?? '' })),
          {
            label: metric,
            getter: (r: TrialRow) => (r.objective === undefined ? '-' : r.objective),
          },
        ]}
        data={rows}
      />
      {scored.length === 0 ? (
        <Typography variant="body2" color="text.secondary" sx={{ p: 2 }}>
          No trial has reported {metric} yet; the plots appear with the first value.
        </Typography>
      ) : (
        <Box sx={{ display: 'flex', flexWrap: 'wrap', gap: 2, mt: 2 }}>
          <Box>
            <Typography variant="subtitle2">{metric} by trial number</Typography>
            <ScatterChart width={420} height={260}>
              <CartesianGrid />
              <XAxis type="number" dataKey="x" name="trial" />
              <YAxis type="number" dataKey="y" name={metric} />
              <Tooltip />
              <Scatter data={byTrial} fill="#1976d2" isAnimationActive={false} />
            </ScatterChart>
          </Box>
          <Box>
            <TextField
              select
              size="small"
              label="Parameter"
              value={param}
              onChange={e => setParam(e.target.value)}
            >
              {params.map(p => (
                <MenuItem key={p} value={p}>
                  {p}
                </MenuItem>
              ))}
            </TextField>
            <ScatterChart width={420} height={260}>
              <CartesianGrid />
              <XAxis type="number" dataKey="x" name={param} />
              <YAxis type="number" dataKey="y" name={metric} />
              <Tooltip />
              <Scatter data={byParam} fill="#388e3c" isAnimationActive={false} />
            </ScatterChart>
          </Box>
        </Box>
      )}
    </>
  );
}
