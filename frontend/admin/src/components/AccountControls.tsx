import { useEffect, useState, type FormEvent } from 'react';
import { useMutation } from 'urql';
import { graphql } from '../gql';
import { usePermissions } from '../auth/session';
import { CheckboxField, FormError, FormSuccess, TextField, failureOf } from './forms';

const SetStop = graphql(`
  mutation SetAccountStop($on: Boolean!, $reason: String!, $accountExternalId: String) {
    setEmergencyStop(scope: ACCOUNT, on: $on, reason: $reason, accountExternalId: $accountExternalId) {
      __typename
      ... on EmergencyStop { on reason }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
    }
  }
`);

const SetOverride = graphql(`
  mutation SetAccountOverride($accountExternalId: String!, $exemptFromLimits: Boolean, $suspended: Boolean) {
    setAccountOverride(accountExternalId: $accountExternalId, exemptFromLimits: $exemptFromLimits, suspended: $suspended) {
      __typename
      ... on AccountControls { exemptFromLimits suspended stopped }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
    }
  }
`);

export interface AccountControlState {
  stopped: boolean;
  stopReason: string;
  exemptFromLimits: boolean;
  suspended: boolean;
}

/** An account's own stop, limit exemption and suspension. */
export function AccountControlsForm({
  accountExternalId,
  current,
  onDone,
}: {
  accountExternalId: string;
  current: AccountControlState;
  onDone: () => void;
}) {
  const { canWrite } = usePermissions();
  const [reason, setReason] = useState('');
  const [reasonError, setReasonError] = useState<string | undefined>();
  const [formError, setFormError] = useState<string | null>(null);
  const [success, setSuccess] = useState<string | null>(null);
  const [stopState, setStop] = useMutation(SetStop);
  const [overrideState, setOverride] = useMutation(SetOverride);
  // The switches move at once; the server's answer (or a refusal) settles them.
  const [exempt, setExempt] = useState(current.exemptFromLimits);
  const [suspended, setSuspended] = useState(current.suspended);
  useEffect(() => setExempt(current.exemptFromLimits), [current.exemptFromLimits]);
  useEffect(() => setSuspended(current.suspended), [current.suspended]);

  async function toggleStop(event: FormEvent) {
    event.preventDefault();
    const on = !current.stopped;
    if (on && !reason.trim()) {
      setReasonError('Say why the account is stopped; it is shown to operators and in the audit log.');
      return;
    }
    setReasonError(undefined);
    setFormError(null);
    const result = await setStop({ on, reason: reason.trim(), accountExternalId });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.setEmergencyStop, ['EmergencyStop']);
    if (failure) {
      if (failure.field === 'reason') setReasonError(failure.message);
      else setFormError(failure.message);
      return;
    }
    setReason('');
    setSuccess(on ? 'The account is stopped: its requests are denied.' : 'The account stop is lifted.');
    onDone();
  }

  async function override(change: { exemptFromLimits?: boolean; suspended?: boolean }) {
    setFormError(null);
    if (change.exemptFromLimits !== undefined) setExempt(change.exemptFromLimits);
    if (change.suspended !== undefined) setSuspended(change.suspended);
    const result = await setOverride({ accountExternalId, ...change });
    const failure = result.error ? { message: result.error.message } : failureOf(result.data?.setAccountOverride, ['AccountControls']);
    if (failure) {
      setExempt(current.exemptFromLimits);
      setSuspended(current.suspended);
      return setFormError(failure.message);
    }
    const saved = result.data?.setAccountOverride;
    if (saved?.__typename === 'AccountControls') {
      setExempt(saved.exemptFromLimits);
      setSuspended(saved.suspended);
    }
    setSuccess(
      change.exemptFromLimits !== undefined
        ? change.exemptFromLimits
          ? 'Limit blocks no longer apply to this account.'
          : 'Limit blocks apply to this account again.'
        : change.suspended
          ? 'The account is suspended: every request is denied.'
          : 'The suspension is lifted.',
    );
    onDone();
  }

  return (
    <div className="account-controls">
      <FormError message={formError} />
      <FormSuccess message={success} />
      <p>
        Emergency stop:{' '}
        {current.stopped ? (
          <strong className="danger-text">on{current.stopReason ? ` — ${current.stopReason}` : ''}</strong>
        ) : (
          'off'
        )}
      </p>
      {canWrite ? (
        <form onSubmit={(e) => void toggleStop(e)} noValidate className="inline-form" aria-label="Account emergency stop">
          {!current.stopped ? (
            <TextField label="Reason for stopping" value={reason} error={reasonError} onValue={setReason} />
          ) : null}
          <button type="submit" className={current.stopped ? 'primary' : 'danger'} disabled={stopState.fetching}>
            {current.stopped ? 'Lift the account stop' : 'Stop this account'}
          </button>
        </form>
      ) : null}
      <CheckboxField
        label="Exempt from limit blocks (the model allow-list still applies)"
        checked={exempt}
        disabled={!canWrite || overrideState.fetching}
        onValue={(exemptFromLimits) => void override({ exemptFromLimits })}
      />
      <CheckboxField
        label="Suspended (every request denied)"
        checked={suspended}
        disabled={!canWrite || overrideState.fetching}
        onValue={(suspended) => void override({ suspended })}
      />
    </div>
  );
}
