// What an API error means for the person looking at the page, and what to do about it.

export interface Hint {
  title: string;
  action: string;
}

// statusOf digs the HTTP status out of the error shapes Headlamp's API layer produces.
export function statusOf(err: unknown): number | undefined {
  if (!err || typeof err !== 'object') {
    return undefined;
  }
  const e = err as { status?: unknown; code?: unknown };
  if (typeof e.status === 'number') {
    return e.status;
  }
  if (typeof e.code === 'number') {
    return e.code;
  }
  return undefined;
}

export function errorHint(err: unknown, what: string): Hint {
  const status = statusOf(err);
  if (status === 404) {
    return {
      title: `Kiln's ${what} resource is not installed in this cluster.`,
      action:
        "Install Kiln's CustomResourceDefinitions: kubectl apply -f config/crd/bases " +
        '(or install Kiln itself), then reload this page.',
    };
  }
  if (status === 401 || status === 403) {
    return {
      title: `You are not allowed to read ${what} here.`,
      action:
        'Ask a cluster administrator for a Role that can get, list and watch ' +
        `${what} in the kiln.dev API group, or choose a namespace you can read.`,
    };
  }
  const detail = err instanceof Error && err.message ? ` (${err.message})` : '';
  return {
    title: `The Kubernetes API server could not be reached${detail}.`,
    action:
      "Check the cluster's connection in Headlamp's cluster settings, that the API server is " +
      'running, and your network; the list reloads by itself once it answers.',
  };
}
