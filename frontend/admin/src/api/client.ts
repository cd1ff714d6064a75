import { Client, cacheExchange, fetchExchange, subscriptionExchange } from 'urql';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { parseJsonExact } from './json';

export interface ApiClients {
  client: Client;
  ws: WsClient;
}

export interface ClientOptions {
  /** The CSRF token of the session, sent with every POST /graphql. */
  csrfToken: () => string | null;
  /** Called when the API says the session is gone (HTTP 401 or UNAUTHENTICATED). */
  onUnauthenticated: () => void;
  /** An admin key for the WebSocket's connection_init (a page embedded elsewhere, a script);
   * without one the upgrade request's session cookie signs the socket in. */
  bearerKey?: string | null;
}

function graphqlUrl(protocol: 'http' | 'ws'): string {
  const { location } = window;
  if (protocol === 'http') return `${location.origin}/graphql`;
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
}

function hasUnauthenticated(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || !('errors' in body)) return false;
  const errors = (body as { errors?: unknown }).errors;
  return (
    Array.isArray(errors) &&
    errors.some(
      (e: unknown) =>
        typeof e === 'object' &&
        e !== null &&
        (e as { extensions?: { code?: unknown } }).extensions?.code === 'UNAUTHENTICATED',
    )
  );
}

export function createApiClients(options: ClientOptions): ApiClients {
  const exactFetch: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    const token = options.csrfToken();
    if (token) headers.set('x-csrf-token', token);
    const response = await fetch(input, { ...init, headers, credentials: 'same-origin' });
    const text = await response.text();
    let body: unknown;
    try {
      body = parseJsonExact(text);
    } catch {
      return new Response(text, { status: response.status, statusText: response.statusText });
    }
    if (response.status === 401 || hasUnauthenticated(body)) options.onUnauthenticated();
    return new Response(JSON.stringify(body), {
      status: response.status,
      statusText: response.statusText,
      headers: { 'content-type': 'application/json' },
    });
  };

  const ws = createWsClient({
    url: graphqlUrl('ws'),
    lazy: true,
    retryAttempts: 5,
    connectionParams: () =>
      options.bearerKey ? { authorization: `Bearer ${options.bearerKey}` } : {},
  });

  const client = new Client({
    url: graphqlUrl('http'),
    fetch: exactFetch,
    fetchOptions: { credentials: 'same-origin' },
    // The API takes operations by POST only (a GET would dodge the CSRF check).
    preferGetMethod: false,
    requestPolicy: 'cache-and-network',
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
  return { client, ws };
}
