import { useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { useMutation, useQuery } from 'urql';
import type { BillingCycle, SubscriptionStatus } from '../../gql/graphql';
import { usePermissions } from '../../auth/session';
import { Empty, QueryState } from '../../components/states';
import { applyFailure, failureOf, FormError, SelectField, TextField, type FieldErrors } from '../../components/forms';
import { formatDateTime, newIdempotencyKey } from '../../lib/format';
import { formatMinor } from '../../lib/money';
import { CYCLE_LABEL } from '../plans/version';
import { PlanChoicesDoc, SubscribeDoc, SubscriptionsDoc } from './documents';

export const STATUS_LABEL: Record<SubscriptionStatus, string> = {
  TRIALING: 'Trial',
  ACTIVE: 'Active',
  PAST_DUE: 'Past due',
  CANCELED: 'Canceled',
  EXPIRED: 'Expired',
};

export function SubscriptionsScreen() {
  const [status, setStatus] = useState<'' | SubscriptionStatus>('');
  const [planCode, setPlanCode] = useState('');
  const [pages, setPages] = useState<(string | null)[]>([null]);
  const after = pages[pages.length - 1] ?? null;
  const [result] = useQuery({ query: SubscriptionsDoc, variables: { status: status || null, planCode: planCode.trim() || null, after } });
  const { canWrite } = usePermissions();
  return (
    <section>
      <h1>Subscriptions</h1>
      <div className="toolbar">
        <SelectField
          label="Status"
          value={status}
          options={[{ value: '', label: 'Any status' }, ...Object.entries(STATUS_LABEL).map(([value, label]) => ({ value, label }))]}
          onValue={(v) => {
            setPages([null]);
            setStatus(v as '' | SubscriptionStatus);
          }}
        />
        <TextField
          label="Plan code"
          value={planCode}
          onValue={(v) => {
            setPages([null]);
            setPlanCode(v);
          }}
        />
      </div>
      <QueryState result={result} what="subscriptions">
        {(data) => (
          <>
            {data.subscriptions.nodes.length ? (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Account</th>
                    <th scope="col">Plan</th>
                    <th scope="col">Status</th>
                    <th scope="col" className="num">Price</th>
                    <th scope="col">Period ends</th>
                    <th scope="col">Since</th>
                  </tr>
                </thead>
                <tbody>
                  {data.subscriptions.nodes.map((s) => (
                    <tr key={s.id}>
                      <td>
                        <Link to={`/subscriptions/${encodeURIComponent(s.accountExternalId)}`}>{s.accountExternalId}</Link>
                      </td>
                      <td>
                        <Link to={`/plans/${encodeURIComponent(s.planCode)}`}>{s.planName}</Link>{' '}
                        <small className="muted">
                          {s.planCode} v{s.planVersion.version}
                        </small>
                      </td>
                      <td>
                        {STATUS_LABEL[s.status]}
                        {s.cancelAtPeriodEnd ? <small className="muted"> · ends at period end</small> : null}
                      </td>
                      <td className="num">
                        {formatMinor(s.amountMinor, s.currency)} <small className="muted">{CYCLE_LABEL[s.cycle].toLowerCase()}</small>
                      </td>
                      <td>{formatDateTime(s.currentPeriodEnd)}</td>
                      <td>{formatDateTime(s.createdAt)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <Empty>No subscriptions{status || planCode ? ' match these filters' : ' yet'}.</Empty>
            )}
            <div className="actions">
              {pages.length > 1 ? <button type="button" onClick={() => setPages((p) => p.slice(0, -1))}>Newer</button> : null}
              {data.subscriptions.pageInfo.hasNextPage ? (
                <button type="button" onClick={() => setPages((p) => [...p, data.subscriptions.pageInfo.endCursor ?? null])}>
                  Older
                </button>
              ) : null}
            </div>
          </>
        )}
      </QueryState>
      {canWrite ? <SubscribeForm /> : null}
    </section>
  );
}

function SubscribeForm() {
  const navigate = useNavigate();
  const [plans] = useQuery({ query: PlanChoicesDoc });
  const [values, setValues] = useState({ accountExternalId: '', planCode: '', cycle: 'MONTHLY', country: '' });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [key] = useState(() => newIdempotencyKey('admin-subscribe'));
  const [state, subscribe] = useMutation(SubscribeDoc);
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));
  const available = (plans.data?.plans ?? []).filter((p) => p.currentVersion);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!values.accountExternalId.trim()) found.accountExternalId = 'The account to subscribe.';
    if (!values.planCode) found.planCode = 'Choose a published plan.';
    if (values.country.trim() && !/^[A-Za-z]{2}$/.test(values.country.trim())) found.country = 'An ISO 3166 code such as PL, or empty.';
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length) return;
    const result = await subscribe({
      input: {
        accountExternalId: values.accountExternalId.trim(),
        planCode: values.planCode,
        cycle: values.cycle as BillingCycle,
        idempotencyKey: `${key}-${values.accountExternalId.trim()}-${values.planCode}-${values.cycle}`,
        country: values.country.trim().toUpperCase() || null,
      },
    });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.subscribe, ['PlanSubscription']);
    if (failure) {
      const applied = applyFailure(failure, Object.keys(values));
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    navigate(`/subscriptions/${encodeURIComponent(values.accountExternalId.trim())}`);
  }

  return (
    <section className="card" aria-labelledby="subscribe-title">
      <h2 id="subscribe-title">Subscribe an account</h2>
      <form onSubmit={(e) => void submit(e)} noValidate className="form-grid" aria-label="Subscribe an account">
        <FormError message={formError} />
        <TextField label="Account (external id)" value={values.accountExternalId} error={errors.accountExternalId} onValue={set('accountExternalId')} />
        <SelectField
          label="Plan"
          value={values.planCode}
          error={errors.planCode}
          options={[{ value: '', label: available.length ? 'Choose a plan…' : 'No published plans' }, ...available.map((p) => ({ value: p.code, label: `${p.name} (${p.code})` }))]}
          onValue={set('planCode')}
        />
        <SelectField
          label="Cycle"
          value={values.cycle}
          error={errors.cycle}
          options={Object.entries(CYCLE_LABEL).map(([value, label]) => ({ value, label }))}
          onValue={set('cycle')}
        />
        <TextField label="Country" value={values.country} error={errors.country} onValue={set('country')} hint="Picks a regional price; empty: the default currency." />
        <div className="actions">
          <button type="submit" className="primary" disabled={state.fetching}>
            Subscribe
          </button>
        </div>
      </form>
    </section>
  );
}
