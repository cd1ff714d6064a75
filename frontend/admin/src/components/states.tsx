import type { CombinedError } from 'urql';
import type { ReactNode } from 'react';

export function Loading({ what }: { what: string }) {
  return (
    <p className="state state-loading" role="status">
      Loading {what}…
    </p>
  );
}

export function describeError(error: CombinedError): string {
  if (error.networkError) return 'The server could not be reached. It will be retried when you reload or act again.';
  const first = error.graphQLErrors[0];
  const code = first?.extensions?.code;
  if (code === 'FORBIDDEN') return 'Your role may not see or do this.';
  if (code === 'UNAUTHENTICATED') return 'Your session has ended; sign in again.';
  return first?.message ?? error.message;
}

export function ErrorNotice({ error, what }: { error: CombinedError; what: string }) {
  return (
    <div className="state state-error" role="alert">
      <strong>Could not load {what}.</strong> {describeError(error)}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="state state-empty">{children}</p>;
}

/** Loading / error / content for a query result, in words. */
export function QueryState<T>({
  result,
  what,
  children,
}: {
  result: { data?: T; fetching: boolean; error?: CombinedError };
  what: string;
  children: (data: T) => ReactNode;
}) {
  if (result.data !== undefined) {
    return (
      <>
        {result.error ? <ErrorNotice error={result.error} what={`the latest ${what}`} /> : null}
        {children(result.data)}
      </>
    );
  }
  if (result.error) return <ErrorNotice error={result.error} what={what} />;
  return <Loading what={what} />;
}
