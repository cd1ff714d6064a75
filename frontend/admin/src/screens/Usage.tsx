import { useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { useQuery } from 'urql';
import { graphql } from '../gql';
import type { UsageGrouping } from '../gql/graphql';
import { Empty, QueryState } from '../components/states';
import { CheckboxField, FormError, TextField } from '../components/forms';
import {
  addDays,
  formatCredits,
  formatDateTime,
  formatInteger,
  formatMicrosUsd,
  fromLocalInput,
  startOfMonth,
  toBig,
  toLocalInput,
  viewerTimeZone,
} from '../lib/format';

const UsageSummaryDoc = graphql(`
  query UsageReport($from: DateTime!, $to: DateTime!, $groupBy: [UsageGrouping!]!, $tz: String!, $account: String) {
    usageSummary(from: $from, to: $to, groupBy: $groupBy, timezone: $tz, accountExternalId: $account) {
      __typename
      ... on UsageSummary {
        rows {
          accountExternalId
          model
          feature
          period
          calls
          inputTokens
          outputTokens
          cachedInputTokens
          costMicros
          chargeMicros
          credits
          uncollectedCredits
          marginMicros
        }
      }
      ... on ValidationFailed { field message }
    }
  }
`);

const UsageEventsDoc = graphql(`
  query UsageEventsReport($filter: UsageEventFilter!, $after: String) {
    usageEvents(filter: $filter, first: 50, after: $after) {
      nodes {
        id
        eventId
        accountExternalId
        model
        provider
        feature
        inputTokens
        outputTokens
        cachedInputTokens
        costMicros
        chargeMicros
        credits
        byok
        flags
        occurredAt
      }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

const GROUPINGS: [UsageGrouping, string][] = [
  ['DAY', 'Day'],
  ['HOUR', 'Hour'],
  ['ACCOUNT', 'Account'],
  ['MODEL', 'Model'],
  ['FEATURE', 'Feature'],
];

interface Filters {
  from: string;
  to: string;
  account: string;
  model: string;
  feature: string;
  groupBy: UsageGrouping[];
}

function initial(account: string): Filters {
  const now = new Date();
  return { from: toLocalInput(startOfMonth(now)), to: toLocalInput(addDays(now, 1)), account, model: '', feature: '', groupBy: ['DAY'] };
}

type SummaryRow = {
  accountExternalId?: string | null;
  model?: string | null;
  feature?: string | null;
  period?: string | null;
  calls: number | string;
  inputTokens: number | string;
  outputTokens: number | string;
  cachedInputTokens: number | string;
  costMicros: number | string;
  chargeMicros: number | string;
  credits: number | string;
  uncollectedCredits: number | string;
  marginMicros: number | string;
};

function csvOf(rows: SummaryRow[], groupBy: UsageGrouping[]): string {
  const keys = groupBy.map((g) => (g === 'DAY' || g === 'HOUR' ? 'period' : g === 'ACCOUNT' ? 'account' : g.toLowerCase()));
  const header = [...new Set(keys), 'calls', 'input_tokens', 'output_tokens', 'cached_input_tokens', 'cost_micros', 'charge_micros', 'credits', 'uncollected_credits', 'margin_micros'];
  const cell = (v: unknown) => {
    const text = v === null || v === undefined ? '' : String(v);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const lines = rows.map((r) => {
    const keyed = [...new Set(keys)].map((k) => (k === 'period' ? r.period : k === 'account' ? r.accountExternalId : k === 'model' ? r.model : r.feature));
    return [...keyed, r.calls, r.inputTokens, r.outputTokens, r.cachedInputTokens, r.costMicros, r.chargeMicros, r.credits, r.uncollectedCredits, r.marginMicros]
      .map(cell)
      .join(',');
  });
  return [header.join(','), ...lines].join('\n') + '\n';
}

function download(name: string, text: string) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  URL.revokeObjectURL(url);
}

export function UsageScreen() {
  const [params] = useSearchParams();
  const [draft, setDraft] = useState<Filters>(() => initial(params.get('account') ?? ''));
  const [applied, setApplied] = useState<Filters>(() => initial(params.get('account') ?? ''));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [pages, setPages] = useState<(string | null)[]>([null]);
  const from = fromLocalInput(applied.from) ?? '';
  const to = fromLocalInput(applied.to) ?? '';
  const [summary] = useQuery({
    query: UsageSummaryDoc,
    variables: { from, to, groupBy: applied.groupBy, tz: viewerTimeZone, account: applied.account || null },
  });
  const [events] = useQuery({
    query: UsageEventsDoc,
    variables: {
      filter: { accountExternalId: applied.account || null, model: applied.model || null, feature: applied.feature || null, from, to },
      after: pages[pages.length - 1] ?? null,
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const found: Record<string, string> = {};
    const f = fromLocalInput(draft.from);
    const t = fromLocalInput(draft.to);
    if (!f) found.from = 'Choose when the period starts.';
    if (!t) found.to = 'Choose when the period ends.';
    if (f && t && new Date(t) <= new Date(f)) found.to = 'The end must be after the start.';
    if (draft.groupBy.includes('DAY') && draft.groupBy.includes('HOUR')) found.groupBy = 'Group by day or by hour, not both.';
    setErrors(found);
    if (Object.keys(found).length) return;
    setPages([null]);
    setApplied({ ...draft, account: draft.account.trim(), model: draft.model.trim(), feature: draft.feature.trim() });
  }

  const toggle = (g: UsageGrouping, on: boolean) =>
    setDraft((d) => ({ ...d, groupBy: on ? [...d.groupBy, g] : d.groupBy.filter((x) => x !== g) }));

  return (
    <section>
      <h1>Usage</h1>
      <form onSubmit={submit} noValidate className="form-grid card" aria-label="Usage filters">
        <TextField label="From" type="datetime-local" value={draft.from} error={errors.from} onValue={(v) => setDraft((d) => ({ ...d, from: v }))} />
        <TextField label="To" type="datetime-local" value={draft.to} error={errors.to} onValue={(v) => setDraft((d) => ({ ...d, to: v }))} hint={`Your time zone: ${viewerTimeZone}.`} />
        <TextField label="Account" value={draft.account} onValue={(v) => setDraft((d) => ({ ...d, account: v }))} hint="Empty: every account." />
        <TextField label="Model (events)" value={draft.model} onValue={(v) => setDraft((d) => ({ ...d, model: v }))} />
        <TextField label="Feature (events)" value={draft.feature} onValue={(v) => setDraft((d) => ({ ...d, feature: v }))} />
        <fieldset>
          <legend>Group totals by</legend>
          {GROUPINGS.map(([g, label]) => (
            <CheckboxField key={g} label={label} checked={draft.groupBy.includes(g)} onValue={(on) => toggle(g, on)} />
          ))}
          {errors.groupBy ? <p className="field-error" role="alert">{errors.groupBy}</p> : null}
        </fieldset>
        <div className="actions">
          <button type="submit" className="primary">
            Show usage
          </button>
        </div>
      </form>

      <section className="card" aria-labelledby="totals-title">
        <h2 id="totals-title">Totals</h2>
        <QueryState result={summary} what="usage totals">
          {(data) => {
            if (data.usageSummary.__typename !== 'UsageSummary') {
              return <FormError message={'message' in data.usageSummary ? data.usageSummary.message : 'Refused.'} />;
            }
            const rows = data.usageSummary.rows.filter((r) => toBig(r.calls) > 0n || applied.groupBy.length === 0);
            if (!rows.length) return <Empty>No usage in this period.</Empty>;
            const g = applied.groupBy;
            return (
              <>
                <table>
                  <thead>
                    <tr>
                      {g.includes('DAY') || g.includes('HOUR') ? <th scope="col">{g.includes('DAY') ? 'Day' : 'Hour'}</th> : null}
                      {g.includes('ACCOUNT') ? <th scope="col">Account</th> : null}
                      {g.includes('MODEL') ? <th scope="col">Model</th> : null}
                      {g.includes('FEATURE') ? <th scope="col">Feature</th> : null}
                      <th scope="col" className="num">Calls</th>
                      <th scope="col" className="num">Tokens in / out</th>
                      <th scope="col" className="num">Provider cost</th>
                      <th scope="col" className="num">Charged</th>
                      <th scope="col" className="num">Margin</th>
                    </tr>
                  </thead>
                  <tbody>
                    {rows.map((r, i) => (
                      <tr key={i}>
                        {g.includes('DAY') || g.includes('HOUR') ? (
                          <td>{r.period ? (g.includes('DAY') ? new Date(r.period).toLocaleDateString() : formatDateTime(r.period)) : '—'}</td>
                        ) : null}
                        {g.includes('ACCOUNT') ? (
                          <td>
                            <Link to={`/accounts/${encodeURIComponent(r.accountExternalId ?? '')}`}>{r.accountExternalId}</Link>
                          </td>
                        ) : null}
                        {g.includes('MODEL') ? <td>{r.model}</td> : null}
                        {g.includes('FEATURE') ? <td>{r.feature ?? '(none)'}</td> : null}
                        <td className="num">{formatInteger(r.calls)}</td>
                        <td className="num">
                          {formatInteger(toBig(r.inputTokens) + toBig(r.cachedInputTokens))} / {formatInteger(r.outputTokens)}
                        </td>
                        <td className="num">{formatMicrosUsd(r.costMicros)}</td>
                        <td className="num">
                          {formatMicrosUsd(r.chargeMicros)} <small className="muted">{formatCredits(r.credits)}</small>
                        </td>
                        <td className={`num ${toBig(r.marginMicros) < 0n ? 'negative' : ''}`}>{formatMicrosUsd(r.marginMicros)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                <div className="actions">
                  <button type="button" onClick={() => download(`usage-${applied.from.slice(0, 10)}-${applied.to.slice(0, 10)}.csv`, csvOf(rows, g))}>
                    Download CSV
                  </button>
                </div>
              </>
            );
          }}
        </QueryState>
      </section>

      <section className="card" aria-labelledby="events-title">
        <h2 id="events-title">Events</h2>
        <QueryState result={events} what="usage events">
          {(data) => (
            <>
              {data.usageEvents.nodes.length ? (
                <table>
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Account</th>
                      <th scope="col">Model</th>
                      <th scope="col" className="num">Tokens in / out</th>
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
                          <Link to={`/accounts/${encodeURIComponent(e.accountExternalId)}`}>{e.accountExternalId}</Link>
                        </td>
                        <td>
                          {e.model}
                          {e.provider ? <small className="muted"> · {e.provider}</small> : null}
                          {e.feature ? <small className="muted"> · {e.feature}</small> : null}
                          {e.byok ? <small className="muted"> · own key</small> : null}
                        </td>
                        <td className="num">
                          {formatInteger(e.inputTokens + e.cachedInputTokens)} / {formatInteger(e.outputTokens)}
                        </td>
                        <td className="num">{formatMicrosUsd(e.costMicros)}</td>
                        <td className="num">{formatCredits(e.credits)}</td>
                        <td>
                          <code>{e.eventId}</code>
                          {e.flags.length ? <small className="muted"> {e.flags.join(', ')}</small> : null}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : (
                <Empty>No usage events match.</Empty>
              )}
              <div className="actions">
                {pages.length > 1 ? <button type="button" onClick={() => setPages((p) => p.slice(0, -1))}>Newer events</button> : null}
                {data.usageEvents.pageInfo.hasNextPage ? (
                  <button type="button" onClick={() => setPages((p) => [...p, data.usageEvents.pageInfo.endCursor ?? null])}>
                    Older events
                  </button>
                ) : null}
              </div>
            </>
          )}
        </QueryState>
      </section>
    </section>
  );
}
