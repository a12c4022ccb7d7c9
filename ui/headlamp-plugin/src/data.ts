// The data layer: every read the views make goes through these hooks, which wrap Headlamp's
// own list and get hooks (they watch, so lists update without a reload). Views get plain API
// JSON, which is also what the component tests feed them.
import { K8s } from '@kinvolk/headlamp-plugin/lib';
import { makeCustomResourceClass } from '@kinvolk/headlamp-plugin/lib/Crd';
import { GROUP, VERSION } from './types';

export interface ListResult<T> {
  items: T[] | null;
  error: unknown;
}

export interface ItemResult<T> {
  item: T | null;
  error: unknown;
}

export type KilnKind = 'trainingjobs' | 'sweeps' | 'modelservers' | 'notebooks';

const kinds: Record<KilnKind, { kind: string; singular: string }> = {
  trainingjobs: { kind: 'TrainingJob', singular: 'trainingjob' },
  sweeps: { kind: 'Sweep', singular: 'sweep' },
  modelservers: { kind: 'ModelServer', singular: 'modelserver' },
  notebooks: { kind: 'Notebook', singular: 'notebook' },
};

const classes = new Map<KilnKind, any>();

// kilnClass is the Headlamp resource class of a Kiln kind, made once.
export function kilnClass(plural: KilnKind): any {
  let c = classes.get(plural);
  if (!c) {
    c = makeCustomResourceClass({
      apiInfo: [{ group: GROUP, version: VERSION }],
      kind: kinds[plural].kind,
      pluralName: plural,
      singularName: kinds[plural].singular,
      isNamespaced: true,
    });
    classes.set(plural, c);
  }
  return c;
}

function json<T>(objs: any[] | null | undefined): T[] | null {
  return objs ? objs.map(o => (o?.jsonData ?? o) as T) : null;
}

function firstError(r: any): unknown {
  if (r?.error) {
    return r.error;
  }
  const errs = r?.errors;
  return Array.isArray(errs) && errs.length > 0 ? errs[0] : null;
}

function listOf<T>(cls: any, opts: Record<string, unknown>): ListResult<T> {
  const r = cls.useList(opts);
  const error = firstError(r);
  return { items: error ? null : json<T>(r.items), error };
}

export function useKilnList<T>(plural: KilnKind, namespace?: string): ListResult<T> {
  return listOf<T>(kilnClass(plural), namespace ? { namespace } : {});
}

export function useKilnItem<T>(plural: KilnKind, name: string, namespace: string): ItemResult<T> {
  const r = kilnClass(plural).useGet(name, namespace);
  return { item: (r.data?.jsonData ?? r[0]?.jsonData ?? null) as T | null, error: r.error ?? r[1] };
}

// useTrials lists the TrainingJobs a Sweep created, by their kiln.dev/sweep label.
export function useLabelled<T>(
  plural: KilnKind,
  namespace: string,
  selector: string
): ListResult<T> {
  return listOf<T>(kilnClass(plural), { namespace, labelSelector: selector });
}

export function usePods<T>(namespace: string | undefined, labelSelector?: string): ListResult<T> {
  const opts: Record<string, unknown> = {};
  if (namespace) {
    opts.namespace = namespace;
  }
  if (labelSelector) {
    opts.labelSelector = labelSelector;
  }
  return listOf<T>(K8s.ResourceClasses.Pod, opts);
}

export function useNodes<T>(): ListResult<T> {
  return listOf<T>(K8s.ResourceClasses.Node, {});
}

export function useJobs<T>(namespace: string, labelSelector: string): ListResult<T> {
  return listOf<T>(K8s.ResourceClasses.Job, { namespace, labelSelector });
}

export function useServices<T>(namespace: string, labelSelector: string): ListResult<T> {
  return listOf<T>(K8s.ResourceClasses.Service, { namespace, labelSelector });
}

// useEvents lists the Events about one object, newest last.
export function useEvents<T>(namespace: string, kind: string, name: string): ListResult<T> {
  return listOf<T>(K8s.event.default, {
    namespace,
    fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}`,
  });
}
