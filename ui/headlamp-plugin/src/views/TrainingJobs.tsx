import {
  Link,
  NameValueTable,
  SectionBox,
  SimpleTable,
} from '@kinvolk/headlamp-plugin/lib/CommonComponents';
import { Box, Typography } from '@mui/material';
import React from 'react';
import { useParams } from 'react-router-dom';
import { CartesianGrid, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import { setSuspended } from '../actions';
import { useEvents, useJobs, useKilnItem, useKilnList, usePods, useServices } from '../data';
import { appendMetrics, isSuspended, MetricSample, PodLike, shapeText, workerRows } from '../logic';
import { LABEL_TRAININGJOB, TrainingJob } from '../types';
import {
  ActionButton,
  age,
  ConditionsSection,
  ErrorState,
  EventLike,
  EventsSection,
  Guard,
  ObjectLink,
  StateLabel,
} from './common';

const how = (
  <>
    Create one with <code>kubectl kiln train</code> or <code>kubectl apply -f</code> a TrainingJob
    manifest (see examples/ in the Kiln repository).
  </>
);

export function TrainingJobList() {
  const { items, error } = useKilnList<TrainingJob>('trainingjobs');
  return (
    <SectionBox title="Training jobs">
      <Guard items={items} error={error} what="TrainingJobs" how={how}>
        {tjs => (
          <SimpleTable
            columns={[
              {
                label: 'Name',
                getter: (t: TrainingJob) => (
                  <ObjectLink route="kiln-trainingjob" meta={t.metadata} />
                ),
              },
              { label: 'Namespace', getter: (t: TrainingJob) => t.metadata.namespace },
              {
                label: 'State',
                getter: (t: TrainingJob) => <StateLabel state={t.status?.state} />,
              },
              { label: 'Shape', getter: (t: TrainingJob) => t.status?.shape?.summary ?? '-' },
              { label: 'Restarts', getter: (t: TrainingJob) => t.status?.restarts ?? 0 },
              { label: 'Age', getter: (t: TrainingJob) => age(t.metadata.creationTimestamp) },
            ]}
            data={tjs}
          />
        )}
      </Guard>
    </SectionBox>
  );
}

export function TrainingJobDetailRoute() {
  const { namespace, name } = useParams<{ namespace: string; name: string }>();
  return <TrainingJobDetail namespace={namespace} name={name} />;
}

export function TrainingJobDetail({ namespace, name }: { namespace: string; name: string }) {
  const { item, error } = useKilnItem<TrainingJob>('trainingjobs', name, namespace);
  if (error) {
    return (
      <SectionBox title={`TrainingJob ${namespace}/${name}`}>
        <ErrorState error={error} what="TrainingJobs" />
      </SectionBox>
    );
  }
  if (!item) {
    return (
      <SectionBox title={`TrainingJob ${namespace}/${name}`}>
        <Typography>Loading…</Typography>
      </SectionBox>
    );
  }
  return <TrainingJobView tj={item} />;
}

function TrainingJobView({ tj }: { tj: TrainingJob }) {
  const ns = tj.metadata.namespace ?? 'default';
  const name = tj.metadata.name;
  const st = tj.status ?? {};
  const suspended = isSuspended(tj);
  return (
    <>
      <SectionBox title={`TrainingJob ${ns}/${name}`}>
        <Box sx={{ mb: 1 }}>
          <ActionButton
            label={suspended ? 'Resume' : 'Suspend'}
            disabled={st.state === 'Succeeded' || st.state === 'Failed'}
            run={() => setSuspended(ns, name, !suspended)}
          />
        </Box>
        <NameValueTable
          rows={[
            { name: 'State', value: <StateLabel state={st.state} /> },
            { name: 'Shape', value: <span data-testid="kiln-shape">{shapeText(tj)}</span> },
            { name: 'Image', value: tj.spec.image },
            { name: 'Framework', value: tj.spec.framework ?? 'none' },
            { name: 'Attempt', value: String(st.attempt ?? 0) },
            { name: 'Restarts', value: String(st.restarts ?? 0) },
            {
              name: 'Workers',
              value: `${st.ready ?? 0} ready, ${st.active ?? 0} active, ${
                st.succeeded ?? 0
              } succeeded, ${st.failed ?? 0} failed`,
            },
            {
              name: 'Last failure',
              value: st.lastFailure
                ? `${st.lastFailure.reason ?? ''}: ${st.lastFailure.message ?? ''}`
                : '-',
            },
            { name: 'Latest checkpoint', value: st.latestCheckpoint ?? '-' },
          ]}
        />
      </SectionBox>
      <ConditionsSection conditions={st.conditions} />
      <Workers namespace={ns} name={name} />
      <Children namespace={ns} name={name} jobName={st.jobName} />
      <MetricsChart tj={tj} />
      <TrainingJobEvents namespace={ns} name={name} />
    </>
  );
}

function Workers({ namespace, name }: { namespace: string; name: string }) {
  const { items, error } = usePods<PodLike>(namespace, `${LABEL_TRAININGJOB}=${name}`);
  return (
    <SectionBox title="Workers">
      <Guard
        items={items}
        error={error}
        what="worker pods"
        how="Workers appear once Kiln admits the job and the Job controller creates its pods; a queued job waits for GPUs (see its conditions)."
      >
        {pods => (
          <SimpleTable
            columns={[
              { label: 'Rank', getter: r => (r.rank === undefined ? '-' : r.rank) },
              {
                label: 'Pod',
                getter: r => (
                  <Link routeName="pod" params={{ namespace, name: r.pod }}>
                    {r.pod}
                  </Link>
                ),
              },
              {
                label: 'Node',
                getter: r =>
                  r.node.startsWith('(') ? (
                    r.node
                  ) : (
                    <Link routeName="node" params={{ name: r.node }}>
                      {r.node}
                    </Link>
                  ),
              },
              { label: 'State', getter: r => r.state },
              { label: 'Restarts', getter: r => r.restarts },
            ]}
            data={workerRows(pods)}
          />
        )}
      </Guard>
    </SectionBox>
  );
}

interface Named {
  metadata: { name: string };
}

function Children({
  namespace,
  name,
  jobName,
}: {
  namespace: string;
  name: string;
  jobName?: string;
}) {
  const selector = `${LABEL_TRAININGJOB}=${name}`;
  const jobs = useJobs<Named>(namespace, selector);
  const services = useServices<Named>(namespace, selector);
  const rows: { kind: string; link: React.ReactNode }[] = [];
  for (const j of jobs.items ?? []) {
    rows.push({
      kind: 'Job',
      link: (
        <Link routeName="job" params={{ namespace, name: j.metadata.name }}>
          {j.metadata.name}
        </Link>
      ),
    });
  }
  if (jobName && !(jobs.items ?? []).some(j => j.metadata.name === jobName)) {
    rows.push({
      kind: 'Job',
      link: (
        <Link routeName="job" params={{ namespace, name: jobName }}>
          {jobName}
        </Link>
      ),
    });
  }
  for (const s of services.items ?? []) {
    rows.push({
      kind: 'Service',
      link: (
        <Link routeName="service" params={{ namespace, name: s.metadata.name }}>
          {s.metadata.name}
        </Link>
      ),
    });
  }
  return (
    <SectionBox title="Kubernetes objects">
      <Guard
        items={jobs.error || services.error ? null : rows}
        error={jobs.error || services.error}
        what="Jobs or Services"
        how="Kiln creates an indexed Job and a headless Service when it admits the job."
      >
        {r => (
          <SimpleTable
            columns={[
              { label: 'Kind', getter: (x: (typeof rows)[0]) => x.kind },
              { label: 'Name', getter: (x: (typeof rows)[0]) => x.link },
            ]}
            data={r}
          />
        )}
      </Guard>
    </SectionBox>
  );
}

const palette = ['#1976d2', '#d32f2f', '#388e3c', '#f57c00', '#7b1fa2', '#0097a7'];

// MetricsChart plots the metrics the job reports in status.metrics. The API keeps only the
// latest values, so the chart shows what this page has seen since it opened.
export function MetricsChart({ tj, now = Date.now }: { tj: TrainingJob; now?: () => number }) {
  const [history, setHistory] = React.useState<MetricSample[]>([]);
  const metrics = tj.status?.metrics;
  React.useEffect(() => {
    setHistory(h => appendMetrics(h, metrics, now()));
  }, [JSON.stringify(metrics ?? {})]);
  const names = Array.from(new Set(history.flatMap(s => Object.keys(s.values)))).sort();
  const data = history.map(s => ({ time: new Date(s.time).toLocaleTimeString(), ...s.values }));
  return (
    <SectionBox title="Metrics">
      {names.length === 0 ? (
        <Typography data-testid="kiln-empty" variant="body2" color="text.secondary" sx={{ p: 2 }}>
          No metrics reported yet. Training code reports them by printing lines such as
          <code> kiln-metric loss=0.42</code>; the latest values appear here and are plotted as they
          change while this page is open.
        </Typography>
      ) : (
        <>
          <LineChart width={720} height={260} data={data}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="time" />
            <YAxis />
            <Tooltip />
            <Legend />
            {names.map((n, i) => (
              <Line
                key={n}
                type="monotone"
                dataKey={n}
                stroke={palette[i % palette.length]}
                isAnimationActive={false}
              />
            ))}
          </LineChart>
          <Typography variant="body2" data-testid="kiln-latest-metrics">
            Latest:{' '}
            {Object.entries(metrics ?? {})
              .map(([k, v]) => `${k}=${v}`)
              .join(', ')}
          </Typography>
        </>
      )}
    </SectionBox>
  );
}

function TrainingJobEvents({ namespace, name }: { namespace: string; name: string }) {
  const { items, error } = useEvents<EventLike>(namespace, 'TrainingJob', name);
  return <EventsSection events={items} error={error} />;
}
