import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { useMutation, useQuery } from 'urql';
import { graphql } from '../../gql';
import { usePermissions } from '../../auth/session';
import { QueryState } from '../../components/states';
import { applyFailure, ConfirmPanel, failureOf, FormError, FormSuccess, SelectField, type FieldErrors } from '../../components/forms';
import { formatCredits, formatDateTime, newIdempotencyKey } from '../../lib/format';
import { formatMinor } from '../../lib/money';
import { CYCLE_LABEL } from '../plans/version';
import { STATUS_LABEL } from '../subscriptions/SubscriptionsScreen';

const AccountPlanDoc = graphql(`
  query AccountPlan($id: String!) {
    subscription(accountExternalId: $id) {
      id
      status
      planCode
      planName
      cycle
      currency
      amountMinor
      currentPeriodEnd
      cancelAtPeriodEnd
    }
    tokenPackages { code name credits prices { currency amountMinor } validityDays availableToPlans }
    invoiceLines(accountExternalId: $id) { id kind status description currency amountMinor createdAt }
  }
`);

const PurchaseDoc = graphql(`
  mutation PurchaseTokenPackage($account: String!, $code: String!, $key: String!, $currency: String) {
    purchaseTokenPackage(accountExternalId: $account, code: $code, idempotencyKey: $key, currency: $currency) {
      __typename
      ... on TokenPurchase { credits currency amountMinor paymentStatus }
      ... on AccountNotFound { externalId message }
      ... on NotFound { missingId: id message }
      ... on ValidationFailed { field message }
      ... on IllegalTransition { currentStatus: status action message }
      ... on IdempotencyConflict { idempotencyKey message }
    }
  }
`);

/** The account's subscription at a glance, and selling it a token package. */
export function PlanSection({ accountExternalId, onPurchased }: { accountExternalId: string; onPurchased: () => void }) {
  const [result, reexecute] = useQuery({ query: AccountPlanDoc, variables: { id: accountExternalId } });
  const { canWrite } = usePermissions();
  return (
    <section className="card" aria-labelledby="plan-title">
      <h2 id="plan-title">Plan</h2>
      <QueryState result={result} what="the subscription">
        {(data) => {
          const s = data.subscription;
          const planCode = s && s.status !== 'CANCELED' && s.status !== 'EXPIRED' ? s.planCode : null;
          const packages = data.tokenPackages.filter((p) => !p.availableToPlans.length || (planCode && p.availableToPlans.includes(planCode)));
          return (
            <>
              {s ? (
                <p>
                  <Link to={`/subscriptions/${encodeURIComponent(accountExternalId)}`}>{s.planName}</Link> ({s.planCode}),{' '}
                  {STATUS_LABEL[s.status].toLowerCase()}, {formatMinor(s.amountMinor, s.currency)} {CYCLE_LABEL[s.cycle].toLowerCase()};{' '}
                  {s.cancelAtPeriodEnd ? 'ends' : 'period ends'} {formatDateTime(s.currentPeriodEnd)}.
                </p>
              ) : (
                <p>
                  No subscription. <Link to="/subscriptions">Subscribe this account to a plan</Link>.
                </p>
              )}
              <InvoiceLines lines={data.invoiceLines} />
              {canWrite ? (
                <BuyPackage
                  accountExternalId={accountExternalId}
                  packages={packages}
                  onDone={() => {
                    reexecute({ requestPolicy: 'network-only' });
                    onPurchased();
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

interface PackageChoice {
  code: string;
  name: string;
  credits: number | string;
  prices: { currency: string; amountMinor: number | string }[];
  validityDays?: number | null;
}

function BuyPackage({ accountExternalId, packages, onDone }: { accountExternalId: string; packages: PackageChoice[]; onDone: () => void }) {
  const [code, setCode] = useState('');
  const [currency, setCurrency] = useState('');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [success, setSuccess] = useState<string | null>(null);
  const [reviewKey, setReviewKey] = useState<string | null>(null);
  const [state, purchase] = useMutation(PurchaseDoc);
  const chosen = packages.find((p) => p.code === code);
  const price = chosen?.prices.find((p) => p.currency === currency) ?? chosen?.prices[0];

  if (!packages.length) return <p className="hint">No token packages are on sale to this account.</p>;

  function review(event: FormEvent) {
    event.preventDefault();
    setSuccess(null);
    setFormError(null);
    if (!chosen) return setErrors({ code: 'Choose a package.' });
    setErrors({});
    setReviewKey(newIdempotencyKey('admin-package'));
  }

  async function confirm() {
    if (!chosen || !reviewKey) return;
    const result = await purchase({ account: accountExternalId, code: chosen.code, key: reviewKey, currency: price?.currency ?? null });
    setReviewKey(null);
    if (result.error) return setFormError(result.error.message);
    const outcome = result.data?.purchaseTokenPackage;
    const failure = failureOf(outcome, ['TokenPurchase']);
    if (failure) {
      const applied = applyFailure(failure, ['code', 'currency']);
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    if (outcome?.__typename === 'TokenPurchase') {
      setSuccess(
        `Granted ${formatCredits(outcome.credits)}; a payment of ${formatMinor(outcome.amountMinor, outcome.currency)} is recorded (${outcome.paymentStatus.toLowerCase()}).`,
      );
    }
    setCode('');
    onDone();
  }

  return (
    <div>
      <h3>Sell a token package</h3>
      <FormSuccess message={success} />
      <FormError message={formError} />
      {reviewKey && chosen ? (
        <ConfirmPanel
          title="Confirm the package"
          busy={state.fetching}
          onBack={() => setReviewKey(null)}
          onConfirm={() => void confirm()}
          confirmLabel="Grant and record the payment"
          rows={[
            ['Account', accountExternalId],
            ['Package', `${chosen.name || chosen.code}: ${formatCredits(chosen.credits)}`],
            ['Price', price ? formatMinor(price.amountMinor, price.currency) : '—'],
            ['Credits expire', chosen.validityDays ? `after ${chosen.validityDays} days` : 'never'],
          ]}
        />
      ) : (
        <form onSubmit={review} noValidate className="inline-form" aria-label="Sell a token package">
          <SelectField
            label="Package"
            value={code}
            error={errors.code}
            options={[{ value: '', label: 'Choose a package…' }, ...packages.map((p) => ({ value: p.code, label: `${p.name || p.code} — ${formatCredits(p.credits)}` }))]}
            onValue={(v) => {
              setCode(v);
              setCurrency(packages.find((p) => p.code === v)?.prices[0]?.currency ?? '');
            }}
          />
          {chosen && chosen.prices.length > 1 ? (
            <SelectField
              label="Currency"
              value={currency}
              error={errors.currency}
              options={chosen.prices.map((p) => ({ value: p.currency, label: formatMinor(p.amountMinor, p.currency) }))}
              onValue={setCurrency}
            />
          ) : null}
          <button type="submit" className="primary">
            Review the sale
          </button>
        </form>
      )}
    </div>
  );
}

interface InvoiceLineRow {
  id: string;
  kind: string;
  status: string;
  description: string;
  currency: string;
  amountMinor: number | string;
  createdAt: string;
}

const SHOWN_LINES = 5;

/** What the account owes or is owed: plan periods, prorations, package purchases. */
function InvoiceLines({ lines }: { lines: InvoiceLineRow[] }) {
  const [all, setAll] = useState(false);
  if (!lines.length) return <p className="hint">Nothing billed to this account yet.</p>;
  const newest = [...lines].reverse();
  const shown = all ? newest : newest.slice(0, SHOWN_LINES);
  return (
    <>
      <h3>Billing</h3>
      <table>
        <thead>
          <tr>
            <th scope="col">Created</th>
            <th scope="col">Description</th>
            <th scope="col">Status</th>
            <th scope="col" className="num">Amount</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((l) => (
            <tr key={l.id}>
              <td>{formatDateTime(l.createdAt)}</td>
              <td>
                {l.description} <small className="muted">{l.kind.toLowerCase().replace(/_/g, ' ')}</small>
              </td>
              <td>{l.status.toLowerCase()}</td>
              <td className="num">{formatMinor(l.amountMinor, l.currency)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {lines.length > SHOWN_LINES ? (
        <button type="button" className="small" onClick={() => setAll((v) => !v)}>
          {all ? 'Show the newest only' : `Show all ${lines.length} lines`}
        </button>
      ) : null}
    </>
  );
}
