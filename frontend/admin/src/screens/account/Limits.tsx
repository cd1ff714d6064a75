import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';
import { graphql } from '../../gql';
import type { AccountLimitsQuery, WindowLimit } from '../../gql/graphql';
import { usePermissions } from '../../auth/session';
import { QueryState } from '../../components/states';
import { applyFailure, failureOf, FormError, FormSuccess, TextAreaField, TextField, type FieldErrors } from '../../components/forms';
import { countOf, formatCredits, formatDateTime, formatInteger, formatMicrosUsd, microsToUsdInput, parseUsdToMicros, parseWhole, type BigIntish } from '../../lib/format';

const AccountLimitsDoc = graphql(`
  query AccountLimits($id: String!) {
    accountLimits(accountExternalId: $id) {
      accountExternalId
      tokensPerDay
      tokensPerMonth
      callsPerDay
      callsPerMonth
      costCapPerDayMicros
      costCapPerMonthMicros
      maxTokensPerRequest
      requestsPerMinute
      allowedModels
      timezone
      lowBalanceCredits
      thresholds { limit warnAtPercent blockAtPercent }
      updatedAt
      day { window tokens calls costMicros }
      month { window tokens calls costMicros }
      usage { limit window used limitValue percentUsed warnAtPercent blockAtPercent level }
    }
  }
`);

const SetLimits = graphql(`
  mutation SetAccountLimits($input: SetAccountLimitsInput!) {
    setAccountLimits(input: $input) {
      __typename
      ... on AccountLimits { accountExternalId }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
    }
  }
`);

type Limits = NonNullable<AccountLimitsQuery['accountLimits']>;

const WINDOW_LIMITS: WindowLimit[] = [
  'TOKENS_PER_DAY',
  'TOKENS_PER_MONTH',
  'CALLS_PER_DAY',
  'CALLS_PER_MONTH',
  'COST_CAP_PER_DAY',
  'COST_CAP_PER_MONTH',
];

const LIMIT_LABEL: Record<WindowLimit, string> = {
  TOKENS_PER_DAY: 'Tokens per day',
  TOKENS_PER_MONTH: 'Tokens per month',
  CALLS_PER_DAY: 'Calls per day',
  CALLS_PER_MONTH: 'Calls per month',
  COST_CAP_PER_DAY: 'Provider cost per day',
  COST_CAP_PER_MONTH: 'Provider cost per month',
};

function showLimitValue(limit: WindowLimit, value: BigIntish): string {
  if (limit.startsWith('COST_CAP')) return formatMicrosUsd(value);
  if (limit.startsWith('TOKENS')) return `${formatInteger(value)} tokens`;
  return `${formatInteger(value)} calls`;
}

export function LimitsSection({ accountExternalId }: { accountExternalId: string }) {
  const [result, reexecute] = useQuery({ query: AccountLimitsDoc, variables: { id: accountExternalId } });
  const { canWrite } = usePermissions();
  const [editing, setEditing] = useState(false);
  return (
    <section className="card" aria-labelledby="limits-title">
      <h2 id="limits-title">Limits</h2>
      <QueryState result={result} what="limits">
        {(data) => {
          const limits = data.accountLimits;
          if (!limits) return <p>No limits: the account was not found.</p>;
          return (
            <>
              <p className="hint">
                Counted against limits — today ({limits.day.window}): {countOf(limits.day.calls, 'call', 'calls')},{' '}
                {countOf(limits.day.tokens, 'token', 'tokens')}, {formatMicrosUsd(limits.day.costMicros)} provider cost; this month (
                {limits.month.window}): {countOf(limits.month.calls, 'call', 'calls')}, {countOf(limits.month.tokens, 'token', 'tokens')},{' '}
                {formatMicrosUsd(limits.month.costMicros)}.
              </p>
              {limits.usage.length ? (
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Limit</th>
                      <th scope="col" className="num">Used</th>
                      <th scope="col" className="num">Limit</th>
                      <th scope="col">Level</th>
                    </tr>
                  </thead>
                  <tbody>
                    {limits.usage.map((u) => (
                      <tr key={u.limit}>
                        <td>{LIMIT_LABEL[u.limit]}</td>
                        <td className="num">{showLimitValue(u.limit, u.used)}</td>
                        <td className="num">{showLimitValue(u.limit, u.limitValue)}</td>
                        <td>
                          <meter min={0} max={100} low={u.warnAtPercent} high={u.blockAtPercent} optimum={0} value={Math.min(u.percentUsed, 100)} />{' '}
                          <span className={`tag tag-${u.level.toLowerCase()}`}>
                            {u.percentUsed} % · {u.level === 'OK' ? 'OK' : u.level === 'WARNING' ? 'Warning' : 'Blocked'}
                          </span>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : (
                <p>No window limits are set for this account.</p>
              )}
              <dl className="facts">
                <div><dt>Max tokens per request</dt><dd>{limits.maxTokensPerRequest == null ? 'No limit' : formatInteger(limits.maxTokensPerRequest)}</dd></div>
                <div><dt>Requests per minute</dt><dd>{limits.requestsPerMinute == null ? 'No limit' : formatInteger(limits.requestsPerMinute)}</dd></div>
                <div><dt>Allowed models</dt><dd>{limits.allowedModels == null ? 'Every model' : limits.allowedModels.length ? limits.allowedModels.join(', ') : 'None'}</dd></div>
                <div><dt>Low-balance alert</dt><dd>{limits.lowBalanceCredits == null ? 'Off' : `At ${formatCredits(limits.lowBalanceCredits)} or below`}</dd></div>
                <div><dt>Calendar</dt><dd>{limits.timezone ?? 'UTC'}</dd></div>
                <div><dt>Last changed</dt><dd>{limits.updatedAt ? formatDateTime(limits.updatedAt) : 'Never'}</dd></div>
              </dl>
              {canWrite && !editing ? (
                <button type="button" onClick={() => setEditing(true)}>
                  Edit limits
                </button>
              ) : null}
              {canWrite && editing ? (
                <LimitsForm
                  limits={limits}
                  onCancel={() => setEditing(false)}
                  onDone={() => {
                    setEditing(false);
                    reexecute({ requestPolicy: 'network-only' });
                  }}
                />
              ) : null}
            </>
          );
        }}
      </QueryState>
    </section>
  );
}

const WHOLE_FIELDS = ['tokensPerDay', 'tokensPerMonth', 'callsPerDay', 'callsPerMonth', 'maxTokensPerRequest', 'requestsPerMinute', 'lowBalanceCredits'] as const;
const USD_FIELDS = ['costCapPerDayMicros', 'costCapPerMonthMicros'] as const;

function text(value: BigIntish | null | undefined): string {
  return value === null || value === undefined ? '' : String(value);
}

function LimitsForm({ limits, onDone, onCancel }: { limits: Limits; onDone: () => void; onCancel: () => void }) {
  const [values, setValues] = useState<Record<string, string>>(() => ({
    tokensPerDay: text(limits.tokensPerDay),
    tokensPerMonth: text(limits.tokensPerMonth),
    callsPerDay: text(limits.callsPerDay),
    callsPerMonth: text(limits.callsPerMonth),
    costCapPerDayMicros: limits.costCapPerDayMicros == null ? '' : microsToUsdInput(limits.costCapPerDayMicros),
    costCapPerMonthMicros: limits.costCapPerMonthMicros == null ? '' : microsToUsdInput(limits.costCapPerMonthMicros),
    maxTokensPerRequest: text(limits.maxTokensPerRequest),
    requestsPerMinute: text(limits.requestsPerMinute),
    allowedModels: limits.allowedModels == null ? '' : limits.allowedModels.join('\n'),
    timezone: limits.timezone ?? '',
    lowBalanceCredits: text(limits.lowBalanceCredits),
    ...Object.fromEntries(
      limits.thresholds.flatMap((t) => [
        [`warn_${t.limit}`, String(t.warnAtPercent)],
        [`block_${t.limit}`, String(t.blockAtPercent)],
      ]),
    ),
  }));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [success, setSuccess] = useState<string | null>(null);
  const [state, save] = useMutation(SetLimits);
  const set = (k: string) => (v: string) => setValues((s) => ({ ...s, [k]: v }));
  const v = (k: string) => values[k] ?? '';

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    const input: Record<string, unknown> = { accountExternalId: limits.accountExternalId };
    for (const name of WHOLE_FIELDS) {
      const raw = v(name).trim();
      if (!raw) {
        input[name] = null;
        continue;
      }
      const parsed = parseWhole(raw);
      if (parsed === null || parsed <= 0n) found[name] = 'A whole number above zero, or empty for no limit.';
      else input[name] = name === 'requestsPerMinute' ? Number(parsed) : parsed.toString();
    }
    for (const name of USD_FIELDS) {
      const raw = v(name).trim();
      if (!raw) {
        input[name] = null;
        continue;
      }
      const micros = parseUsdToMicros(raw);
      if (micros === null || micros <= 0n) found[name] = 'An amount in USD such as 12.50 (up to 6 decimals), or empty.';
      else input[name] = micros.toString();
    }
    const models = v('allowedModels')
      .split(/[\n,]/)
      .map((m) => m.trim())
      .filter(Boolean);
    input.allowedModels = models.length ? models : null;
    input.timezone = v('timezone').trim() || null;
    const thresholds = [];
    for (const limit of WINDOW_LIMITS) {
      const warn = Number(v(`warn_${limit}`) || 80);
      const block = Number(v(`block_${limit}`) || 95);
      if (!Number.isInteger(warn) || !Number.isInteger(block) || warn < 1 || block > 100 || warn >= block) {
        found[`warn_${limit}`] = 'Whole percents, warning below block, block at most 100.';
        continue;
      }
      if (warn !== 80 || block !== 95) thresholds.push({ limit, warnAtPercent: warn, blockAtPercent: block });
    }
    input.thresholds = thresholds;
    setErrors(found);
    setFormError(null);
    setSuccess(null);
    if (Object.keys(found).length) return;
    const result = await save({ input: input as never });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.setAccountLimits, ['AccountLimits']);
    if (failure) {
      const applied = applyFailure(failure, [...Object.keys(values), 'thresholds']);
      if (applied.fieldErrors.thresholds) setFormError(`Thresholds: ${applied.fieldErrors.thresholds}`);
      setErrors(applied.fieldErrors);
      if (applied.formError) setFormError(applied.formError);
      return;
    }
    setSuccess('Limits saved.');
    onDone();
  }

  return (
    <form onSubmit={(e) => void submit(e)} noValidate className="form-grid" aria-label="Edit limits">
      <p className="hint">Every limit left empty is no limit. Saving replaces all of the account's limits.</p>
      <FormError message={formError} />
      <FormSuccess message={success} />
      <TextField label="Tokens per day" inputMode="numeric" value={v('tokensPerDay')} error={errors.tokensPerDay} onValue={set('tokensPerDay')} />
      <TextField label="Tokens per month" inputMode="numeric" value={v('tokensPerMonth')} error={errors.tokensPerMonth} onValue={set('tokensPerMonth')} />
      <TextField label="Calls per day" inputMode="numeric" value={v('callsPerDay')} error={errors.callsPerDay} onValue={set('callsPerDay')} />
      <TextField label="Calls per month" inputMode="numeric" value={v('callsPerMonth')} error={errors.callsPerMonth} onValue={set('callsPerMonth')} />
      <TextField label="Provider cost cap per day (USD)" inputMode="decimal" value={v('costCapPerDayMicros')} error={errors.costCapPerDayMicros} onValue={set('costCapPerDayMicros')} />
      <TextField label="Provider cost cap per month (USD)" inputMode="decimal" value={v('costCapPerMonthMicros')} error={errors.costCapPerMonthMicros} onValue={set('costCapPerMonthMicros')} />
      <TextField label="Max tokens per request" inputMode="numeric" value={v('maxTokensPerRequest')} error={errors.maxTokensPerRequest} onValue={set('maxTokensPerRequest')} />
      <TextField label="Requests per minute" inputMode="numeric" value={v('requestsPerMinute')} error={errors.requestsPerMinute} onValue={set('requestsPerMinute')} />
      <TextField label="Low-balance alert (credits)" inputMode="numeric" value={v('lowBalanceCredits')} error={errors.lowBalanceCredits} onValue={set('lowBalanceCredits')} />
      <TextField label="Calendar time zone" placeholder="UTC" value={v('timezone')} error={errors.timezone} onValue={set('timezone')} hint="IANA name such as Europe/Warsaw; empty: UTC." />
      <TextAreaField
        label="Allowed models"
        rows={3}
        value={v('allowedModels')}
        error={errors.allowedModels}
        onValue={set('allowedModels')}
        hint="One name or pattern (gpt-4o*) per line; empty allows every model."
      />
      <fieldset className="thresholds">
        <legend>Warning and block thresholds (%)</legend>
        {WINDOW_LIMITS.map((limit) => (
          <div key={limit} className="threshold-row">
            <span>{LIMIT_LABEL[limit]}</span>
            <TextField label="Warn at" inputMode="numeric" value={v(`warn_${limit}`) || '80'} onValue={set(`warn_${limit}`)} />
            <TextField label="Block at" inputMode="numeric" value={v(`block_${limit}`) || '95'} error={errors[`warn_${limit}`]} onValue={set(`block_${limit}`)} />
          </div>
        ))}
      </fieldset>
      <div className="actions">
        <button type="submit" className="primary" disabled={state.fetching}>
          {state.fetching ? 'Saving…' : 'Save limits'}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
