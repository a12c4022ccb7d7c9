// Pure functions behind the views: what they show is computed here, from plain API objects,
// so it can be tested without a browser or a cluster.
import {
  ANNOTATION_COMPLETION_INDEX,
  ANNOTATION_TRIAL_PARAMETERS,
  ANNOTATION_TRIAL_STOPPED,
  DEFAULT_GPU_RESOURCE,
  LABEL_TRIAL_INDEX,
  POOL_LABELS,
  Sweep,
  TrainingJob,
} from './types';

// shapeText is "2 nodes × 4 processes per node, 8 GPUs" or why there is no shape yet.
export function shapeText(tj: TrainingJob): string {
  const s = tj.status?.shape;
  if (!s) {
    return 'not chosen yet';
  }
  const gpus = s.gpusPerNode ? s.gpusPerNode * s.nodes : 0;
  let out = `${s.nodes} node${s.nodes === 1 ? '' : 's'} × ${s.processesPerNode} process${
    s.processesPerNode === 1 ? '' : 'es'
  } per node`;
  out += gpus ? `, ${gpus} GPU${gpus === 1 ? '' : 's'} (${s.gpusPerNode} per node)` : ', no GPUs';
  if (s.pool) {
    out += ` in pool ${s.pool}`;
  }
  return out;
}

export function isSuspended(tj: TrainingJob): boolean {
  return tj.spec?.suspend === true;
}

// A pod as far as the worker table needs it.
export interface PodLike {
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
  };
  spec?: {
    nodeName?: string;
    containers?: { resources?: { requests?: Record<string, string> } }[];
  };
  status?: {
    phase?: string;
    reason?: string;
    containerStatuses?: {
      restartCount?: number;
      state?: { waiting?: { reason?: string }; terminated?: { reason?: string } };
    }[];
  };
}

export interface WorkerRow {
  rank: number | undefined;
  pod: string;
  node: string;
  state: string;
  restarts: number;
}

// workerRows is one row per worker pod, by rank: the Job's completion index.
export function workerRows(pods: PodLike[]): WorkerRow[] {
  const rows = pods.map(p => {
    const idx = p.metadata.annotations?.[ANNOTATION_COMPLETION_INDEX];
    const cs = p.status?.containerStatuses ?? [];
    const waiting = cs.find(c => c.state?.waiting?.reason)?.state?.waiting?.reason;
    return {
      rank: idx === undefined || idx === '' || isNaN(Number(idx)) ? undefined : Number(idx),
      pod: p.metadata.name,
      node: p.spec?.nodeName || '(not scheduled)',
      state: waiting || p.status?.reason || p.status?.phase || 'Unknown',
      restarts: cs.reduce((n, c) => n + (c.restartCount ?? 0), 0),
    };
  });
  return rows.sort(
    (a, b) => (a.rank ?? Infinity) - (b.rank ?? Infinity) || a.pod.localeCompare(b.pod)
  );
}

export interface MetricSample {
  time: number;
  values: Record<string, number>;
}

// appendMetrics adds the TrainingJob's latest reported metrics to history when they changed,
// keeping at most max samples. The API keeps only the latest values, so the history is what
// this page has seen since it was opened.
export function appendMetrics(
  history: MetricSample[],
  metrics: Record<string, string> | undefined,
  now: number,
  max = 200
): MetricSample[] {
  const values: Record<string, number> = {};
  for (const [k, v] of Object.entries(metrics ?? {})) {
    const n = parseFloat(v);
    if (!isNaN(n)) {
      values[k] = n;
    }
  }
  if (Object.keys(values).length === 0) {
    return history;
  }
  const last = history[history.length - 1];
  if (last && sameValues(last.values, values)) {
    return history;
  }
  return [...history, { time: now, values }].slice(-max);
}

function sameValues(a: Record<string, number>, b: Record<string, number>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every(k => a[k] === b[k]);
}

export interface TrialRow {
  name: string;
  index: number;
  state: string;
  parameters: Record<string, string>;
  objective: number | undefined;
  stopped?: string;
  best: boolean;
}

// trialRows lists a Sweep's trials sorted by objective, best first; trials without a value last.
export function trialRows(sweep: Sweep, trials: TrainingJob[]): TrialRow[] {
  const metric = sweep.spec.objective.metric;
  const maximize = sweep.spec.objective.direction === 'maximize';
  const best = sweep.status?.bestTrial?.name;
  const rows = trials.map(t => {
    let parameters: Record<string, string> = {};
    try {
      parameters = JSON.parse(t.metadata.annotations?.[ANNOTATION_TRIAL_PARAMETERS] ?? '{}');
    } catch {
      parameters = {};
    }
    const raw = t.status?.metrics?.[metric];
    const v = raw === undefined ? NaN : parseFloat(raw);
    return {
      name: t.metadata.name,
      index: Number(t.metadata.labels?.[LABEL_TRIAL_INDEX] ?? NaN),
      state: t.status?.state ?? 'Pending',
      parameters,
      objective: isNaN(v) ? undefined : v,
      stopped: t.metadata.annotations?.[ANNOTATION_TRIAL_STOPPED],
      best: t.metadata.name === best,
    };
  });
  return rows.sort((a, b) => {
    if (a.objective === undefined || b.objective === undefined) {
      return (
        (a.objective === undefined ? 1 : 0) - (b.objective === undefined ? 1 : 0) ||
        a.index - b.index
      );
    }
    return maximize ? b.objective - a.objective : a.objective - b.objective;
  });
}

// A node as far as the cluster view needs it.
export interface NodeLike {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { unschedulable?: boolean };
  status?: { allocatable?: Record<string, string> };
}

export interface PoolRow {
  pool: string;
  nodes: number;
  gpusPerNode: number;
  capacity: number;
  used: number;
}

export function poolOf(n: NodeLike): string {
  for (const l of POOL_LABELS) {
    const v = n.metadata.labels?.[l];
    if (v) {
      return v;
    }
  }
  return 'unlabelled';
}

// poolRows groups schedulable GPU nodes by pool and GPUs per node, as `kubectl kiln doctor`
// does, and counts the GPUs that running or pending pods on them request.
export function poolRows(
  nodes: NodeLike[],
  pods: PodLike[],
  gpuResource = DEFAULT_GPU_RESOURCE
): PoolRow[] {
  const used = new Map<string, number>();
  for (const p of pods) {
    const phase = p.status?.phase;
    if (!p.spec?.nodeName || phase === 'Succeeded' || phase === 'Failed') {
      continue;
    }
    const req = (p.spec.containers ?? []).reduce(
      (n, c) => n + (parseInt(c.resources?.requests?.[gpuResource] ?? '0', 10) || 0),
      0
    );
    used.set(p.spec.nodeName, (used.get(p.spec.nodeName) ?? 0) + req);
  }
  const rows = new Map<string, PoolRow>();
  for (const n of nodes) {
    const gpus = parseInt(n.status?.allocatable?.[gpuResource] ?? '0', 10) || 0;
    if (n.spec?.unschedulable || gpus <= 0) {
      continue;
    }
    const pool = poolOf(n);
    const key = `${pool}/${gpus}`;
    const r = rows.get(key) ?? { pool, nodes: 0, gpusPerNode: gpus, capacity: 0, used: 0 };
    r.nodes++;
    r.capacity += gpus;
    r.used += Math.min(gpus, used.get(n.metadata.name) ?? 0);
    rows.set(key, r);
  }
  return [...rows.values()].sort(
    (a, b) => b.gpusPerNode - a.gpusPerNode || a.pool.localeCompare(b.pool)
  );
}

// trafficSplit is the share of requests each version gets: the observed split when the
// controller reports one, otherwise the one asked for.
export function trafficSplit(ms: {
  spec: { canary?: { trafficPercent: number } };
  status?: { traffic?: { stablePercent: number; canaryPercent: number } };
}): { stable: number; canary: number; observed: boolean } {
  const t = ms.status?.traffic;
  if (t) {
    return { stable: t.stablePercent, canary: t.canaryPercent, observed: true };
  }
  const c = ms.spec.canary?.trafficPercent ?? 0;
  return { stable: 100 - c, canary: c, observed: false };
}
