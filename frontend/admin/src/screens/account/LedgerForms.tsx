import { useState, type FormEvent, type ReactNode } from 'react';
import { useMutation } from 'urql';
import { graphql } from '../../gql';
import type { GrantSource } from '../../gql/graphql';
import {
  applyFailure,
  ConfirmPanel,
  failureOf,
  FormError,
  FormSuccess,
  SelectField,
  TextField,
  type FieldErrors,
} from '../../components/forms';
import {
  formatCredits,
  formatDateTime,
  fromLocalInput,
  newIdempotencyKey,
  parseWhole,
  shortId,
  toLocalInput,
  viewerTimeZone,
} from '../../lib/format';


const GrantCredits = graphql(`
  mutation GrantCredits($input: GrantCreditsInput!) {
    grantCredits(input: $input) {
      __typename
      ... on LedgerSuccess { transactionId balance { available total reserved pool } }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
      ... on OrganizationNotFound { externalId message }
      ... on IdempotencyConflict { idempotencyKey message }
    }
  }
`);

const DeductCredits = graphql(`
  mutation DeductCredits($input: DeductCreditsInput!) {
    deductCredits(input: $input) {
      __typename
      ... on LedgerSuccess { transactionId balance { available total reserved pool } }
      ... on InsufficientCredits { available requested message }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
      ... on IdempotencyConflict { idempotencyKey message }
    }
  }
`);

const RefundCredits = graphql(`
  mutation RefundCredits($input: RefundCreditsInput!) {
    refundCredits(input: $input) {
      __typename
      ... on LedgerSuccess { transactionId balance { available total reserved pool } }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
      ... on IdempotencyConflict { idempotencyKey message }
    }
  }
`);

const TransferCredits = graphql(`
  mutation TransferCredits($input: TransferCreditsInput!) {
    transferCredits(input: $input) {
      __typename
      ... on TransferSuccess { transactionId balance { available } toBalance { available } }
      ... on InsufficientCredits { available requested message }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
      ... on IdempotencyConflict { idempotencyKey message }
    }
  }
`);

const GrantBoost = graphql(`
  mutation GrantBoost($input: GrantBoostInput!) {
    grantBoost(input: $input) {
      __typename
      ... on LedgerSuccess { transactionId balance { available total reserved pool } }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
      ... on IdempotencyConflict { idempotencyKey message }
    }
  }
`);

const SOURCES: GrantSource[] = ['ADJUSTMENT', 'BONUS', 'PURCHASE', 'PROMOTION', 'PLAN_ALLOCATION', 'BOOST'];
const SOURCE_LABEL: Record<GrantSource, string> = {
  ADJUSTMENT: 'Adjustment',
  BONUS: 'Bonus',
  PURCHASE: 'Purchase',
  PROMOTION: 'Promotion',
  PLAN_ALLOCATION: 'Plan allocation',
  BOOST: 'Boost',
};

type Outcome = { __typename: string; message?: string; field?: string } | undefined;

/** The shared life of a ledger form: edit → review → book once (one idempotency key per
 * reviewed intent, so a retry after a network error never books twice). */
function useLedgerForm<V extends Record<string, string>>(initial: V, prefix: string) {
  const [values, setValues] = useState<V>(initial);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [success, setSuccess] = useState<string | null>(null);
  const [reviewKey, setReviewKey] = useState<string | null>(null);
  const set = (k: keyof V) => (v: string) => {
    setValues((s) => ({ ...s, [k]: v }));
    setSuccess(null);
  };
  return {
    values,
    set,
    setValues,
    errors,
    formError,
    success,
    reviewing: reviewKey !== null,
    reviewKey,
    review(found: FieldErrors) {
      setErrors(found);
      setFormError(null);
      setSuccess(null);
      if (Object.keys(found).length === 0) setReviewKey(newIdempotencyKey(prefix));
    },
    back() {
      setReviewKey(null);
    },
    /** Apply a mutation's outcome; returns true on success. */
    settle(networkError: string | null, outcome: Outcome, successTypes: string[], message: string): boolean {
      if (networkError) {
        setFormError(networkError);
        return false;
      }
      const failure = failureOf(outcome, successTypes);
      if (failure) {
        const applied = applyFailure(failure, Object.keys(values));
        setErrors(applied.fieldErrors);
        setFormError(applied.formError);
        setReviewKey(null);
        return false;
      }
      setReviewKey(null);
      setValues(initial);
      setSuccess(message);
      return true;
    },
  };
}

function amountError(text: string, what = 'amount'): string | undefined {
  const value = parseWhole(text);
  if (value === null) return `Enter the ${what} as a whole number of credits.`;
  if (value <= 0n) return `The ${what} must be more than zero.`;
  return undefined;
}

function Shell({
  title,
  description,
  form,
  children,
  confirm,
  onSubmit,
}: {
  title: string;
  description: string;
  form: { formError: string | null; success: string | null; reviewing: boolean };
  children: ReactNode;
  confirm: ReactNode;
  onSubmit: (event: FormEvent) => void;
}) {
  return (
    <div className="ledger-form">
      <p className="hint">{description}</p>
      <FormSuccess message={form.success} />
      <FormError message={form.formError} />
      {form.reviewing ? (
        confirm
      ) : (
        <form onSubmit={onSubmit} noValidate className="form-grid" aria-label={title}>
          {children}
          <div className="actions">
            <button type="submit" className="primary">
              Review {title.toLowerCase()}
            </button>
          </div>
        </form>
      )}
    </div>
  );
}

/** A grant to an account, or (with organizationExternalId) to an organisation's shared pool. */
export function GrantForm({
  accountExternalId,
  organizationExternalId,
  onDone,
}: {
  accountExternalId?: string;
  organizationExternalId?: string;
  onDone: () => void;
}) {
  const form = useLedgerForm({ amount: '', source: 'ADJUSTMENT', reason: '', expiresAt: '', priority: '100' }, 'admin-grant');
  const [state, grant] = useMutation(GrantCredits);
  const { values } = form;

  function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    const amount = amountError(values.amount);
    if (amount) found.amount = amount;
    if (values.expiresAt) {
      const at = fromLocalInput(values.expiresAt);
      if (!at) found.expiresAt = 'Not a valid date and time.';
      else if (new Date(at) <= new Date()) found.expiresAt = 'The expiry must be in the future.';
    }
    const priority = parseWhole(values.priority, { allowNegative: true });
    if (priority === null || priority > 2147483647n || priority < -2147483648n) found.priority = 'A whole number (lower is consumed first).';
    form.review(found);
  }

  async function confirm() {
    const amount = parseWhole(values.amount) ?? 0n;
    const result = await grant({
      input: {
        accountExternalId: accountExternalId ?? null,
        organizationExternalId: organizationExternalId ?? null,
        amount: amount.toString(),
        source: values.source as GrantSource,
        idempotencyKey: form.reviewKey ?? newIdempotencyKey('admin-grant'),
        reason: values.reason.trim(),
        expiresAt: fromLocalInput(values.expiresAt),
        priority: Number(values.priority),
      },
    });
    const outcome = result.data?.grantCredits;
    const available = outcome?.__typename === 'LedgerSuccess' ? outcome.balance.available : null;
    if (
      form.settle(
        result.error?.message ?? null,
        outcome,
        ['LedgerSuccess'],
        `Granted ${formatCredits(amount)}. Available now: ${available === null ? '—' : formatCredits(available)}.`,
      )
    )
      onDone();
  }

  return (
    <Shell
      title="Grant"
      description={
        organizationExternalId
          ? "Add credits to the organisation's shared pool; its members draw on it."
          : 'Add credits to this account as a new grant.'
      }
      form={form}
      onSubmit={submit}
      confirm={
        <ConfirmPanel
          title="Confirm the grant"
          busy={state.fetching}
          onBack={form.back}
          onConfirm={() => void confirm()}
          confirmLabel="Grant credits"
          rows={[
            organizationExternalId ? ['Organisation pool', organizationExternalId] : ['Account', accountExternalId ?? ''],
            ['Credits', formatCredits(parseWhole(values.amount) ?? 0n)],
            ['Source', SOURCE_LABEL[values.source as GrantSource]],
            ['Expires', values.expiresAt ? formatDateTime(fromLocalInput(values.expiresAt)) : 'Never'],
            ['Priority', values.priority],
            ['Reason', values.reason || '—'],
          ]}
        />
      }
    >
      <TextField label="Credits" name="amount" inputMode="numeric" value={values.amount} error={form.errors.amount} onValue={form.set('amount')} />
      <SelectField
        label="Source"
        value={values.source}
        options={SOURCES.map((s) => ({ value: s, label: SOURCE_LABEL[s] }))}
        error={form.errors.source}
        onValue={form.set('source')}
      />
      <TextField
        label="Expires (optional)"
        type="datetime-local"
        value={values.expiresAt}
        error={form.errors.expiresAt}
        onValue={form.set('expiresAt')}
        hint={`Your time zone: ${viewerTimeZone}. Empty: never expires.`}
      />
      <TextField
        label="Priority"
        inputMode="numeric"
        value={values.priority}
        error={form.errors.priority}
        onValue={form.set('priority')}
        hint="Among grants expiring together, lower is consumed first."
      />
      <TextField label="Reason" value={values.reason} error={form.errors.reason} onValue={form.set('reason')} />
    </Shell>
  );
}

export function DeductForm({ accountExternalId, onDone }: { accountExternalId: string; onDone: () => void }) {
  const form = useLedgerForm({ amount: '', reason: '' }, 'admin-deduct');
  const [state, deduct] = useMutation(DeductCredits);
  const { values } = form;

  function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    const amount = amountError(values.amount);
    if (amount) found.amount = amount;
    form.review(found);
  }

  async function confirm() {
    const amount = parseWhole(values.amount) ?? 0n;
    const result = await deduct({
      input: {
        accountExternalId,
        amount: amount.toString(),
        idempotencyKey: form.reviewKey ?? newIdempotencyKey('admin-deduct'),
        reason: values.reason.trim(),
      },
    });
    const outcome = result.data?.deductCredits;
    const available = outcome?.__typename === 'LedgerSuccess' ? outcome.balance.available : null;
    if (
      form.settle(
        result.error?.message ?? null,
        outcome?.__typename === 'InsufficientCredits'
          ? { ...outcome, message: `${outcome.message} (available ${formatCredits(outcome.available)})` }
          : outcome,
        ['LedgerSuccess'],
        `Deducted ${formatCredits(amount)}. Available now: ${available === null ? '—' : formatCredits(available)}.`,
      )
    )
      onDone();
  }

  return (
    <Shell
      title="Deduct"
      description="Take credits from this account: the grant expiring first, then the organisation pool."
      form={form}
      onSubmit={submit}
      confirm={
        <ConfirmPanel
          title="Confirm the deduction"
          danger
          busy={state.fetching}
          onBack={form.back}
          onConfirm={() => void confirm()}
          confirmLabel="Deduct credits"
          rows={[
            ['Account', accountExternalId],
            ['Credits', formatCredits(parseWhole(values.amount) ?? 0n)],
            ['Reason', values.reason || '—'],
          ]}
        />
      }
    >
      <TextField label="Credits" name="amount" inputMode="numeric" value={values.amount} error={form.errors.amount} onValue={form.set('amount')} />
      <TextField label="Reason" value={values.reason} error={form.errors.reason} onValue={form.set('reason')} />
    </Shell>
  );
}

export interface Deduction {
  id: string;
  amount: number | string;
  createdAt: string;
  reason: string;
}

export function RefundForm({
  accountExternalId,
  deductions,
  preset,
  onDone,
}: {
  accountExternalId: string;
  deductions: Deduction[];
  preset: string | null;
  onDone: () => void;
}) {
  const form = useLedgerForm({ refundOf: preset ?? '', amount: '', reason: '' }, 'admin-refund');
  const [state, refund] = useMutation(RefundCredits);
  const { values } = form;
  const [lastPreset, setLastPreset] = useState(preset);
  if (preset !== lastPreset) {
    setLastPreset(preset);
    if (preset) form.setValues((s) => ({ ...s, refundOf: preset }));
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!values.refundOf.trim()) found.refundOf = 'Choose the deduction to refund.';
    const amount = amountError(values.amount);
    if (amount) found.amount = amount;
    const original = deductions.find((d) => d.id === values.refundOf);
    const parsed = parseWhole(values.amount);
    if (!amount && original && parsed !== null && parsed > BigInt(original.amount)) {
      found.amount = `At most the deducted ${formatCredits(original.amount)}.`;
    }
    form.review(found);
  }

  async function confirm() {
    const amount = parseWhole(values.amount) ?? 0n;
    const result = await refund({
      input: {
        accountExternalId,
        refundOf: values.refundOf.trim(),
        amount: amount.toString(),
        idempotencyKey: form.reviewKey ?? newIdempotencyKey('admin-refund'),
        reason: values.reason.trim(),
      },
    });
    const outcome = result.data?.refundCredits;
    const available = outcome?.__typename === 'LedgerSuccess' ? outcome.balance.available : null;
    if (
      form.settle(
        result.error?.message ?? null,
        outcome,
        ['LedgerSuccess'],
        `Refunded ${formatCredits(amount)}. Available now: ${available === null ? '—' : formatCredits(available)}.`,
      )
    )
      onDone();
  }

  const options = [
    { value: '', label: deductions.length ? 'Choose a deduction…' : 'No deductions in the recent ledger' },
    ...deductions.map((d) => ({
      value: d.id,
      label: `${shortId(d.id)} · ${formatCredits(d.amount)} · ${formatDateTime(d.createdAt)}${d.reason ? ` · ${d.reason}` : ''}`,
    })),
  ];
  if (values.refundOf && !deductions.some((d) => d.id === values.refundOf)) {
    options.push({ value: values.refundOf, label: `Transaction #${values.refundOf}` });
  }

  return (
    <Shell
      title="Refund"
      description="Give back part or all of a deduction."
      form={form}
      onSubmit={submit}
      confirm={
        <ConfirmPanel
          title="Confirm the refund"
          busy={state.fetching}
          onBack={form.back}
          onConfirm={() => void confirm()}
          confirmLabel="Refund credits"
          rows={[
            ['Account', accountExternalId],
            ['Refund of', `Transaction ${values.refundOf}`],
            ['Credits', formatCredits(parseWhole(values.amount) ?? 0n)],
            ['Reason', values.reason || '—'],
          ]}
        />
      }
    >
      <SelectField label="Deduction" value={values.refundOf} options={options} error={form.errors.refundOf} onValue={form.set('refundOf')} />
      <TextField label="Credits" name="amount" inputMode="numeric" value={values.amount} error={form.errors.amount} onValue={form.set('amount')} />
      <TextField label="Reason" value={values.reason} error={form.errors.reason} onValue={form.set('reason')} />
    </Shell>
  );
}

export function TransferForm({ accountExternalId, onDone }: { accountExternalId: string; onDone: () => void }) {
  const form = useLedgerForm({ toAccountExternalId: '', amount: '', reason: '' }, 'admin-transfer');
  const [state, transfer] = useMutation(TransferCredits);
  const { values } = form;

  function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    const to = values.toAccountExternalId.trim();
    if (!to) found.toAccountExternalId = 'Give the external id of the account to credit.';
    else if (to === accountExternalId) found.toAccountExternalId = 'Choose another account than this one.';
    const amount = amountError(values.amount);
    if (amount) found.amount = amount;
    form.review(found);
  }

  async function confirm() {
    const amount = parseWhole(values.amount) ?? 0n;
    const result = await transfer({
      input: {
        fromAccountExternalId: accountExternalId,
        toAccountExternalId: values.toAccountExternalId.trim(),
        amount: amount.toString(),
        idempotencyKey: form.reviewKey ?? newIdempotencyKey('admin-transfer'),
        reason: values.reason.trim(),
      },
    });
    let outcome = result.data?.transferCredits as Outcome & { externalId?: string };
    // Which of the two accounts is missing decides the field the error belongs to.
    if (outcome?.__typename === 'AccountNotFound' && outcome.externalId === values.toAccountExternalId.trim()) {
      outcome = { ...outcome, field: 'toAccountExternalId' };
    }
    const success = result.data?.transferCredits;
    if (
      form.settle(
        result.error?.message ?? null,
        outcome,
        ['TransferSuccess'],
        success?.__typename === 'TransferSuccess'
          ? `Moved ${formatCredits(amount)} to ${values.toAccountExternalId.trim()}. Available here now: ${formatCredits(success.balance.available)}.`
          : 'Transferred.',
      )
    )
      onDone();
  }

  return (
    <Shell
      title="Transfer"
      description="Move credits from this account to another."
      form={form}
      onSubmit={submit}
      confirm={
        <ConfirmPanel
          title="Confirm the transfer"
          busy={state.fetching}
          onBack={form.back}
          onConfirm={() => void confirm()}
          confirmLabel="Transfer credits"
          rows={[
            ['From', accountExternalId],
            ['To', values.toAccountExternalId.trim()],
            ['Credits', formatCredits(parseWhole(values.amount) ?? 0n)],
            ['Reason', values.reason || '—'],
          ]}
        />
      }
    >
      <TextField
        label="To account (external id)"
        value={values.toAccountExternalId}
        error={form.errors.toAccountExternalId}
        onValue={form.set('toAccountExternalId')}
      />
      <TextField label="Credits" name="amount" inputMode="numeric" value={values.amount} error={form.errors.amount} onValue={form.set('amount')} />
      <TextField label="Reason" value={values.reason} error={form.errors.reason} onValue={form.set('reason')} />
    </Shell>
  );
}

export function BoostForm({ accountExternalId, onDone }: { accountExternalId: string; onDone: () => void }) {
  const tomorrow = toLocalInput(new Date(Date.now() + 24 * 3600 * 1000));
  const form = useLedgerForm({ credits: '', until: tomorrow, reason: '' }, 'admin-boost');
  const [state, boost] = useMutation(GrantBoost);
  const { values } = form;

  function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    const credits = amountError(values.credits, 'boost');
    if (credits) found.credits = credits;
    const until = fromLocalInput(values.until);
    if (!until) found.until = 'Choose when the boost ends.';
    else if (new Date(until) <= new Date()) found.until = 'The end must be in the future.';
    form.review(found);
  }

  async function confirm() {
    const credits = parseWhole(values.credits) ?? 0n;
    const result = await boost({
      input: {
        accountExternalId,
        credits: credits.toString(),
        until: fromLocalInput(values.until) ?? '',
        idempotencyKey: form.reviewKey ?? newIdempotencyKey('admin-boost'),
        reason: values.reason.trim(),
      },
    });
    if (
      form.settle(
        result.error?.message ?? null,
        result.data?.grantBoost,
        ['LedgerSuccess'],
        `Boosted by ${formatCredits(credits)} until ${formatDateTime(fromLocalInput(values.until))}.`,
      )
    )
      onDone();
  }

  return (
    <Shell
      title="Boost"
      description="Temporary credits: whatever is unspent at the end expires."
      form={form}
      onSubmit={submit}
      confirm={
        <ConfirmPanel
          title="Confirm the boost"
          busy={state.fetching}
          onBack={form.back}
          onConfirm={() => void confirm()}
          confirmLabel="Grant boost"
          rows={[
            ['Account', accountExternalId],
            ['Credits', formatCredits(parseWhole(values.credits) ?? 0n)],
            ['Until', formatDateTime(fromLocalInput(values.until))],
            ['Reason', values.reason || '—'],
          ]}
        />
      }
    >
      <TextField label="Credits" inputMode="numeric" value={values.credits} error={form.errors.credits} onValue={form.set('credits')} />
      <TextField
        label="Until"
        type="datetime-local"
        value={values.until}
        error={form.errors.until}
        onValue={form.set('until')}
        hint={`Your time zone: ${viewerTimeZone}.`}
      />
      <TextField label="Reason" value={values.reason} error={form.errors.reason} onValue={form.set('reason')} />
    </Shell>
  );
}
