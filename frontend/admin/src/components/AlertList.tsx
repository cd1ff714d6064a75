import { Link } from 'react-router';
import { formatDateTime } from '../lib/format';

export interface AlertRow {
  id: string;
  kind: string;
  accountExternalId?: string | null;
  subject: string;
  window: string;
  createdAt: string;
}

const KIND_LABEL: Record<string, string> = {
  WARNING: 'Warning',
  BLOCK: 'Blocked',
  LOW_BALANCE: 'Low balance',
  EMERGENCY_STOP: 'Emergency stop',
};

export function AlertTable({ alerts, showAccount = true }: { alerts: AlertRow[]; showAccount?: boolean }) {
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Kind</th>
          {showAccount ? <th scope="col">Account</th> : null}
          <th scope="col">Subject</th>
          <th scope="col">Window</th>
        </tr>
      </thead>
      <tbody>
        {alerts.map((a) => (
          <tr key={a.id}>
            <td>{formatDateTime(a.createdAt)}</td>
            <td>
              <span className={`tag tag-${a.kind.toLowerCase()}`}>{KIND_LABEL[a.kind] ?? a.kind}</span>
            </td>
            {showAccount ? (
              <td>
                {a.accountExternalId ? (
                  <Link to={`/accounts/${encodeURIComponent(a.accountExternalId)}`}>{a.accountExternalId}</Link>
                ) : (
                  'All accounts'
                )}
              </td>
            ) : null}
            <td>{a.subject}</td>
            <td>{a.window || '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
