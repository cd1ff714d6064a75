import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { Link } from 'react-router';
import { useQuery } from 'urql';
import { graphql } from '../gql';
import type { SummaryRowFieldsFragment } from '../gql/graphql';
import { useLive, useLiveRefresh } from '../live/live';
import { USAGE_TICKER, type UsageTick } from '../live/subscriptions';
import { QueryState, Empty } from '../components/states';
import { AlertTable } from '../components/AlertList';
import { CostChargeChart, LiveUsageChart, type LivePoint } from '../components/charts';
import {
  addDays,
  addMonths,
  formatCredits,
  formatHour,
  formatInteger,
  formatMicrosUsd,
  formatTime,
  percentOf,
  startOfDay,
  startOfMonth,
  toBig,
  viewerTimeZone,
} from '../lib/format';

graphql(`
  fragment SummaryRowFields on UsageSummaryRow {
    accountExternalId
    model
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
`);

const OverviewQuery = graphql(`
  query Overview(
    $dayFrom: DateTime!
    $dayTo: DateTime!
    $monthFrom: DateTime!
    $monthTo: DateTime!
    $tz: String!
  ) {
    today: usageSummary(from: $dayFrom, to: $dayTo, groupBy: [], timezone: $tz) {
      __typename
      ... on UsageSummary { rows { ...SummaryRowFields } }
      ... on ValidationFailed { field message }
    }
    month: usageSummary(from: $monthFrom, to: $monthTo, groupBy: [], timezone: $tz) {
      __typename
      ... on UsageSummary { rows { ...SummaryRowFields } }
      ... on ValidationFailed { field message }
    }
    hours: usageSummary(from: $dayFrom, to: $dayTo, groupBy: [HOUR], timezone: $tz) {
      __typename
      ... on UsageSummary { rows { ...SummaryRowFields } }
    }
    topAccounts: usageSummary(from: $monthFrom, to: $monthTo, groupBy: [ACCOUNT], timezone: $tz) {
      __typename
      ... on UsageSummary { rows { ...SummaryRowFields } }
    }
    topModels: usageSummary(from: $monthFrom, to: $monthTo, groupBy: [MODEL], timezone: $tz) {
      __typename
      ... on UsageSummary { rows { ...SummaryRowFields } }
    }
    notifications(first: 5) {
      nodes { id kind accountExternalId subject window createdAt payload }
    }
  }
`);

type Row = SummaryRowFieldsFragment;
type SummaryLike = { __typename: string; rows?: Row[] } | null | undefined;

function rowsOf(result: SummaryLike): Row[] {
  return result && 'rows' in result && result.rows ? result.rows : [];
}

function tokensOf(row: Row): bigint {
  return toBig(row.inputTokens) + toBig(row.outputTokens) + toBig(row.cachedInputTokens);
}

function byChargeDesc(a: Row, b: Row): number {
  const d = toBig(b.chargeMicros) - toBig(a.chargeMicros);
  return d > 0n ? 1 : d < 0n ? -1 : 0;
}

function Kpis({ title, row }: { title: string; row: Row | undefined }) {
  if (!row) return <Empty>No usage {title.toLowerCase()}.</Empty>;
  return (
    <section className="kpis" aria-label={title}>
      <h2>{title}</h2>
      <dl>
        <div>
          <dt>Tokens</dt>
          <dd data-testid={`${title}-tokens`}>{formatInteger(tokensOf(row))}</dd>
        </div>
        <div>
          <dt>Calls</dt>
          <dd data-testid={`${title}-calls`}>{formatInteger(row.calls)}</dd>
        </div>
        <div>
          <dt>Provider cost</dt>
          <dd>{formatMicrosUsd(row.costMicros)}</dd>
        </div>
        <div>
          <dt>Charged</dt>
          <dd>
            {formatMicrosUsd(row.chargeMicros)}
            <small>{formatCredits(row.credits)}</small>
          </dd>
        </div>
        <div>
          <dt>Margin</dt>
          <dd className={toBig(row.marginMicros) < 0n ? 'negative' : undefined}>
            {formatMicrosUsd(row.marginMicros)}
            <small>{percentOf(row.marginMicros, row.chargeMicros)} of charge</small>
          </dd>
        </div>
      </dl>
    </section>
  );
}

const MAX_POINTS = 60;
const TICK_SECONDS = 5;

export function OverviewScreen() {
  const dayStart = startOfDay().getTime();
  const variables = useMemo(() => {
    const day = new Date(dayStart);
    const month = startOfMonth(day);
    return {
      dayFrom: day.toISOString(),
      dayTo: addDays(day, 1).toISOString(),
      monthFrom: month.toISOString(),
      monthTo: addMonths(month, 1).toISOString(),
      tz: viewerTimeZone,
    };
  }, [dayStart]);
  const [result, reexecute] = useQuery({ query: OverviewQuery, variables });
  const refresh = useCallback(() => reexecute({ requestPolicy: 'network-only' }), [reexecute]);
  const [points, setPoints] = useState<LivePoint[]>([]);
  const onTick = useCallback((data: Record<string, unknown>) => {
    const tick = data.usageTicker as UsageTick | undefined;
    if (!tick) return;
    const point: LivePoint = {
      label: formatTime(new Date(tick.to)),
      calls: Number(toBig(tick.calls)),
      tokens: Number(toBig(tick.tokens)),
    };
    setPoints((list) => [...list.slice(-(MAX_POINTS - 1)), point]);
  }, []);
  const streaming = useLiveRefresh(USAGE_TICKER, { interval: TICK_SECONDS }, refresh, onTick);
  const { alertsVersion } = useLive();
  useEffect(() => {
    if (alertsVersion > 0) refresh();
  }, [alertsVersion, refresh]);

  // Without the ticker, the live chart shows what today's totals grew by between two polls.
  const previous = useRef<{ calls: bigint; tokens: bigint } | null>(null);
  const todayRow = rowsOf(result.data?.today)[0];
  useEffect(() => {
    if (!todayRow || streaming) return;
    const now = { calls: toBig(todayRow.calls), tokens: tokensOf(todayRow) };
    const before = previous.current;
    previous.current = now;
    if (!before) return;
    const point: LivePoint = {
      label: formatTime(new Date()),
      calls: Number(now.calls - before.calls),
      tokens: Number(now.tokens - before.tokens),
    };
    setPoints((list) => [...list.slice(-(MAX_POINTS - 1)), point]);
  }, [todayRow, streaming]);

  return (
    <section>
      <h1>Overview</h1>
      <QueryState result={result} what="the overview">
        {(data) => {
          const monthRow = rowsOf(data.month)[0];
          const hours = rowsOf(data.hours).map((r) => ({
            label: r.period ? formatHour(r.period) : '',
            costUsd: Number(toBig(r.costMicros)) / 1e6,
            chargeUsd: Number(toBig(r.chargeMicros)) / 1e6,
          }));
          const accounts = rowsOf(data.topAccounts).sort(byChargeDesc).slice(0, 5);
          const models = rowsOf(data.topModels).sort(byChargeDesc).slice(0, 5);
          return (
            <>
              <div className="grid-2">
                <Kpis title="Today" row={todayRow} />
                <Kpis title="This month" row={monthRow} />
              </div>
              <div className="grid-2">
                <section className="card">
                  <h2>Live usage</h2>
                  <p className="hint">
                    {streaming
                      ? `Calls and tokens booked on every replica, per ${TICK_SECONDS} s, pushed by the server.`
                      : 'Calls and tokens added between two refreshes (every 5 s).'}
                  </p>
                  {points.length ? (
                    <LiveUsageChart points={points} />
                  ) : (
                    <Empty>Waiting for the next update…</Empty>
                  )}
                </section>
                <section className="card">
                  <h2>Today by hour</h2>
                  {hours.length ? (
                    <CostChargeChart points={hours} title="Provider cost and charge per hour today" />
                  ) : (
                    <Empty>No usage recorded today.</Empty>
                  )}
                </section>
              </div>
              <div className="grid-2">
                <section className="card">
                  <h2>Top accounts this month</h2>
                  {accounts.length ? (
                    <table>
                      <thead>
                        <tr>
                          <th scope="col">Account</th>
                          <th scope="col" className="num">Calls</th>
                          <th scope="col" className="num">Charged</th>
                          <th scope="col" className="num">Margin</th>
                        </tr>
                      </thead>
                      <tbody>
                        {accounts.map((r) => (
                          <tr key={r.accountExternalId ?? ''}>
                            <td>
                              <Link to={`/accounts/${encodeURIComponent(r.accountExternalId ?? '')}`}>
                                {r.accountExternalId}
                              </Link>
                            </td>
                            <td className="num">{formatInteger(r.calls)}</td>
                            <td className="num">{formatMicrosUsd(r.chargeMicros)}</td>
                            <td className="num">{formatMicrosUsd(r.marginMicros)}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  ) : (
                    <Empty>No account has used anything this month.</Empty>
                  )}
                </section>
                <section className="card">
                  <h2>Top models this month</h2>
                  {models.length ? (
                    <table>
                      <thead>
                        <tr>
                          <th scope="col">Model</th>
                          <th scope="col" className="num">Tokens</th>
                          <th scope="col" className="num">Provider cost</th>
                          <th scope="col" className="num">Charged</th>
                        </tr>
                      </thead>
                      <tbody>
                        {models.map((r) => (
                          <tr key={r.model ?? ''}>
                            <td>{r.model}</td>
                            <td className="num">{formatInteger(tokensOf(r))}</td>
                            <td className="num">{formatMicrosUsd(r.costMicros)}</td>
                            <td className="num">{formatMicrosUsd(r.chargeMicros)}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  ) : (
                    <Empty>No model has been used this month.</Empty>
                  )}
                </section>
              </div>
              <section className="card">
                <h2>
                  Recent alerts <Link to="/alerts" className="small">all alerts</Link>
                </h2>
                {data.notifications.nodes.length ? (
                  <AlertTable alerts={data.notifications.nodes} />
                ) : (
                  <Empty>No alerts have been raised.</Empty>
                )}
              </section>
            </>
          );
        }}
      </QueryState>
    </section>
  );
}
