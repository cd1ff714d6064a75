import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';
import { graphql } from '../../gql';
import type { PricingPolicyKind, PricingPolicyQuery } from '../../gql/graphql';
import { usePermissions } from '../../auth/session';
import { QueryState } from '../../components/states';
import { applyFailure, failureOf, FormError, FormSuccess, SelectField, TextField, type FieldErrors } from '../../components/forms';
import { formatDateTime, formatDecimalUsd, isDecimal } from '../../lib/format';

const PolicyDoc = graphql(`
  query PricingPolicy($account: String) {
    pricingPolicy(accountExternalId: $account) {
      __typename
      ... on PricingPolicy {
        scope
        accountExternalId
        kind
        multiplier
        fixedPerCallUsd
        defaultMarkup
        platformFeeUsd
        modelRules { model markup minChargeUsd }
        timeRules { start end timezone multiplier weekdays }
        updatedAt
      }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
    }
  }
`);

const SetPolicyDoc = graphql(`
  mutation SetPricingPolicy($input: SetPricingPolicyInput!) {
    setPricingPolicy(input: $input) {
      __typename
      ... on PricingPolicy { scope kind }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
    }
  }
`);

const ClearPolicyDoc = graphql(`
  mutation ClearPricingPolicy($account: String) {
    clearPricingPolicy(accountExternalId: $account) {
      __typename
      ... on PricingPolicy { scope kind }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
    }
  }
`);

type Policy = Extract<PricingPolicyQuery['pricingPolicy'], { __typename: 'PricingPolicy' }>;

const KINDS: { value: PricingPolicyKind; label: string }[] = [
  { value: 'PASSTHROUGH', label: 'Passthrough (charge the provider cost)' },
  { value: 'MULTIPLIER', label: 'Multiplier of the provider cost' },
  { value: 'PER_MODEL', label: 'Markup per model, with a minimum charge' },
  { value: 'FIXED_PER_CALL', label: 'Fixed price per call' },
];

const SCOPE_LABEL: Record<string, string> = {
  ACCOUNT: "the account's own policy",
  PLAN: "the policy of the account's plan",
  GLOBAL: 'the global default',
  BUILT_IN: 'the built-in default (passthrough)',
};

export function PolicyEditor({ initialAccount }: { initialAccount: string | null }) {
  const [accountDraft, setAccountDraft] = useState(initialAccount ?? '');
  const [account, setAccount] = useState<string | null>(initialAccount);
  const [result, reexecute] = useQuery({ query: PolicyDoc, variables: { account } });
  const { canWrite } = usePermissions();
  const [, clear] = useMutation(ClearPolicyDoc);
  const [message, setMessage] = useState<string | null>(null);
  const [clearError, setClearError] = useState<string | null>(null);
  const refresh = () => reexecute({ requestPolicy: 'network-only' });

  async function clearPolicy() {
    const what = account ? `the own policy of ${account}` : 'the global default policy';
    if (!window.confirm(`Remove ${what}? Calls are then priced by the policy below it.`)) return;
    const done = await clear({ account });
    const failure = done.error ? { message: done.error.message } : failureOf(done.data?.clearPricingPolicy, ['PricingPolicy']);
    setClearError(failure?.message ?? null);
    if (!failure) setMessage('Policy removed.');
    refresh();
  }

  return (
    <section className="card" aria-labelledby="policy-title">
      <h2 id="policy-title">Pricing policy</h2>
      <form
        className="toolbar"
        onSubmit={(e) => {
          e.preventDefault();
          setMessage(null);
          setAccount(accountDraft.trim() || null);
        }}
      >
        <label>
          Account <input value={accountDraft} placeholder="empty: the global default" onChange={(e) => setAccountDraft(e.target.value)} />
        </label>
        <button type="submit">Show policy</button>
      </form>
      <FormSuccess message={message} />
      <FormError message={clearError} />
      <QueryState result={result} what="the pricing policy">
        {(data) => {
          const policy = data.pricingPolicy;
          if (policy.__typename !== 'PricingPolicy') {
            return <FormError message={'message' in policy ? policy.message : 'Could not load the policy.'} />;
          }
          const own = account ? policy.scope === 'ACCOUNT' : policy.scope === 'GLOBAL';
          return (
            <>
              <p>
                {account ? `Calls of ${account}` : 'Calls of accounts without their own policy'} are priced by{' '}
                <strong>{SCOPE_LABEL[policy.scope] ?? policy.scope.toLowerCase()}</strong>
                {policy.updatedAt ? `, last changed ${formatDateTime(policy.updatedAt)}` : ''}.
              </p>
              <PolicySummary policy={policy} />
              {canWrite ? (
                <>
                  <PolicyForm
                    key={`${account ?? ''}:${policy.updatedAt ?? ''}`}
                    account={account}
                    policy={policy}
                    onDone={() => {
                      setMessage('Policy saved.');
                      refresh();
                    }}
                  />
                  {own ? (
                    <button type="button" className="danger" onClick={() => void clearPolicy()}>
                      {account ? "Remove the account's own policy" : 'Remove the global default'}
                    </button>
                  ) : null}
                </>
              ) : null}
            </>
          );
        }}
      </QueryState>
    </section>
  );
}

function PolicySummary({ policy }: { policy: Policy }) {
  return (
    <dl className="facts">
      <div><dt>Kind</dt><dd>{KINDS.find((k) => k.value === policy.kind)?.label ?? policy.kind}</dd></div>
      {policy.kind === 'MULTIPLIER' ? <div><dt>Multiplier</dt><dd>× {policy.multiplier}</dd></div> : null}
      {policy.kind === 'FIXED_PER_CALL' ? <div><dt>Per call</dt><dd>{formatDecimalUsd(policy.fixedPerCallUsd)}</dd></div> : null}
      {policy.kind === 'PER_MODEL' ? <div><dt>Default markup</dt><dd>× {policy.defaultMarkup ?? '1'}</dd></div> : null}
      <div><dt>Platform fee per call</dt><dd>{formatDecimalUsd(policy.platformFeeUsd)}</dd></div>
      {policy.modelRules.length ? (
        <div>
          <dt>Model rules</dt>
          <dd>{policy.modelRules.map((r) => `${r.model}: × ${r.markup}, at least ${formatDecimalUsd(r.minChargeUsd)}`).join('; ')}</dd>
        </div>
      ) : null}
      {policy.timeRules.length ? (
        <div>
          <dt>Time rules</dt>
          <dd>
            {policy.timeRules
              .map((r) => `${r.start}–${r.end} ${r.timezone}${r.weekdays.length ? ` (days ${r.weekdays.join(',')})` : ''}: × ${r.multiplier}`)
              .join('; ')}
          </dd>
        </div>
      ) : null}
    </dl>
  );
}

interface RuleDraft {
  model: string;
  markup: string;
  minChargeUsd: string;
}
interface TimeDraft {
  start: string;
  end: string;
  timezone: string;
  multiplier: string;
  weekdays: string;
}

function PolicyForm({ account, policy, onDone }: { account: string | null; policy: Policy; onDone: () => void }) {
  const [kind, setKind] = useState<PricingPolicyKind>(policy.kind);
  const [values, setValues] = useState({
    multiplier: policy.multiplier ?? '',
    fixedPerCallUsd: policy.fixedPerCallUsd ?? '',
    defaultMarkup: policy.defaultMarkup ?? '',
    platformFeeUsd: policy.platformFeeUsd ?? '0',
  });
  const [rules, setRules] = useState<RuleDraft[]>(policy.modelRules.map((r) => ({ model: r.model, markup: r.markup, minChargeUsd: r.minChargeUsd })));
  const [times, setTimes] = useState<TimeDraft[]>(
    policy.timeRules.map((t) => ({ start: t.start, end: t.end, timezone: t.timezone, multiplier: t.multiplier, weekdays: t.weekdays.join(',') })),
  );
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [state, save] = useMutation(SetPolicyDoc);
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (kind === 'MULTIPLIER' && !isDecimal(values.multiplier)) found.multiplier = 'A multiplier such as 1.5.';
    if (kind === 'FIXED_PER_CALL' && !isDecimal(values.fixedPerCallUsd)) found.fixedPerCallUsd = 'USD per call, e.g. 0.01.';
    if (kind === 'PER_MODEL' && values.defaultMarkup.trim() && !isDecimal(values.defaultMarkup)) found.defaultMarkup = 'A markup such as 1.2, or empty for 1.';
    if (values.platformFeeUsd.trim() && !isDecimal(values.platformFeeUsd)) found.platformFeeUsd = 'USD per call, e.g. 0.001, or 0.';
    rules.forEach((r, i) => {
      if (!r.model.trim()) found[`rule${i}`] = 'Each rule needs a model name or pattern.';
      else if (!isDecimal(r.markup)) found[`rule${i}`] = 'The markup must be a number such as 1.3.';
      else if (r.minChargeUsd.trim() && !isDecimal(r.minChargeUsd)) found[`rule${i}`] = 'The minimum charge is USD, e.g. 0.0005.';
    });
    times.forEach((t, i) => {
      if (!/^\d{2}:\d{2}$/.test(t.start) || !/^\d{2}:\d{2}$/.test(t.end)) found[`time${i}`] = 'Start and end as HH:MM.';
      else if (!t.timezone.trim()) found[`time${i}`] = 'Give the IANA time zone, e.g. Europe/Warsaw.';
      else if (!isDecimal(t.multiplier)) found[`time${i}`] = 'The multiplier must be a number such as 0.8.';
      else if (t.weekdays.trim() && !/^[1-7](\s*,\s*[1-7])*$/.test(t.weekdays.trim())) found[`time${i}`] = 'Days as ISO numbers 1 (Monday) to 7, comma-separated.';
    });
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length) return;
    const result = await save({
      input: {
        kind,
        accountExternalId: account,
        multiplier: kind === 'MULTIPLIER' ? values.multiplier.trim() : null,
        fixedPerCallUsd: kind === 'FIXED_PER_CALL' ? values.fixedPerCallUsd.trim() : null,
        defaultMarkup: kind === 'PER_MODEL' && values.defaultMarkup.trim() ? values.defaultMarkup.trim() : null,
        platformFeeUsd: values.platformFeeUsd.trim() || null,
        modelRules: kind === 'PER_MODEL' ? rules.map((r) => ({ model: r.model.trim(), markup: r.markup.trim(), minChargeUsd: r.minChargeUsd.trim() || null })) : null,
        timeRules: times.map((t) => ({
          start: t.start,
          end: t.end,
          timezone: t.timezone.trim(),
          multiplier: t.multiplier.trim(),
          weekdays: t.weekdays.trim() ? t.weekdays.split(',').map((d) => Number(d.trim())) : null,
        })),
      },
    });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.setPricingPolicy, ['PricingPolicy']);
    if (failure) {
      const applied = applyFailure(failure, Object.keys(values));
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    onDone();
  }

  return (
    <details>
      <summary>{account ? `Set ${account}'s own policy` : 'Edit the global default policy'}</summary>
      <form onSubmit={(e) => void submit(e)} noValidate className="form-grid" aria-label="Pricing policy">
        <FormError message={formError} />
        <SelectField label="Kind" value={kind} options={KINDS} onValue={(v) => setKind(v as PricingPolicyKind)} />
        {kind === 'MULTIPLIER' ? (
          <TextField label="Multiplier" inputMode="decimal" value={values.multiplier} error={errors.multiplier} onValue={set('multiplier')} hint="Charge = provider cost × this." />
        ) : null}
        {kind === 'FIXED_PER_CALL' ? (
          <TextField label="USD per call" inputMode="decimal" value={values.fixedPerCallUsd} error={errors.fixedPerCallUsd} onValue={set('fixedPerCallUsd')} />
        ) : null}
        {kind === 'PER_MODEL' ? (
          <TextField label="Default markup" inputMode="decimal" value={values.defaultMarkup} error={errors.defaultMarkup} onValue={set('defaultMarkup')} hint="For models no rule matches; empty: 1." />
        ) : null}
        <TextField label="Platform fee per call (USD)" inputMode="decimal" value={values.platformFeeUsd} error={errors.platformFeeUsd} onValue={set('platformFeeUsd')} />
        {kind === 'PER_MODEL' ? (
          <fieldset className="rules">
            <legend>Model rules</legend>
            {rules.map((r, i) => (
              <div key={i} className="rule-row">
                <TextField label="Model or pattern" value={r.model} onValue={(v) => setRules((l) => l.map((x, j) => (j === i ? { ...x, model: v } : x)))} />
                <TextField label="Markup" inputMode="decimal" value={r.markup} onValue={(v) => setRules((l) => l.map((x, j) => (j === i ? { ...x, markup: v } : x)))} />
                <TextField
                  label="Minimum charge (USD)"
                  inputMode="decimal"
                  value={r.minChargeUsd}
                  error={errors[`rule${i}`]}
                  onValue={(v) => setRules((l) => l.map((x, j) => (j === i ? { ...x, minChargeUsd: v } : x)))}
                />
                <button type="button" className="small" onClick={() => setRules((l) => l.filter((_, j) => j !== i))}>
                  Remove rule
                </button>
              </div>
            ))}
            <button type="button" className="small" onClick={() => setRules((l) => [...l, { model: '', markup: '1', minChargeUsd: '' }])}>
              Add a model rule
            </button>
          </fieldset>
        ) : null}
        <fieldset className="rules">
          <legend>Time-of-day multipliers</legend>
          {times.map((t, i) => {
            const update = (k: keyof TimeDraft) => (v: string) => setTimes((l) => l.map((x, j) => (j === i ? { ...x, [k]: v } : x)));
            return (
              <div key={i} className="rule-row">
                <TextField label="From (HH:MM)" value={t.start} onValue={update('start')} />
                <TextField label="Until (HH:MM)" value={t.end} onValue={update('end')} />
                <TextField label="Time zone" value={t.timezone} onValue={update('timezone')} />
                <TextField label="Multiplier" inputMode="decimal" value={t.multiplier} onValue={update('multiplier')} />
                <TextField label="Days (1–7)" value={t.weekdays} error={errors[`time${i}`]} onValue={update('weekdays')} hint="Empty: every day." />
                <button type="button" className="small" onClick={() => setTimes((l) => l.filter((_, j) => j !== i))}>
                  Remove
                </button>
              </div>
            );
          })}
          <button
            type="button"
            className="small"
            onClick={() =>
              setTimes((l) => [...l, { start: '00:00', end: '06:00', timezone: Intl.DateTimeFormat().resolvedOptions().timeZone, multiplier: '0.8', weekdays: '' }])
            }
          >
            Add a time rule
          </button>
        </fieldset>
        <div className="actions">
          <button type="submit" className="primary" disabled={state.fetching}>
            {state.fetching ? 'Saving…' : 'Save policy'}
          </button>
        </div>
      </form>
    </details>
  );
}
