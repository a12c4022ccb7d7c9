// The views rendered against a mocked API: the data layer (../data) is replaced by fixtures,
// errors shaped like Headlamp's ApiError, and "not loaded yet"; Headlamp's own components,
// Redux store and router render for real.
// The store first: Headlamp's modules import each other in cycles that only resolve when
// entered through it.
// eslint-disable-next-line simple-import-sort/imports
import store from '@kinvolk/headlamp-plugin/lib/redux/stores/store';
import { lightTheme } from '@kinvolk/headlamp-plugin/lib/components/App/defaultAppThemes';
import { setStore } from '@kinvolk/headlamp-plugin/lib/lib/router/createRouteURL';
import { createMuiTheme } from '@kinvolk/headlamp-plugin/lib/lib/themes';
import { ThemeProvider } from '@mui/material/styles';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { render, screen } from '@testing-library/react';
import React from 'react';
import { Provider } from 'react-redux';
import { MemoryRouter } from 'react-router-dom';
import '../index';
import { ModelServer, Notebook, Sweep, TrainingJob } from '../types';
import { ClusterView } from './Cluster';
import { ModelServerDetail, ModelServerList } from './ModelServers';
import { NotebookDetail, NotebookList } from './Notebooks';
import { SweepDetail, SweepList } from './Sweeps';
import { TrainingJobDetail, TrainingJobList } from './TrainingJobs';

type Result = { items: unknown[] | null; error: unknown };
const api: {
  lists: Record<string, Result>;
  items: Record<string, { item: unknown; error: unknown }>;
} = { lists: {}, items: {} };

const none: Result = { items: [], error: null };

vi.mock('../data', () => ({
  useKilnList: (plural: string) => api.lists[plural] ?? none,
  useKilnItem: (plural: string, name: string) =>
    api.items[`${plural}/${name}`] ?? { item: null, error: null },
  useLabelled: (plural: string, _ns: string, selector: string) =>
    api.lists[`${plural}?${selector}`] ?? none,
  usePods: (ns?: string, selector?: string) => api.lists[`pods?${selector ?? ''}`] ?? none,
  useNodes: () => api.lists.nodes ?? none,
  useJobs: () => api.lists.jobs ?? none,
  useServices: () => api.lists.services ?? none,
  useEvents: () => api.lists.events ?? none,
}));

function show(ui: React.ReactElement) {
  return render(
    <Provider store={store}>
      <QueryClientProvider client={new QueryClient()}>
        <ThemeProvider theme={createMuiTheme(lightTheme)}>
          <MemoryRouter initialEntries={['/c/test/kiln']}>{ui}</MemoryRouter>
        </ThemeProvider>
      </QueryClientProvider>
    </Provider>
  );
}

const notFound = Object.assign(new Error('the server could not find the requested resource'), {
  status: 404,
});
const unreachable = new Error('Failed to fetch');

// Headlamp builds links from the routes in its store (the plugin's, registered by importing
// it) and the cluster in the page's URL.
beforeAll(() => {
  setStore(store);
  window.history.pushState({}, '', '/c/test/kiln');
});

beforeEach(() => {
  api.lists = {};
  api.items = {};
});

const job: TrainingJob = {
  metadata: { name: 'llama', namespace: 'ml', creationTimestamp: new Date().toISOString() },
  spec: { image: 'train:1', framework: 'pytorch', topology: { nodes: 2, processesPerNode: 8 } },
  status: {
    state: 'Running',
    shape: { nodes: 2, processesPerNode: 8, gpusPerNode: 8, pool: 'a100', summary: '2x8' },
    jobName: 'llama-0',
    conditions: [
      {
        type: 'Running',
        status: 'True',
        reason: 'AllWorkersReady',
        message: '2 of 2 workers are ready',
      },
    ],
    metrics: { loss: '0.42' },
  },
};

describe('lists: content, empty, error and loading states', () => {
  it.each([
    ['TrainingJobs', 'trainingjobs', () => <TrainingJobList />, 'kubectl kiln train'],
    ['Sweeps', 'sweeps', () => <SweepList />, 'Sweep manifest'],
    ['ModelServers', 'modelservers', () => <ModelServerList />, 'kubectl kiln serve'],
    ['Notebooks', 'notebooks', () => <NotebookList />, 'Notebook manifest'],
  ])('%s', (what, plural, view, how) => {
    const { unmount } = show(view());
    expect(screen.getByTestId('kiln-empty').textContent).toContain(`No ${what} yet.`);
    expect(screen.getByTestId('kiln-empty').textContent).toContain(how);
    unmount();

    api.lists[plural] = { items: null, error: notFound };
    const second = show(view());
    expect(screen.getByRole('alert').textContent).toContain(
      `Kiln's ${what} resource is not installed`
    );
    expect(screen.getByRole('alert').textContent).toContain('kubectl apply -f config/crd/bases');
    second.unmount();

    api.lists[plural] = { items: null, error: unreachable };
    const third = show(view());
    expect(screen.getByRole('alert').textContent).toContain(
      'could not be reached (Failed to fetch)'
    );
    third.unmount();

    api.lists[plural] = { items: null, error: null };
    const fourth = show(view());
    expect(screen.queryByTestId('kiln-empty')).toBeNull();
    expect(screen.queryByRole('alert')).toBeNull();
    fourth.unmount();
  });

  it('TrainingJob rows link to the detail page and show the shape', () => {
    api.lists.trainingjobs = { items: [job], error: null };
    show(<TrainingJobList />);
    expect(screen.getByRole('link', { name: 'llama' }).getAttribute('href')).toBe(
      '/c/test/kiln/trainingjobs/ml/llama'
    );
    expect(screen.getByText('2x8')).toBeTruthy();
    expect(screen.getByText('Running')).toBeTruthy();
  });
});

describe('TrainingJob detail', () => {
  it('shows shape, conditions, workers, children, events and metrics', () => {
    api.items['trainingjobs/llama'] = { item: job, error: null };
    api.lists['pods?kiln.dev/trainingjob=llama'] = {
      items: [1, 0].map(i => ({
        metadata: {
          name: `llama-0-${i}`,
          annotations: { 'batch.kubernetes.io/job-completion-index': String(i) },
        },
        spec: { nodeName: `a100-${i}` },
        status: { phase: 'Running', containerStatuses: [{ restartCount: i }] },
      })),
      error: null,
    };
    api.lists.jobs = { items: [{ metadata: { name: 'llama-0' } }], error: null };
    api.lists.services = { items: [{ metadata: { name: 'llama' } }], error: null };
    api.lists.events = {
      items: [
        {
          metadata: { name: 'e1' },
          type: 'Normal',
          reason: 'Admitted',
          message: 'placed on pool a100',
        },
      ],
      error: null,
    };
    show(<TrainingJobDetail namespace="ml" name="llama" />);
    expect(screen.getByTestId('kiln-shape').textContent).toBe(
      '2 nodes × 8 processes per node, 16 GPUs (8 per node) in pool a100'
    );
    expect(screen.getByText('2 of 2 workers are ready')).toBeTruthy();
    expect(screen.getByText('AllWorkersReady')).toBeTruthy();
    const pods = screen.getAllByRole('link', { name: /^llama-0-/ }).map(a => a.textContent);
    expect(pods).toEqual(['llama-0-0', 'llama-0-1']);
    expect(screen.getByRole('link', { name: 'a100-1' }).getAttribute('href')).toContain(
      '/nodes/a100-1'
    );
    expect(screen.getByRole('link', { name: 'llama-0' }).getAttribute('href')).toContain(
      '/jobs/ml/llama-0'
    );
    expect(screen.getByText('placed on pool a100')).toBeTruthy();
    expect(screen.getByTestId('kiln-latest-metrics').textContent).toContain('loss=0.42');
    expect(screen.getByRole('button', { name: 'Suspend' })).toBeTruthy();
  });

  it('says when workers and metrics are not there yet', () => {
    api.items['trainingjobs/llama'] = {
      item: { ...job, status: { ...job.status, metrics: undefined } },
      error: null,
    };
    show(<TrainingJobDetail namespace="ml" name="llama" />);
    const empties = screen.getAllByTestId('kiln-empty').map(e => e.textContent);
    expect(empties.some(t => t?.includes('No worker pods yet.'))).toBe(true);
    expect(empties.some(t => t?.includes('No metrics reported yet.'))).toBe(true);
  });

  it('offers Resume on a suspended job', () => {
    api.items['trainingjobs/llama'] = {
      item: { ...job, spec: { ...job.spec, suspend: true } },
      error: null,
    };
    show(<TrainingJobDetail namespace="ml" name="llama" />);
    expect(screen.getByRole('button', { name: 'Resume' })).toBeTruthy();
  });

  it('shows the error state', () => {
    api.items['trainingjobs/llama'] = { item: null, error: notFound };
    show(<TrainingJobDetail namespace="ml" name="llama" />);
    expect(screen.getByRole('alert').textContent).toContain('not installed');
  });
});

describe('Sweep detail', () => {
  it('sorts trials by objective and highlights the best', () => {
    const sweep: Sweep = {
      metadata: { name: 'lr', namespace: 'ml' },
      spec: {
        parameters: [{ name: 'lr', type: 'float' }],
        objective: { metric: 'loss', direction: 'minimize' },
        maxTrials: 3,
      },
      status: { state: 'Running', trials: 3, bestTrial: { name: 'lr-1', index: 1, value: '0.2' } },
    };
    api.items['sweeps/lr'] = { item: sweep, error: null };
    api.lists['trainingjobs?kiln.dev/sweep=lr'] = {
      items: [
        ['lr-0', '0', '0.5'],
        ['lr-1', '1', '0.2'],
        ['lr-2', '2', undefined],
      ].map(([name, i, loss]) => ({
        metadata: {
          name,
          labels: { 'kiln.dev/trial-index': i },
          annotations: { 'kiln.dev/trial-parameters': `{"lr":"0.0${i}"}` },
        },
        spec: { image: 'x' },
        status: { state: 'Succeeded', metrics: loss ? { loss } : {} },
      })),
      error: null,
    };
    show(<SweepDetail namespace="ml" name="lr" />);
    const trials = screen.getAllByRole('link', { name: /^lr-/ }).map(a => a.textContent);
    expect(trials).toEqual(['lr-1', 'lr-0', 'lr-2']);
    expect(screen.getByTestId('kiln-best-trial').textContent).toBe('★ lr-1');
    expect(screen.getByText('loss by trial number')).toBeTruthy();
    expect(screen.getByLabelText('Parameter')).toBeTruthy();
  });
});

describe('ModelServer detail', () => {
  it('shows URL, replicas and the traffic split with canary actions', () => {
    const ms: ModelServer = {
      metadata: { name: 'resnet', namespace: 'ml' },
      spec: {
        model: { uri: 'pvc://m/v1' },
        runtime: { preset: 'torchserve' },
        replicas: { min: 2, max: 4 },
        canary: { model: { uri: 'pvc://m/v2' }, trafficPercent: 20 },
      },
      status: {
        url: 'http://resnet.ml.svc',
        traffic: { method: 'ReplicaRatio', stablePercent: 80, canaryPercent: 20 },
      },
    };
    api.items['modelservers/resnet'] = { item: ms, error: null };
    show(<ModelServerDetail namespace="ml" name="resnet" />);
    expect(screen.getByText('http://resnet.ml.svc')).toBeTruthy();
    expect(screen.getByText('min 2, max 4')).toBeTruthy();
    expect(screen.getByRole('img', { name: 'traffic: stable 80%, canary 20%' })).toBeTruthy();
    expect(
      (screen.getByRole('button', { name: 'Promote canary' }) as HTMLButtonElement).disabled
    ).toBe(false);
  });
});

describe('Notebook detail', () => {
  it.each([
    [false, 'Stop'],
    [true, 'Start'],
  ])('stopped=%s offers %s', (stopped, label) => {
    const nb: Notebook = {
      metadata: { name: 'nb', namespace: 'ml' },
      spec: { stopped },
      status: { state: stopped ? 'Stopped' : 'Ready' },
    };
    api.items['notebooks/nb'] = { item: nb, error: null };
    show(<NotebookDetail namespace="ml" name="nb" />);
    expect(screen.getByRole('button', { name: label })).toBeTruthy();
  });
});

describe('Cluster view', () => {
  it('totals GPU capacity and use per pool', () => {
    api.lists.nodes = {
      items: [
        {
          metadata: { name: 'a0', labels: { 'node.kubernetes.io/instance-type': 'a100' } },
          status: { allocatable: { 'nvidia.com/gpu': '8' } },
        },
        {
          metadata: { name: 'l0', labels: { 'node.kubernetes.io/instance-type': 'l4' } },
          status: { allocatable: { 'nvidia.com/gpu': '4' } },
        },
      ],
      error: null,
    };
    api.lists['pods?'] = {
      items: [
        {
          metadata: { name: 'p' },
          spec: {
            nodeName: 'a0',
            containers: [{ resources: { requests: { 'nvidia.com/gpu': '8' } } }],
          },
          status: { phase: 'Running' },
        },
      ],
      error: null,
    };
    show(<ClusterView />);
    expect(screen.getByTestId('kiln-gpu-total').textContent).toBe('8 of 12 GPUs in use on 2 nodes');
    expect(screen.getByText('8 / 8')).toBeTruthy();
  });

  it('says how to add GPU nodes when there are none, and shows errors', () => {
    api.lists['pods?'] = { items: [], error: null };
    const { unmount } = show(<ClusterView />);
    expect(screen.getByTestId('kiln-empty').textContent).toContain('NVIDIA device plugin');
    unmount();
    api.lists.nodes = {
      items: null,
      error: Object.assign(new Error('forbidden'), { status: 403 }),
    };
    show(<ClusterView />);
    expect(screen.getByRole('alert').textContent).toContain('not allowed');
  });
});
