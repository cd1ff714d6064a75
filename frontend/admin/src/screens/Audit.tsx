import { useState } from 'react';
import { useQuery } from 'urql';
import { graphql } from '../gql';
import { Empty, QueryState } from '../components/states';
import { formatDateTime } from '../lib/format';

const AuditDoc = graphql(`
  query AuditLog($after: String) {
    auditLog(first: 50, after: $after) {
      nodes { id actor actorRole operation input result createdAt }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

export function AuditScreen() {
  const [pages, setPages] = useState<(string | null)[]>([null]);
  const after = pages[pages.length - 1] ?? null;
  const [result] = useQuery({ query: AuditDoc, variables: { after } });
  return (
    <section>
      <h1>Audit log</h1>
      <p className="hint">Every change made through the API, who made it and what came of it, newest first.</p>
      <QueryState result={result} what="the audit log">
        {(data) => (
          <>
            {data.auditLog.nodes.length ? (
              <table>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Who</th>
                    <th scope="col">Operation</th>
                    <th scope="col">Details</th>
                  </tr>
                </thead>
                <tbody>
                  {data.auditLog.nodes.map((entry) => (
                    <tr key={entry.id}>
                      <td>{formatDateTime(entry.createdAt)}</td>
                      <td>
                        {entry.actor} <small className="muted">{entry.actorRole}</small>
                      </td>
                      <td>
                        <code>{entry.operation}</code>
                      </td>
                      <td>
                        <details>
                          <summary>Input and result</summary>
                          <pre>{json(entry.input)}</pre>
                          <pre>{json(entry.result)}</pre>
                        </details>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <Empty>Nothing has been changed yet.</Empty>
            )}
            <div className="actions">
              {pages.length > 1 ? (
                <button type="button" onClick={() => setPages((p) => p.slice(0, -1))}>
                  Newer entries
                </button>
              ) : null}
              {data.auditLog.pageInfo.hasNextPage ? (
                <button type="button" onClick={() => setPages((p) => [...p, data.auditLog.pageInfo.endCursor ?? null])}>
                  Older entries
                </button>
              ) : null}
            </div>
          </>
        )}
      </QueryState>
    </section>
  );
}
