import {
  Link,
  Loader,
  SectionBox,
  SimpleTable,
  StatusLabel,
} from '@kinvolk/headlamp-plugin/lib/CommonComponents';
import { Alert, AlertTitle, Box, Button, Typography } from '@mui/material';
import React from 'react';
import { errorHint } from '../errors';
import { Condition, ObjectMeta } from '../types';

// ErrorState says what went wrong reading something and what to do about it.
export function ErrorState({ error, what }: { error: unknown; what: string }) {
  const hint = errorHint(error, what);
  return (
    <Alert severity="error" role="alert" data-testid="kiln-error">
      <AlertTitle>{hint.title}</AlertTitle>
      {hint.action}
    </Alert>
  );
}

// EmptyState says there is nothing yet and how to make something.
export function EmptyState({ what, how }: { what: string; how: React.ReactNode }) {
  return (
    <Box data-testid="kiln-empty" sx={{ p: 2 }}>
      <Typography variant="body1">No {what} yet.</Typography>
      <Typography variant="body2" color="text.secondary">
        {how}
      </Typography>
    </Box>
  );
}

// Loading, error, empty or the content: the four states every view has.
export function Guard<T>(props: {
  items: T[] | null;
  error: unknown;
  what: string;
  how: React.ReactNode;
  children: (items: T[]) => React.ReactNode;
}) {
  if (props.error) {
    return <ErrorState error={props.error} what={props.what} />;
  }
  if (props.items === null) {
    return <Loader title={`Loading ${props.what}`} />;
  }
  if (props.items.length === 0) {
    return <EmptyState what={props.what} how={props.how} />;
  }
  return <>{props.children(props.items)}</>;
}

const goodStates = new Set(['Running', 'Succeeded', 'Ready', 'Serving']);
const badStates = new Set(['Failed', 'Culled']);

export function StateLabel({ state }: { state?: string }) {
  const s = state || 'Pending';
  const status = goodStates.has(s) ? 'success' : badStates.has(s) ? 'error' : 'warning';
  return <StatusLabel status={status}>{s}</StatusLabel>;
}

// ObjectLink opens one of the plugin's own detail pages.
export function ObjectLink({ route, meta }: { route: string; meta: ObjectMeta }) {
  return (
    <Link routeName={route} params={{ namespace: meta.namespace ?? '', name: meta.name }}>
      {meta.name}
    </Link>
  );
}

export function age(ts?: string, now = Date.now()): string {
  if (!ts) {
    return '-';
  }
  const s = Math.max(0, Math.floor((now - Date.parse(ts)) / 1000));
  if (s < 120) {
    return `${s}s`;
  }
  if (s < 7200) {
    return `${Math.floor(s / 60)}m`;
  }
  if (s < 172800) {
    return `${Math.floor(s / 3600)}h`;
  }
  return `${Math.floor(s / 86400)}d`;
}

export function ConditionsSection({ conditions }: { conditions?: Condition[] }) {
  return (
    <SectionBox title="Conditions">
      {conditions && conditions.length > 0 ? (
        <SimpleTable
          columns={[
            { label: 'Type', getter: (c: Condition) => c.type },
            { label: 'Status', getter: (c: Condition) => c.status },
            { label: 'Reason', getter: (c: Condition) => c.reason ?? '' },
            { label: 'Message', getter: (c: Condition) => c.message ?? '' },
            { label: 'Since', getter: (c: Condition) => age(c.lastTransitionTime) },
          ]}
          data={conditions}
        />
      ) : (
        <EmptyState
          what="conditions"
          how="The Kiln controller reports conditions once it has seen this object; if none appear, check that the kiln-manager Deployment is running."
        />
      )}
    </SectionBox>
  );
}

export interface EventLike {
  metadata: { name: string; uid?: string };
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  lastTimestamp?: string;
  eventTime?: string;
}

export function EventsSection({ events, error }: { events: EventLike[] | null; error: unknown }) {
  return (
    <SectionBox title="Recent events">
      <Guard
        items={events}
        error={error}
        what="events"
        how="Kubernetes keeps Events for an hour; Kiln records one for every decision about this object."
      >
        {items => (
          <SimpleTable
            columns={[
              { label: 'Type', getter: (e: EventLike) => e.type ?? '' },
              { label: 'Reason', getter: (e: EventLike) => e.reason ?? '' },
              { label: 'Message', getter: (e: EventLike) => e.message ?? '' },
              { label: 'Count', getter: (e: EventLike) => e.count ?? 1 },
              { label: 'Last seen', getter: (e: EventLike) => age(e.lastTimestamp ?? e.eventTime) },
            ]}
            data={[...items]
              .sort((a, b) =>
                (a.lastTimestamp ?? a.eventTime ?? '').localeCompare(
                  b.lastTimestamp ?? b.eventTime ?? ''
                )
              )
              .slice(-20)}
          />
        )}
      </Guard>
    </SectionBox>
  );
}

// ActionButton runs a change and shows what the API server said when it refuses.
export function ActionButton(props: {
  label: string;
  run: () => Promise<unknown>;
  disabled?: boolean;
}) {
  const [busy, setBusy] = React.useState(false);
  const [err, setErr] = React.useState<string | null>(null);
  return (
    <Box component="span" sx={{ mr: 1 }}>
      <Button
        variant="outlined"
        size="small"
        disabled={props.disabled || busy}
        onClick={() => {
          setBusy(true);
          setErr(null);
          props
            .run()
            .catch((e: unknown) => setErr(e instanceof Error ? e.message : String(e)))
            .finally(() => setBusy(false));
        }}
      >
        {props.label}
      </Button>
      {err && (
        <Typography component="span" color="error" variant="body2" sx={{ ml: 1 }} role="alert">
          {props.label} failed: {err}
        </Typography>
      )}
    </Box>
  );
}
