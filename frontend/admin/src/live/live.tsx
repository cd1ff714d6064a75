import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  type ReactNode,
} from 'react';
import type { Client as WsClient } from 'graphql-ws';
import { ALERT_RAISED } from './subscriptions';

export type LiveStatus = 'connecting' | 'live' | 'unavailable';

interface LiveApi {
  status: LiveStatus;
  reason: string;
  ws: WsClient;
  /** Bumped whenever an alert is raised, so alert lists refresh. */
  alertsVersion: number;
  /** A subscription failed: when the server has no subscriptions at all, say so everywhere. */
  report: (error: unknown) => void;
}

const LiveContext = createContext<LiveApi | null>(null);

/** The server's schema has no Subscription type: nothing will ever stream. */
function noSubscriptions(error: unknown): boolean {
  return (
    Array.isArray(error) &&
    error.some((e: { message?: unknown }) => typeof e?.message === 'string' && e.message.includes('not supported by the schema'))
  );
}

function describe(error: unknown): string {
  if (Array.isArray(error)) {
    const first = error[0] as { message?: unknown } | undefined;
    return typeof first?.message === 'string' ? first.message : 'the server refused the subscription';
  }
  if (typeof CloseEvent !== 'undefined' && error instanceof CloseEvent) {
    return error.reason || `the connection closed (code ${error.code})`;
  }
  return 'the live connection could not be opened';
}

/** Watches one app-wide subscription (alerts) to learn whether the server streams updates. */
export function LiveProvider({ ws, children }: { ws: WsClient; children: ReactNode }) {
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const [reason, setReason] = useState('');
  const [alertsVersion, setAlertsVersion] = useState(0);

  useEffect(() => {
    let settled = false;
    let unsubscribe = () => undefined as void;
    const offConnected = ws.on('connected', () => {
      // The server validates a subscription as it starts: if nothing failed by then, it is live.
      window.setTimeout(() => {
        if (settled) return;
        settled = true;
        setStatus('live');
      }, 800);
    });
    // No answer at all (a proxy that drops WebSockets): say so rather than "connecting" forever.
    const giveUp = window.setTimeout(() => {
      if (settled) return;
      settled = true;
      setStatus('unavailable');
      setReason('the live connection did not answer');
    }, 10_000);
    // Subscribing on the next tick lets a mount that is undone at once (React's strict mode)
    // leave no half-open subscription behind.
    const start = window.setTimeout(() => {
      unsubscribe = ws.subscribe(
        { query: ALERT_RAISED },
        {
          next: () => setAlertsVersion((v) => v + 1),
          error: (error) => {
            settled = true;
            setStatus('unavailable');
            setReason(describe(error));
          },
          complete: () => undefined,
        },
      );
    }, 0);
    return () => {
      settled = true;
      window.clearTimeout(start);
      window.clearTimeout(giveUp);
      offConnected();
      unsubscribe();
    };
  }, [ws]);

  const report = useCallback((error: unknown) => {
    if (!noSubscriptions(error)) return;
    setStatus('unavailable');
    setReason(describe(error));
  }, []);

  const api = useMemo(() => ({ status, reason, ws, alertsVersion, report }), [status, reason, ws, alertsVersion, report]);
  return <LiveContext.Provider value={api}>{children}</LiveContext.Provider>;
}

export function useLive(): LiveApi {
  const api = useContext(LiveContext);
  if (!api) throw new Error('useLive outside LiveProvider');
  return api;
}

export const POLL_MS = 5_000;

/**
 * Calls `refresh` whenever the subscription delivers an event (and `onData` with the event's
 * data); while live updates are unavailable (or this subscription fails), `refresh` every
 * POLL_MS instead. Returns whether the subscription itself is streaming.
 */
export function useLiveRefresh(
  query: string,
  variables: Record<string, unknown> | null,
  refresh: () => void,
  onData?: (data: Record<string, unknown>) => void,
): boolean {
  const { status, ws, report } = useLive();
  const [failed, setFailed] = useState(false);
  const refreshRef = useRef(refresh);
  refreshRef.current = refresh;
  const onDataRef = useRef(onData);
  onDataRef.current = onData;
  const key = JSON.stringify(variables);
  const streaming = status === 'live' && !failed && variables !== null;

  useEffect(() => {
    if (status !== 'live' || variables === null) return;
    setFailed(false);
    let timer = 0;
    const unsubscribe = ws.subscribe(
      { query, variables },
      {
        next: (result) => {
          if (result.errors?.length) {
            setFailed(true);
            report(result.errors);
            return;
          }
          if (result.data) onDataRef.current?.(result.data as Record<string, unknown>);
          // Coalesce bursts (a batch of usage events) into one refetch.
          window.clearTimeout(timer);
          timer = window.setTimeout(() => refreshRef.current(), 150);
        },
        error: (error) => {
          setFailed(true);
          report(error);
        },
        complete: () => undefined,
      },
    );
    return () => {
      window.clearTimeout(timer);
      unsubscribe();
    };
  }, [status, ws, query, key, report]);

  useEffect(() => {
    if (streaming) return;
    const id = window.setInterval(() => refreshRef.current(), POLL_MS);
    return () => window.clearInterval(id);
  }, [streaming]);

  return streaming;
}
