import { useCallback, useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { useMutation, useQuery } from 'urql';
import { graphql } from '../gql';
import { usePermissions } from '../auth/session';
import { useLiveRefresh } from '../live/live';
import { ALERT_RAISED } from '../live/subscriptions';
import { Empty, QueryState } from '../components/states';
import { AccountControlsForm } from '../components/AccountControls';
import { failureOf, FormError, FormSuccess, TextField } from '../components/forms';
import { formatDateTime } from '../lib/format';

const ControlsDoc = graphql(`
  query Controls {
    controls {
      globalStop { on reason updatedBy updatedAt }
      accounts(first: 200) {
        nodes { accountExternalId stopped stopReason exemptFromLimits suspended updatedBy updatedAt }
      }
    }
  }
`);

const SetGlobalStopDoc = graphql(`
  mutation SetGlobalStop($on: Boolean!, $reason: String!) {
    setEmergencyStop(scope: GLOBAL, on: $on, reason: $reason) {
      __typename
      ... on EmergencyStop { on reason updatedAt }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
    }
  }
`);

const STOP_WORD = 'STOP ALL';
const RESUME_WORD = 'RESUME';

export function ControlsScreen() {
  const [result, reexecute] = useQuery({ query: ControlsDoc });
  const refresh = useCallback(() => reexecute({ requestPolicy: 'network-only' }), [reexecute]);
  useLiveRefresh(ALERT_RAISED, {}, refresh);
  const [accountId, setAccountId] = useState('');
  const [shown, setShown] = useState<string | null>(null);

  return (
    <section>
      <h1>Controls</h1>
      <QueryState result={result} what="the controls">
        {(data) => {
          const shownState = shown ? data.controls.accounts.nodes.find((a) => a.accountExternalId === shown) : undefined;
          return (
            <>
              <GlobalStop stop={data.controls.globalStop} onDone={refresh} />
              <section className="card" aria-labelledby="account-controls-title">
                <h2 id="account-controls-title">Accounts with a stop, an exemption or a suspension</h2>
                {data.controls.accounts.nodes.length ? (
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Account</th>
                        <th scope="col">Stopped</th>
                        <th scope="col">Exempt from limits</th>
                        <th scope="col">Suspended</th>
                        <th scope="col">Changed</th>
                      </tr>
                    </thead>
                    <tbody>
                      {data.controls.accounts.nodes.map((a) => (
                        <tr key={a.accountExternalId}>
                          <td>
                            <Link to={`/accounts/${encodeURIComponent(a.accountExternalId)}`}>{a.accountExternalId}</Link>{' '}
                            <button type="button" className="small" onClick={() => setShown(a.accountExternalId)}>
                              Change…
                            </button>
                          </td>
                          <td>{a.stopped ? `Yes${a.stopReason ? ` — ${a.stopReason}` : ''}` : 'No'}</td>
                          <td>{a.exemptFromLimits ? 'Yes' : 'No'}</td>
                          <td>{a.suspended ? 'Yes' : 'No'}</td>
                          <td>
                            {formatDateTime(a.updatedAt)} by {a.updatedBy}
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                ) : (
                  <Empty>No account has its own stop, exemption or suspension.</Empty>
                )}
                <form
                  className="toolbar"
                  onSubmit={(e) => {
                    e.preventDefault();
                    if (accountId.trim()) setShown(accountId.trim());
                  }}
                >
                  <label>
                    Account <input value={accountId} onChange={(e) => setAccountId(e.target.value)} placeholder="external id" />
                  </label>
                  <button type="submit">Open its controls</button>
                </form>
                {shown ? (
                  <div className="boxed">
                    <h3>{shown}</h3>
                    <AccountControlsForm
                      key={shown}
                      accountExternalId={shown}
                      current={{
                        stopped: shownState?.stopped ?? false,
                        stopReason: shownState?.stopReason ?? '',
                        exemptFromLimits: shownState?.exemptFromLimits ?? false,
                        suspended: shownState?.suspended ?? false,
                      }}
                      onDone={refresh}
                    />
                  </div>
                ) : null}
              </section>
            </>
          );
        }}
      </QueryState>
    </section>
  );
}

function GlobalStop({
  stop,
  onDone,
}: {
  stop: { on: boolean; reason: string; updatedBy: string; updatedAt?: string | null };
  onDone: () => void;
}) {
  const { canWrite } = usePermissions();
  const [open, setOpen] = useState(false);
  const [typed, setTyped] = useState('');
  const [reason, setReason] = useState('');
  const [errors, setErrors] = useState<{ typed?: string; reason?: string }>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [success, setSuccess] = useState<string | null>(null);
  const [state, setStop] = useMutation(SetGlobalStopDoc);
  const turningOn = !stop.on;
  const word = turningOn ? STOP_WORD : RESUME_WORD;

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: typeof errors = {};
    if (typed.trim() !== word) found.typed = `Type ${word} exactly to confirm.`;
    if (turningOn && !reason.trim()) found.reason = 'Say why all traffic is stopped.';
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length) return;
    const result = await setStop({ on: turningOn, reason: reason.trim() });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.setEmergencyStop, ['EmergencyStop']);
    if (failure) {
      if (failure.field === 'reason') setErrors({ reason: failure.message });
      else setFormError(failure.message);
      return;
    }
    setOpen(false);
    setTyped('');
    setReason('');
    setSuccess(turningOn ? 'Emergency stop is on: every request is denied.' : 'Emergency stop is off: traffic flows again.');
    onDone();
  }

  return (
    <section className={`card global-stop ${stop.on ? 'is-on' : ''}`} aria-labelledby="global-stop-title">
      <h2 id="global-stop-title">Global emergency stop</h2>
      <FormSuccess message={success} />
      <div className="stop-row">
        <button
          type="button"
          role="switch"
          aria-checked={stop.on}
          className="stop-switch"
          disabled={!canWrite}
          onClick={() => {
            setOpen((o) => !o);
            setSuccess(null);
          }}
          aria-describedby="global-stop-state"
        >
          <span className="knob" aria-hidden="true" />
          <span>{stop.on ? 'STOPPED' : 'Running'}</span>
        </button>
        <p id="global-stop-state">
          {stop.on ? (
            <>
              <strong>Every request of every account is denied.</strong> Reason: {stop.reason || '—'}.{' '}
            </>
          ) : (
            'Traffic flows normally. Turning the stop on denies every request at once, on every replica. '
          )}
          {stop.updatedAt ? `Last changed ${formatDateTime(stop.updatedAt)} by ${stop.updatedBy}.` : ''}
        </p>
      </div>
      {open && canWrite ? (
        <form onSubmit={(e) => void submit(e)} noValidate className="form-grid confirm" aria-label="Confirm the emergency stop change">
          <FormError message={formError} />
          {turningOn ? <TextField label="Reason" value={reason} error={errors.reason} onValue={setReason} autoFocus /> : null}
          <TextField
            label={`Type ${word} to confirm`}
            value={typed}
            error={errors.typed}
            onValue={setTyped}
            autoComplete="off"
            autoFocus={!turningOn}
          />
          <div className="actions">
            <button type="submit" className={turningOn ? 'danger' : 'primary'} disabled={state.fetching}>
              {turningOn ? 'Stop all traffic' : 'Resume traffic'}
            </button>
            <button type="button" onClick={() => setOpen(false)}>
              Cancel
            </button>
          </div>
        </form>
      ) : null}
    </section>
  );
}
