// Kiln's plugin for Headlamp: a "Kiln" sidebar section with list and detail views for
// TrainingJobs, Sweeps, ModelServers and Notebooks, and the cluster's GPU pools.
import { registerRoute, registerSidebarEntry } from '@kinvolk/headlamp-plugin/lib';
import { ClusterView } from './views/Cluster';
import { ModelServerDetailRoute, ModelServerList } from './views/ModelServers';
import { NotebookDetailRoute, NotebookList } from './views/Notebooks';
import { SweepDetailRoute, SweepList } from './views/Sweeps';
import { TrainingJobDetailRoute, TrainingJobList } from './views/TrainingJobs';

registerSidebarEntry({
  parent: null,
  name: 'kiln',
  label: 'Kiln',
  url: '/kiln/trainingjobs',
  icon: 'mdi:fire',
});

const pages = [
  {
    name: 'trainingjobs',
    label: 'Training jobs',
    detail: 'trainingjob',
    list: TrainingJobList,
    one: TrainingJobDetailRoute,
  },
  { name: 'sweeps', label: 'Sweeps', detail: 'sweep', list: SweepList, one: SweepDetailRoute },
  {
    name: 'modelservers',
    label: 'Model servers',
    detail: 'modelserver',
    list: ModelServerList,
    one: ModelServerDetailRoute,
  },
  {
    name: 'notebooks',
    label: 'Notebooks',
    detail: 'notebook',
    list: NotebookList,
    one: NotebookDetailRoute,
  },
];

for (const p of pages) {
  registerSidebarEntry({
    parent: 'kiln',
    name: `kiln-${p.name}`,
    label: p.label,
    url: `/kiln/${p.name}`,
  });
  registerRoute({
    path: `/kiln/${p.name}`,
    sidebar: `kiln-${p.name}`,
    name: `kiln-${p.name}`,
    exact: true,
    component: p.list,
  });
  registerRoute({
    path: `/kiln/${p.name}/:namespace/:name`,
    sidebar: `kiln-${p.name}`,
    name: `kiln-${p.detail}`,
    exact: true,
    component: p.one,
  });
}

registerSidebarEntry({
  parent: 'kiln',
  name: 'kiln-cluster',
  label: 'GPU pools',
  url: '/kiln/cluster',
});
registerRoute({
  path: '/kiln/cluster',
  sidebar: 'kiln-cluster',
  name: 'kiln-cluster',
  exact: true,
  component: ClusterView,
});
