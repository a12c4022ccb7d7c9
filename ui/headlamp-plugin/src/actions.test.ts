import { promote, promoteBody, rollback, setNotebookStopped, setSuspended } from './actions';
import { ModelServer } from './types';

const ms = (canary?: ModelServer['spec']['canary']): ModelServer => ({
  metadata: { name: 'resnet', namespace: 'ml', resourceVersion: '42' },
  spec: { model: { uri: 'pvc://m/v1' }, runtime: { preset: 'torchserve' }, canary },
});

describe('actions send one merge patch each', () => {
  it.each([
    [
      'suspend',
      () => setSuspended('ml', 'j', true, record),
      '/apis/kiln.dev/v1alpha1/namespaces/ml/trainingjobs/j',
      { spec: { suspend: true } },
    ],
    [
      'resume',
      () => setSuspended('ml', 'j', false, record),
      '/apis/kiln.dev/v1alpha1/namespaces/ml/trainingjobs/j',
      { spec: { suspend: false } },
    ],
    [
      'stop notebook',
      () => setNotebookStopped('ml', 'nb', true, record),
      '/apis/kiln.dev/v1alpha1/namespaces/ml/notebooks/nb',
      { spec: { stopped: true } },
    ],
    [
      'promote',
      () => promote(ms({ model: { uri: 'pvc://m/v2' }, trafficPercent: 10 }), record),
      '/apis/kiln.dev/v1alpha1/namespaces/ml/modelservers/resnet',
      { metadata: { resourceVersion: '42' }, spec: { canary: null, model: { uri: 'pvc://m/v2' } } },
    ],
    [
      'roll back',
      () => rollback(ms({ model: { uri: 'pvc://m/v2' }, trafficPercent: 10 }), record),
      '/apis/kiln.dev/v1alpha1/namespaces/ml/modelservers/resnet',
      { metadata: { resourceVersion: '42' }, spec: { canary: null } },
    ],
  ])('%s', async (_, act, path, body) => {
    sent.length = 0;
    await act();
    expect(sent).toEqual([{ path, body }]);
  });

  it('refuses to promote or roll back without a canary', async () => {
    expect(() => promoteBody(ms())).toThrow(/no canary to promote/);
    await expect(rollback(ms(), record)).rejects.toThrow(/no canary to roll back/);
  });
});

const sent: { path: string; body: unknown }[] = [];
async function record(path: string, body: unknown) {
  sent.push({ path, body });
}
