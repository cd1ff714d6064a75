import { useState, type FormEvent } from 'react';
import { Link, useParams } from 'react-router';
import { useClient, useMutation, useQuery } from 'urql';
import type { BillingCycle, PreviewPlanChangeQuery } from '../../gql/graphql';
import { usePermissions } from '../../auth/session';
import { Empty, QueryState } from '../../components/states';
import { applyFailure, ConfirmPanel, failureOf, FormError, FormSuccess, SelectField, type FieldErrors } from '../../components/forms';
import { formatCredits, formatDateTime, newIdempotencyKey, toBig } from '../../lib/format';
import { formatMinor } from '../../lib/money';
import { CYCLE_LABEL, priceLine } from '../plans/version';
import { CancelDoc, ChangePlanDoc, PreviewChangeDoc, SubscriptionDoc } from './documents';
import { STATUS_LABEL } from './SubscriptionsScreen';

type Preview = Extract<PreviewPlanChangeQuery['previewPlanChange'], { __typename: 'PlanChangePreview' }>;

export function SubscriptionDetailScreen() {
  const { accountExternalId = '' } = useParams();
  const [result, reexecute] = useQuery({ query: SubscriptionDoc, variables: { account: accountExternalId } });
  const refresh = () => reexecute({ requestPolicy: 'network-only' });
  const { canWrite } = usePermissions();
  return (
    <section>
      <p className="breadcrumb">
        <Link to="/subscriptions">Subscriptions</Link> / {accountExternalId}
      </p>
      <QueryState result={result} what="the subscription">
        {(data) => {
          const s = data.subscription;
          if (!s) {
            return (
              <>
                <h1>{accountExternalId}</h1>
                <Empty>This account has never had a subscription.</Empty>
              </>
            );
          }
          const live = s.status === 'ACTIVE' || s.status === 'TRIALING' || s.status === 'PAST_DUE';
          return (
            <>
              <h1>
                {s.planName} <small className="muted">for {s.accountExternalId}</small>
              </h1>
              <p>
                <Link to={`/accounts/${encodeURIComponent(s.accountExternalId)}`}>Open the account</Link>
              </p>
              <section className="kpis" aria-label="Subscription">
                <dl>
                  <div><dt>Status</dt><dd data-testid="subscription-status">{STATUS_LABEL[s.status]}</dd></div>
                  <div>
                    <dt>Plan</dt>
                    <dd>
                      {s.planCode} v{s.planVersion.version}
                      <small>{formatCredits(s.planVersion.includedCredits)} per period</small>
                    </dd>
                  </div>
                  <div>
                    <dt>Price</dt>
                    <dd>
                      {formatMinor(s.amountMinor, s.currency)}
                      <small>{CYCLE_LABEL[s.cycle].toLowerCase()}{s.country ? ` · ${s.country}` : ''}</small>
                    </dd>
                  </div>
                  <div>
                    <dt>Current period</dt>
                    <dd>
                      <small>{formatDateTime(s.currentPeriodStart)} –</small>
                      <small>{formatDateTime(s.currentPeriodEnd)}</small>
                    </dd>
                  </div>
                </dl>
              </section>
              <ul className="facts-list">
                {s.trialEndsAt ? <li>Trial ends {formatDateTime(s.trialEndsAt)}.</li> : null}
                {s.cancelAtPeriodEnd ? <li>Cancels at the end of the period ({formatDateTime(s.currentPeriodEnd)}).</li> : null}
                {s.canceledAt ? <li>Canceled {formatDateTime(s.canceledAt)}.</li> : null}
                {s.endedAt ? <li>Ended {formatDateTime(s.endedAt)}.</li> : null}
                {s.nextPlanVersionId ? <li>Moves to another plan version at the next renewal.</li> : null}
              </ul>
              {canWrite && live ? (
                <div className="grid-2">
                  <ChangePlan account={s.accountExternalId} currentPlan={s.planCode} currentCycle={s.cycle} plans={data.plans} onDone={refresh} />
                  <Cancel account={s.accountExternalId} periodEnd={s.currentPeriodEnd} scheduled={s.cancelAtPeriodEnd} onDone={refresh} />
                </div>
              ) : null}
              <section className="card" aria-labelledby="events-title">
                <h2 id="events-title">History</h2>
                {s.events.length ? (
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">When</th>
                        <th scope="col">What</th>
                        <th scope="col">Status</th>
                        <th scope="col" className="num">Recurring amount</th>
                        <th scope="col">By</th>
                      </tr>
                    </thead>
                    <tbody>
                      {s.events.map((e, i) => (
                        <tr key={i}>
                          <td>{formatDateTime(e.occurredAt)}</td>
                          <td>{e.kind.toLowerCase().replace(/_/g, ' ')}</td>
                          <td>
                            {e.fromStatus ? `${STATUS_LABEL[e.fromStatus]} → ` : ''}
                            {STATUS_LABEL[e.toStatus]}
                          </td>
                          <td className="num">{e.amountMinor != null && e.currency ? formatMinor(e.amountMinor, e.currency) : '—'}</td>
                          <td>{e.actor}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                ) : (
                  <Empty>No events.</Empty>
                )}
              </section>
              <section className="card" aria-labelledby="invoice-title">
                <h2 id="invoice-title">Invoice lines</h2>
                {s.invoiceLines.length ? (
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Created</th>
                        <th scope="col">Description</th>
                        <th scope="col">Period</th>
                        <th scope="col">Status</th>
                        <th scope="col" className="num">Amount</th>
                      </tr>
                    </thead>
                    <tbody>
                      {s.invoiceLines.map((l) => (
                        <tr key={l.id}>
                          <td>{formatDateTime(l.createdAt)}</td>
                          <td>
                            {l.description} <small className="muted">{l.kind.toLowerCase()}</small>
                          </td>
                          <td>{l.periodStart ? `${formatDateTime(l.periodStart)} – ${formatDateTime(l.periodEnd)}` : '—'}</td>
                          <td>{l.status.toLowerCase()}</td>
                          <td className={`num ${toBig(l.amountMinor) < 0n ? 'positive' : ''}`}>{formatMinor(l.amountMinor, l.currency)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                ) : (
                  <Empty>Nothing billed yet.</Empty>
                )}
                <p className="hint">Positive: the account owes it; negative: a credit to the account.</p>
              </section>
            </>
          );
        }}
      </QueryState>
    </section>
  );
}

interface PlanChoice {
  code: string;
  name: string;
  currentVersion?: { prices: { cycle: BillingCycle; currency: string; amountMinor: number | string }[] } | null;
}

function ChangePlan({
  account,
  currentPlan,
  currentCycle,
  plans,
  onDone,
}: {
  account: string;
  currentPlan: string;
  currentCycle: BillingCycle;
  plans: PlanChoice[];
  onDone: () => void;
}) {
  const client = useClient();
  const [planCode, setPlanCode] = useState('');
  const [cycle, setCycle] = useState<BillingCycle>(currentCycle);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [success, setSuccess] = useState<string | null>(null);
  const [preview, setPreview] = useState<{ data: Preview; key: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [state, change] = useMutation(ChangePlanDoc);
  const choices = plans.filter((p) => p.currentVersion);

  async function review(event: FormEvent) {
    event.preventDefault();
    setFormError(null);
    setSuccess(null);
    if (!planCode) return setErrors({ planCode: 'Choose the plan to move to.' });
    if (planCode === currentPlan && cycle === currentCycle) return setErrors({ planCode: 'That is the current plan and cycle.' });
    setErrors({});
    setBusy(true);
    const key = newIdempotencyKey('admin-change-plan');
    const result = await client
      .query(PreviewChangeDoc, { input: { accountExternalId: account, planCode, cycle, idempotencyKey: key } }, { requestPolicy: 'network-only' })
      .toPromise();
    setBusy(false);
    if (result.error) return setFormError(result.error.message);
    const outcome = result.data?.previewPlanChange;
    const failure = failureOf(outcome, ['PlanChangePreview']);
    if (failure) {
      const applied = applyFailure(failure, ['planCode', 'cycle']);
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    if (outcome?.__typename === 'PlanChangePreview') setPreview({ data: outcome, key });
  }

  async function confirm() {
    if (!preview) return;
    const result = await change({ input: { accountExternalId: account, planCode, cycle, idempotencyKey: preview.key } });
    setPreview(null);
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.changePlan, ['PlanSubscription']);
    if (failure) {
      const applied = applyFailure(failure, ['planCode', 'cycle']);
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    setSuccess(`Moved to ${planCode} (${CYCLE_LABEL[cycle].toLowerCase()}).`);
    setPlanCode('');
    onDone();
  }

  const p = preview?.data;
  return (
    <section className="card" aria-labelledby="change-title">
      <h2 id="change-title">Change plan</h2>
      <FormSuccess message={success} />
      <FormError message={formError} />
      {p ? (
        <ConfirmPanel
          title="Confirm the plan change"
          busy={state.fetching}
          onBack={() => setPreview(null)}
          onConfirm={() => void confirm()}
          confirmLabel="Change plan now"
          rows={[
            ['New plan', `${p.planCode}, ${CYCLE_LABEL[p.cycle].toLowerCase()}`],
            ['Credit for unused time', formatMinor(p.creditMinor, p.creditCurrency)],
            ['Charge until the period ends', formatMinor(p.chargeMinor, p.chargeCurrency)],
            ['Plan credits taken back (at most)', formatCredits(p.creditsTakenBack)],
            ['Plan credits granted', formatCredits(p.creditsGranted)],
            ['New period', `${formatDateTime(p.newPeriodStart)} – ${formatDateTime(p.newPeriodEnd)}`],
            [
              'Time left in this period',
              toBig(p.periodSeconds) > 0n ? `${(toBig(p.remainingSeconds) * 100n) / toBig(p.periodSeconds)} %` : '—',
            ],
          ]}
        />
      ) : (
        <form onSubmit={(e) => void review(e)} noValidate aria-label="Change plan">
          <SelectField
            label="New plan"
            value={planCode}
            error={errors.planCode}
            options={[
              { value: '', label: 'Choose a plan…' },
              ...choices.map((c) => ({ value: c.code, label: `${c.name} (${c.code}) — ${priceLine(c.currentVersion?.prices ?? [])}` })),
            ]}
            onValue={setPlanCode}
          />
          <SelectField
            label="Cycle"
            value={cycle}
            error={errors.cycle}
            options={Object.entries(CYCLE_LABEL).map(([value, label]) => ({ value, label }))}
            onValue={(v) => setCycle(v as BillingCycle)}
          />
          <div className="actions">
            <button type="submit" className="primary" disabled={busy}>
              {busy ? 'Working out the proration…' : 'Preview the change'}
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

function Cancel({ account, periodEnd, scheduled, onDone }: { account: string; periodEnd: string; scheduled: boolean; onDone: () => void }) {
  const [mode, setMode] = useState<'end' | 'now'>('end');
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [success, setSuccess] = useState<string | null>(null);
  const [state, cancel] = useMutation(CancelDoc);

  async function confirm() {
    const result = await cancel({ account, atPeriodEnd: mode === 'end' });
    setConfirming(false);
    const failure = result.error ? { message: result.error.message } : failureOf(result.data?.cancelSubscription, ['PlanSubscription']);
    if (failure) return setError(failure.message);
    setSuccess(mode === 'end' ? `The subscription ends ${formatDateTime(periodEnd)}.` : 'The subscription is canceled.');
    onDone();
  }

  return (
    <section className="card" aria-labelledby="cancel-title">
      <h2 id="cancel-title">Cancel</h2>
      <FormSuccess message={success} />
      <FormError message={error} />
      {confirming ? (
        <ConfirmPanel
          title="Confirm the cancellation"
          danger
          busy={state.fetching}
          onBack={() => setConfirming(false)}
          onConfirm={() => void confirm()}
          confirmLabel="Cancel the subscription"
          rows={[['When', mode === 'end' ? `At the period end, ${formatDateTime(periodEnd)}` : 'Now']]}
        />
      ) : (
        <>
          <SelectField
            label="When"
            value={mode}
            options={[
              { value: 'end', label: scheduled ? 'At the period end (already scheduled)' : 'At the end of the period' },
              { value: 'now', label: 'Now' },
            ]}
            onValue={(v) => setMode(v as 'end' | 'now')}
          />
          <button type="button" className="danger" onClick={() => setConfirming(true)}>
            Cancel the subscription…
          </button>
        </>
      )}
    </section>
  );
}
