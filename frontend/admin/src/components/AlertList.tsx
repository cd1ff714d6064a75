import { Link } from 'react-router';
import { formatCredits, formatDateTime, formatInteger, formatMicrosUsd } from '../lib/format';

export interface AlertRow {
  id: string;
  kind: string;
  accountExternalId?: string | null;
  subject: string;
  window: string;
  createdAt: string;
  payload?: unknown;
}

const KIND_LABEL: Record<string, string> = {
  WARNING: 'Warning',
  BLOCK: 'Blocked',
  LOW_BALANCE: 'Low balance',
  EMERGENCY_STOP: 'Emergency stop',
  PLAN_PUBLISHED: 'Plan published',
};

function amount(limit: string, value: unknown): string {
  if (typeof value !== 'number' && typeof value !== 'string') return '?';
  if (limit.startsWith('COST')) return formatMicrosUsd(value);
  return `${formatInteger(value)}${limit.startsWith('TOKENS') ? ' tokens' : limit.startsWith('CALLS') ? ' calls' : ''}`;
}

/** The alert in a sentence, from what its payload carries. */
function details(alert: AlertRow): string {
  const p = (typeof alert.payload === 'object' && alert.payload !== null ? alert.payload : {}) as Record<string, unknown>;
  if ((alert.kind === 'WARNING' || alert.kind === 'BLOCK') && typeof p.limit === 'string') {
    return `${p.limit.toLowerCase().replace(/_/g, ' ')}: ${amount(p.limit, p.used)} of ${amount(p.limit, p.limitValue)}`;
  }
  if (alert.kind === 'LOW_BALANCE' && (typeof p.used === 'number' || typeof p.used === 'string')) {
    const floor = typeof p.limitValue === 'number' || typeof p.limitValue === 'string' ? ` (alert at ${formatCredits(p.limitValue)})` : '';
    return `${formatCredits(p.used)} left${floor}`;
  }
  if (alert.kind === 'EMERGENCY_STOP') {
    const on = p.on === true ? 'switched on' : p.on === false ? 'switched off' : 'changed';
    return `${on}${typeof p.reason === 'string' && p.reason ? ` — ${p.reason}` : ''}${typeof p.by === 'string' ? ` (by ${p.by})` : ''}`;
  }
  if (alert.kind === 'PLAN_PUBLISHED' && typeof p.planCode === 'string') {
    const migrate = typeof p.migrate === 'string' ? p.migrate.toLowerCase().replace(/_/g, ' ') : '';
    return `${p.planCode} v${String(p.version ?? '?')} published${migrate && migrate !== 'none' ? `, subscribers move ${migrate}` : ''}`;
  }
  const entries = Object.entries(p);
  return entries.length ? entries.map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(', ') : '—';
}

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
          <th scope="col">Details</th>
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
            <td>{a.window.startsWith('at:') ? formatDateTime(a.window.slice(3)) : a.window || '—'}</td>
            <td>{details(a)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
