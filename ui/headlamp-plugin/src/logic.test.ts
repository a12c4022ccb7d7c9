import {
  appendMetrics,
  PodLike,
  poolRows,
  shapeText,
  trafficSplit,
  trialRows,
  workerRows,
} from './logic';
import { Sweep, TrainingJob } from './types';

function tj(
  status: TrainingJob['status'],
  extra: Partial<TrainingJob['metadata']> = {}
): TrainingJob {
  return { metadata: { name: 'j', namespace: 'ml', ...extra }, spec: { image: 'i' }, status };
}

describe('shapeText', () => {
  it.each([
    ['no shape yet', tj({}), 'not chosen yet'],
    [
      'multi-node GPU shape',
      tj({ shape: { nodes: 2, processesPerNode: 8, gpusPerNode: 8, pool: 'a100' } }),
      '2 nodes × 8 processes per node, 16 GPUs (8 per node) in pool a100',
    ],
    [
      'one CPU process',
      tj({ shape: { nodes: 1, processesPerNode: 1 } }),
      '1 node × 1 process per node, no GPUs',
    ],
  ])('%s', (_, job, want) => {
    expect(shapeText(job)).toBe(want);
  });
});

describe('workerRows', () => {
  const pod = (name: string, idx: string | undefined, extra: Partial<PodLike> = {}): PodLike => ({
    metadata: {
      name,
      annotations: idx === undefined ? {} : { 'batch.kubernetes.io/job-completion-index': idx },
    },
    spec: { nodeName: `node-${name}` },
    status: { phase: 'Running', containerStatuses: [{ restartCount: 1 }, { restartCount: 2 }] },
    ...extra,
  });
  it('orders by rank, sums restarts, prefers a waiting reason, marks unscheduled pods', () => {
    const rows = workerRows([
      pod('b', '1'),
      pod('x', undefined),
      pod('a', '0', {
        spec: {},
        status: {
          phase: 'Pending',
          containerStatuses: [{ state: { waiting: { reason: 'ImagePullBackOff' } } }],
        },
      }),
    ]);
    expect(rows).toEqual([
      { rank: 0, pod: 'a', node: '(not scheduled)', state: 'ImagePullBackOff', restarts: 0 },
      { rank: 1, pod: 'b', node: 'node-b', state: 'Running', restarts: 3 },
      { rank: undefined, pod: 'x', node: 'node-x', state: 'Running', restarts: 3 },
    ]);
  });
});

describe('appendMetrics', () => {
  it.each([
    ['first sample', [], { loss: '1.5' }, 1],
    ['unchanged values are not repeated', [{ time: 0, values: { loss: 1.5 } }], { loss: '1.5' }, 1],
    ['changed values add a sample', [{ time: 0, values: { loss: 1.5 } }], { loss: '1.2' }, 2],
    ['non-numbers are ignored', [], { phase: 'warmup' }, 0],
    ['nothing reported', [], undefined, 0],
  ])('%s', (_, history, metrics, want) => {
    expect(appendMetrics(history, metrics, 1)).toHaveLength(want);
  });
  it('keeps at most max samples', () => {
    let h = appendMetrics([], { loss: '0' }, 0, 3);
    for (let i = 1; i < 10; i++) {
      h = appendMetrics(h, { loss: String(i) }, i, 3);
    }
    expect(h.map(s => s.values.loss)).toEqual([7, 8, 9]);
  });
});

describe('trialRows', () => {
  const sweep = (direction: 'minimize' | 'maximize'): Sweep => ({
    metadata: { name: 's', namespace: 'ml' },
    spec: {
      parameters: [{ name: 'lr', type: 'float' }],
      objective: { metric: 'loss', direction },
      maxTrials: 3,
    },
    status: { bestTrial: { name: 's-1', index: 1, value: '0.2' } },
  });
  const trial = (i: number, loss?: string): TrainingJob => ({
    metadata: {
      name: `s-${i}`,
      labels: { 'kiln.dev/trial-index': String(i) },
      annotations: { 'kiln.dev/trial-parameters': JSON.stringify({ lr: `0.0${i}` }) },
    },
    spec: { image: 'i' },
    status: { state: 'Succeeded', metrics: loss === undefined ? {} : { loss } },
  });
  const trials = [trial(0, '0.5'), trial(1, '0.2'), trial(2), trial(3, '0.9')];
  it.each([
    ['minimize: lowest first, unscored last', 'minimize' as const, ['s-1', 's-0', 's-3', 's-2']],
    ['maximize: highest first, unscored last', 'maximize' as const, ['s-3', 's-0', 's-1', 's-2']],
  ])('%s', (_, dir, want) => {
    expect(trialRows(sweep(dir), trials).map(r => r.name)).toEqual(want);
  });
  it('marks the best trial and reads parameters', () => {
    const rows = trialRows(sweep('minimize'), trials);
    expect(rows[0]).toMatchObject({
      name: 's-1',
      best: true,
      index: 1,
      objective: 0.2,
      parameters: { lr: '0.01' },
    });
    expect(rows.filter(r => r.best)).toHaveLength(1);
  });
});

describe('poolRows', () => {
  const node = (name: string, pool: string, gpus: string, unschedulable = false) => ({
    metadata: { name, labels: { 'node.kubernetes.io/instance-type': pool } },
    spec: { unschedulable },
    status: { allocatable: { 'nvidia.com/gpu': gpus } },
  });
  const pod = (node: string, gpus: string, phase = 'Running'): PodLike => ({
    metadata: { name: `p-${node}-${gpus}` },
    spec: { nodeName: node, containers: [{ resources: { requests: { 'nvidia.com/gpu': gpus } } }] },
    status: { phase },
  });
  it('groups by pool and GPUs per node and counts GPUs of live pods', () => {
    const rows = poolRows(
      [
        node('a0', 'a100', '8'),
        node('a1', 'a100', '8'),
        node('l0', 'l4', '4'),
        node('c0', 'cpu', '0'),
        node('a2', 'a100', '8', true),
      ],
      [pod('a0', '8'), pod('a1', '2'), pod('a1', '8', 'Succeeded'), pod('l0', '1')]
    );
    expect(rows).toEqual([
      { pool: 'a100', nodes: 2, gpusPerNode: 8, capacity: 16, used: 10 },
      { pool: 'l4', nodes: 1, gpusPerNode: 4, capacity: 4, used: 1 },
    ]);
  });
});

describe('trafficSplit', () => {
  it.each([
    [
      'reported split wins',
      {
        spec: { canary: { trafficPercent: 10 } },
        status: { traffic: { stablePercent: 80, canaryPercent: 20 } },
      },
      { stable: 80, canary: 20, observed: true },
    ],
    [
      'asked split before a report',
      { spec: { canary: { trafficPercent: 10 } } },
      { stable: 90, canary: 10, observed: false },
    ],
    ['no canary', { spec: {} }, { stable: 100, canary: 0, observed: false }],
  ])('%s', (_, ms, want) => {
    expect(trafficSplit(ms)).toEqual(want);
  });
});
