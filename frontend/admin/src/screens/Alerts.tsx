import { useEffect, useState } from 'react';
import { useQuery } from 'urql';
import { graphql } from '../gql';
import { useLive } from '../live/live';
import { Empty, QueryState } from '../components/states';
import { AlertTable } from '../components/AlertList';

const AlertsDoc = graphql(`
  query Alerts($account: String, $after: String) {
    notifications(accountExternalId: $account, first: 50, after: $after) {
      nodes { id kind accountExternalId subject window createdAt payload }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export function AlertsScreen() {
  const [draft, setDraft] = useState('');
  const [account, setAccount] = useState<string | null>(null);
  const [after, setAfter] = useState<string | null>(null);
  const [result, reexecute] = useQuery({ query: AlertsDoc, variables: { account, after } });
  const { alertsVersion } = useLive();
  useEffect(() => {
    if (alertsVersion > 0) reexecute({ requestPolicy: 'network-only' });
  }, [alertsVersion, reexecute]);
  return (
    <section>
      <h1>Alerts</h1>
      <p className="hint">Limit warnings and blocks, low balances, emergency stops and plan publications, newest first.</p>
      <form
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          setAfter(null);
          setAccount(draft.trim() || null);
        }}
      >
        <label>
          Account <input value={draft} placeholder="every account" onChange={(e) => setDraft(e.target.value)} />
        </label>
        <button type="submit">Filter</button>
      </form>
      <QueryState result={result} what="alerts">
        {(data) => (
          <>
            {data.notifications.nodes.length ? <AlertTable alerts={data.notifications.nodes} /> : <Empty>No alerts{account ? ` for ${account}` : ''}.</Empty>}
            <div className="actions">
              {after ? <button type="button" onClick={() => setAfter(null)}>Newest</button> : null}
              {data.notifications.pageInfo.hasNextPage ? (
                <button type="button" onClick={() => setAfter(data.notifications.pageInfo.endCursor ?? null)}>
                  Older alerts
                </button>
              ) : null}
            </div>
          </>
        )}
      </QueryState>
    </section>
  );
}
