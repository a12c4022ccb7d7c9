// The changes the UI can make. Each is one merge patch, the same field change the matching
// kubectl kiln verb sends; the resourceVersion read is sent along where acting on a stale
// object would be wrong, so the API server refuses the patch instead.
import { ApiProxy } from '@kinvolk/headlamp-plugin/lib';
import { GROUP, ModelServer, VERSION } from './types';

type Patcher = (path: string, body: unknown) => Promise<unknown>;

export const mergePatch: Patcher = (path, body) =>
  ApiProxy.request(path, {
    method: 'PATCH',
    body: JSON.stringify(body),
    headers: { 'Content-Type': 'application/merge-patch+json' },
  });

function path(plural: string, namespace: string, name: string): string {
  return `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${plural}/${name}`;
}

export function setSuspended(
  ns: string,
  name: string,
  suspend: boolean,
  patch: Patcher = mergePatch
) {
  return patch(path('trainingjobs', ns, name), { spec: { suspend } });
}

export function setNotebookStopped(
  ns: string,
  name: string,
  stopped: boolean,
  patch: Patcher = mergePatch
) {
  return patch(path('notebooks', ns, name), { spec: { stopped } });
}

// promoteBody makes the canary the stable version, as `kubectl kiln promote` does.
export function promoteBody(ms: ModelServer): Record<string, unknown> {
  const c = ms.spec.canary;
  if (!c) {
    throw new Error(`ModelServer ${ms.metadata.name} has no canary to promote`);
  }
  const spec: Record<string, unknown> = { canary: null };
  if (c.model) {
    spec.model = c.model;
  }
  if (c.runtime) {
    spec.runtime = c.runtime;
  }
  return { metadata: { resourceVersion: ms.metadata.resourceVersion }, spec };
}

export function promote(ms: ModelServer, patch: Patcher = mergePatch) {
  return patch(
    path('modelservers', ms.metadata.namespace ?? 'default', ms.metadata.name),
    promoteBody(ms)
  );
}

export function rollback(ms: ModelServer, patch: Patcher = mergePatch) {
  if (!ms.spec.canary) {
    return Promise.reject(new Error(`ModelServer ${ms.metadata.name} has no canary to roll back`));
  }
  return patch(path('modelservers', ms.metadata.namespace ?? 'default', ms.metadata.name), {
    metadata: { resourceVersion: ms.metadata.resourceVersion },
    spec: { canary: null },
  });
}
