import { useCallback, useState } from 'react';
import { Link, useParams } from 'react-router';
import { useQuery } from 'urql';
import { graphql } from '../gql';
import type { TransactionKind } from '../gql/graphql';
import { usePermissions } from '../auth/session';
import { useLiveRefresh } from '../live/live';
import { BALANCE_CHANGED, USAGE_RECORDED } from '../live/subscriptions';
import { Empty, QueryState } from '../components/states';
import { AccountControlsForm } from '../components/AccountControls';
import { BoostForm, DeductForm, GrantForm, RefundForm, TransferForm } from './account/LedgerForms';
import { LimitsSection } from './account/Limits';
import { ApiKeysSection } from './account/ApiKeys';
import { PlanSection } from './account/PlanSection';
import {
  addMonths,
  countOf,
  formatCredits,
  formatDateTime,
  formatInteger,
  formatMicrosUsd,
  shortId,
  startOfMonth,
  viewerTimeZone,
} from '../lib/format';

const AccountDoc = graphql(`
  query AccountDetail($id: String!, $ledgerFirst: Int!, $ledgerAfter: String) {
    account(externalId: $id) {
      id
      externalId
      name
      email
      createdAt
      organization { externalId name memberCap balance { available } }
      balance { available reserved total pool }
      grants { id source amount remaining priority expiresAt createdAt }
      ledger(first: $ledgerFirst, after: $ledgerAfter) {
        nodes {
          delta
          transaction { id kind amount reason actor refundOf createdAt }
        }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
`);

const AccountControlsDoc = graphql(`
  query AccountControlsList {
    controls {
      accounts(first: 200) {
        nodes { accountExternalId stopped stopReason exemptFromLimits suspended updatedBy updatedAt }
      }
    }
  }
`);

const AccountUsageDoc = graphql(`
  query AccountUsage($id: String!, $from: DateTime!, $to: DateTime!, $tz: String!) {
    usageEvents(filter: { accountExternalId: $id }, first: 20) {
      nodes {
        id
        eventId
        model
        provider
        feature
        inputTokens
        outputTokens
        cachedInputTokens
        costMicros
        chargeMicros
        credits
        uncollectedCredits
        flags
        occurredAt
      }
    }
    usageSummary(from: $from, to: $to, groupBy: [], timezone: $tz, accountExternalId: $id) {
      __typename
      ... on UsageSummary { rows { calls inputTokens outputTokens cachedInputTokens costMicros chargeMicros credits marginMicros } }
      ... on ValidationFailed { field message }
    }
  }
`);

type Tab = 'grant' | 'deduct' | 'refund' | 'transfer' | 'boost';
const TABS: [Tab, string][] = [
  ['grant', 'Grant'],
  ['deduct', 'Deduct'],
  ['refund', 'Refund'],
  ['transfer', 'Transfer'],
  ['boost', 'Boost'],
];

const KIND_LABEL: Record<TransactionKind, string> = {
  GRANT: 'Grant',
  DEDUCT: 'Deduction',
  REFUND: 'Refund',
  TRANSFER: 'Transfer',
  EXPIRY: 'Expiry',
};

const LEDGER_PAGE = 25;

export function AccountDetailScreen() {
  const { externalId = '' } = useParams();
  const [ledgerAfter, setLedgerAfter] = useState<string | null>(null);
  const [result, reexecute] = useQuery({
    query: AccountDoc,
    variables: { id: externalId, ledgerFirst: LEDGER_PAGE, ledgerAfter },
  });
  const [controls, reexecuteControls] = useQuery({ query: AccountControlsDoc });
  const refresh = useCallback(() => reexecute({ requestPolicy: 'network-only' }), [reexecute]);
  useLiveRefresh(BALANCE_CHANGED, { accountExternalId: externalId }, refresh);
  const { canWrite } = usePermissions();
  const [tab, setTab] = useState<Tab>('grant');
  const [refundPreset, setRefundPreset] = useState<string | null>(null);

  return (
    <section>
      <p className="breadcrumb">
        <Link to="/accounts">Accounts</Link> / {externalId}
      </p>
      <QueryState result={result} what="the account">
        {(data) => {
          const account = data.account;
          if (!account) {
            return (
              <>
                <h1>{externalId}</h1>
                <Empty>There is no account with the external id “{externalId}”.</Empty>
              </>
            );
          }
          const deductions = account.ledger.nodes
            .filter((l) => l.transaction.kind === 'DEDUCT')
            .map((l) => l.transaction);
          const state = controls.data?.controls.accounts.nodes.find((c) => c.accountExternalId === externalId);
          return (
            <>
              <h1>
                {account.name || account.externalId} <small className="muted">{account.externalId}</small>
              </h1>
              <p className="muted">
                {account.email ?? 'No email'} · created {formatDateTime(account.createdAt)}
                {account.organization
                  ? ` · member of ${account.organization.name || account.organization.externalId}`
                  : ''}
              </p>
              <section className="kpis" aria-label="Balance">
                <dl>
                  <div>
                    <dt>Available</dt>
                    <dd data-testid="balance-available">{formatCredits(account.balance.available)}</dd>
                  </div>
                  <div>
                    <dt>Own grants</dt>
                    <dd>{formatCredits(account.balance.total)}</dd>
                  </div>
                  <div>
                    <dt>Held for calls in flight</dt>
                    <dd>{formatCredits(account.balance.reserved)}</dd>
                  </div>
                  <div>
                    <dt>From the organisation pool</dt>
                    <dd>{formatCredits(account.balance.pool)}</dd>
                  </div>
                </dl>
              </section>

              {canWrite ? (
                <section className="card" aria-labelledby="actions-title">
                  <h2 id="actions-title">Credits</h2>
                  <div
                    role="tablist"
                    aria-label="Credit operations"
                    className="tabs"
                    onKeyDown={(event) => {
                      // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
                      const index = TABS.findIndex(([key]) => key === tab);
                      const next =
                        event.key === 'ArrowRight'
                          ? (index + 1) % TABS.length
                          : event.key === 'ArrowLeft'
                            ? (index - 1 + TABS.length) % TABS.length
                            : event.key === 'Home'
                              ? 0
                              : event.key === 'End'
                                ? TABS.length - 1
                                : -1;
                      const target = TABS[next];
                      if (!target) return;
                      event.preventDefault();
                      setTab(target[0]);
                      document.getElementById(`tab-${target[0]}`)?.focus();
                    }}
                  >
                    {TABS.map(([key, label]) => (
                      <button
                        key={key}
                        type="button"
                        role="tab"
                        id={`tab-${key}`}
                        aria-selected={tab === key}
                        aria-controls={`panel-${key}`}
                        tabIndex={tab === key ? 0 : -1}
                        className={tab === key ? 'active' : undefined}
                        onClick={() => setTab(key)}
                      >
                        {label}
                      </button>
                    ))}
                  </div>
                  <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
                    {tab === 'grant' ? <GrantForm accountExternalId={externalId} onDone={refresh} /> : null}
                    {tab === 'deduct' ? <DeductForm accountExternalId={externalId} onDone={refresh} /> : null}
                    {tab === 'refund' ? (
                      <RefundForm accountExternalId={externalId} deductions={deductions} preset={refundPreset} onDone={refresh} />
                    ) : null}
                    {tab === 'transfer' ? <TransferForm accountExternalId={externalId} onDone={refresh} /> : null}
                    {tab === 'boost' ? <BoostForm accountExternalId={externalId} onDone={refresh} /> : null}
                  </div>
                </section>
              ) : null}

              <div className="grid-2">
                <section className="card" aria-labelledby="grants-title">
                  <h2 id="grants-title">Grants</h2>
                  {account.grants.length ? (
                    <table>
                      <thead>
                        <tr>
                          <th scope="col">Source</th>
                          <th scope="col" className="num">Remaining</th>
                          <th scope="col" className="num">Granted</th>
                          <th scope="col">Expires</th>
                          <th scope="col" className="num">Priority</th>
                        </tr>
                      </thead>
                      <tbody>
                        {account.grants.map((g) => (
                          <tr key={g.id}>
                            <td>{g.source.replace('_', ' ').toLowerCase()}</td>
                            <td className="num">{formatCredits(g.remaining)}</td>
                            <td className="num">{formatCredits(g.amount)}</td>
                            <td>{g.expiresAt ? formatDateTime(g.expiresAt) : 'Never'}</td>
                            <td className="num">{g.priority}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  ) : (
                    <Empty>No grants with credits left.</Empty>
                  )}
                  <p className="hint">In the order they will be consumed.</p>
                </section>
                <section className="card" aria-labelledby="controls-title">
                  <h2 id="controls-title">Controls</h2>
                  {controls.error && !controls.data ? (
                    <p className="state state-error">Could not load this account's controls.</p>
                  ) : (
                    <AccountControlsForm
                      accountExternalId={externalId}
                      current={{
                        stopped: state?.stopped ?? false,
                        stopReason: state?.stopReason ?? '',
                        exemptFromLimits: state?.exemptFromLimits ?? false,
                        suspended: state?.suspended ?? false,
                      }}
                      onDone={() => reexecuteControls({ requestPolicy: 'network-only' })}
                    />
                  )}
                  <p className="hint">
                    <Link to={`/pricing?account=${encodeURIComponent(externalId)}`}>This account's pricing policy</Link>
                  </p>
                </section>
              </div>

              <PlanSection accountExternalId={externalId} onPurchased={refresh} />

              <UsageSection accountExternalId={externalId} />

              <section className="card" aria-labelledby="ledger-title">
                <h2 id="ledger-title">Ledger</h2>
                {account.ledger.nodes.length ? (
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">When</th>
                        <th scope="col">Kind</th>
                        <th scope="col" className="num">Effect here</th>
                        <th scope="col">Reason</th>
                        <th scope="col">By</th>
                        <th scope="col">Transaction</th>
                        {canWrite ? <th scope="col"><span className="sr-only">Actions</span></th> : null}
                      </tr>
                    </thead>
                    <tbody>
                      {account.ledger.nodes.map((line) => (
                        <tr key={line.transaction.id}>
                          <td>{formatDateTime(line.transaction.createdAt)}</td>
                          <td>
                            {KIND_LABEL[line.transaction.kind]}
                            {line.transaction.refundOf ? ` of ${shortId(line.transaction.refundOf)}` : ''}
                          </td>
                          <td className={`num ${BigInt(line.delta) < 0n ? 'negative' : 'positive'}`}>
                            {BigInt(line.delta) > 0n ? '+' : ''}
                            {formatCredits(line.delta)}
                          </td>
                          <td>{line.transaction.reason || '—'}</td>
                          <td>{line.transaction.actor}</td>
                          <td>
                            <code title={line.transaction.id}>{shortId(line.transaction.id)}</code>
                          </td>
                          {canWrite ? (
                            <td>
                              {line.transaction.kind === 'DEDUCT' ? (
                                <button
                                  type="button"
                                  className="small"
                                  onClick={() => {
                                    setRefundPreset(line.transaction.id);
                                    setTab('refund');
                                    document.getElementById('actions-title')?.scrollIntoView();
                                  }}
                                >
                                  Refund…
                                </button>
                              ) : null}
                            </td>
                          ) : null}
                        </tr>
                      ))}
                    </tbody>
                  </table>
                ) : (
                  <Empty>No transactions yet.</Empty>
                )}
                <div className="actions">
                  {ledgerAfter ? (
                    <button type="button" onClick={() => setLedgerAfter(null)}>
                      Newest transactions
                    </button>
                  ) : null}
                  {account.ledger.pageInfo.hasNextPage ? (
                    <button type="button" onClick={() => setLedgerAfter(account.ledger.pageInfo.endCursor ?? null)}>
                      Older transactions
                    </button>
                  ) : null}
                </div>
              </section>

              <LimitsSection accountExternalId={externalId} />
              <ApiKeysSection accountExternalId={externalId} />
            </>
          );
        }}
      </QueryState>
    </section>
  );
}

function UsageSection({ accountExternalId }: { accountExternalId: string }) {
  const month = startOfMonth();
  const [result, reexecute] = useQuery({
    query: AccountUsageDoc,
    variables: {
      id: accountExternalId,
      from: month.toISOString(),
      to: addMonths(month, 1).toISOString(),
      tz: viewerTimeZone,
    },
  });
  const refresh = useCallback(() => reexecute({ requestPolicy: 'network-only' }), [reexecute]);
  const streaming = useLiveRefresh(USAGE_RECORDED, { accountExternalId }, refresh);
  return (
    <section className="card" aria-labelledby="usage-title">
      <h2 id="usage-title">Usage</h2>
      <QueryState result={result} what="usage">
        {(data) => {
          const summary = data.usageSummary.__typename === 'UsageSummary' ? data.usageSummary.rows[0] : undefined;
          return (
            <>
              {summary ? (
                <p data-testid="account-month-usage">
                  This month: {countOf(summary.calls, 'call', 'calls')},{' '}
                  {countOf(BigInt(summary.inputTokens) + BigInt(summary.outputTokens) + BigInt(summary.cachedInputTokens), 'token', 'tokens')},
                  provider cost {formatMicrosUsd(summary.costMicros)}, charged {formatMicrosUsd(summary.chargeMicros)} (
                  {formatCredits(summary.credits)}), margin {formatMicrosUsd(summary.marginMicros)}.
                </p>
              ) : null}
              <h3>
                Live feed <small className="muted">{streaming ? 'pushed as calls are booked' : 'refreshed every 5 s'}</small>{' '}
                <Link className="small" to={`/usage?account=${encodeURIComponent(accountExternalId)}`}>
                  all of this account's usage
                </Link>
              </h3>
              {data.usageEvents.nodes.length ? (
                <table data-testid="usage-feed">
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Model</th>
                      <th scope="col" className="num">Input</th>
                      <th scope="col" className="num">Output</th>
                      <th scope="col" className="num">Provider cost</th>
                      <th scope="col" className="num">Charged</th>
                      <th scope="col">Event</th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.usageEvents.nodes.map((e) => (
                      <tr key={e.id}>
                        <td>{formatDateTime(e.occurredAt)}</td>
                        <td>
                          {e.model}
                          {e.feature ? <small className="muted"> · {e.feature}</small> : null}
                        </td>
                        <td className="num">{formatInteger(e.inputTokens + e.cachedInputTokens)}</td>
                        <td className="num">{formatInteger(e.outputTokens)}</td>
                        <td className="num">{formatMicrosUsd(e.costMicros)}</td>
                        <td className="num">
                          {formatCredits(e.credits)}
                          {BigInt(e.uncollectedCredits) > 0n ? (
                            <small className="danger-text"> ({formatCredits(e.uncollectedCredits)} uncollected)</small>
                          ) : null}
                        </td>
                        <td>
                          <code>{e.eventId}</code>
                          {e.flags.length ? <small className="muted"> {e.flags.join(', ')}</small> : null}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : (
                <Empty>No usage recorded for this account yet.</Empty>
              )}
            </>
          );
        }}
      </QueryState>
    </section>
  );
}
