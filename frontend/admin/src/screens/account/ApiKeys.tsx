import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';
import { graphql } from '../../gql';
import { usePermissions } from '../../auth/session';
import { Empty, QueryState } from '../../components/states';
import { applyFailure, failureOf, FormError, TextAreaField, TextField, type FieldErrors } from '../../components/forms';
import { formatCredits, formatDateTime, fromLocalInput, parseWhole } from '../../lib/format';

const ApiKeysDoc = graphql(`
  query AccountApiKeys($id: String!) {
    apiKeys(accountExternalId: $id) {
      id
      name
      prefix
      createdAt
      expiresAt
      revokedAt
      lastUsedAt
      allowedModels
      rpmLimit
      hasByokKey
      byokProvider
      spendCredits
    }
  }
`);

const CreateApiKeyDoc = graphql(`
  mutation CreateApiKey($input: CreateApiKeyInput!) {
    createApiKey(input: $input) {
      __typename
      ... on CreatedApiKey { secret key { id prefix } }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
    }
  }
`);

const RevokeApiKeyDoc = graphql(`
  mutation RevokeApiKey($id: ID!) {
    revokeApiKey(id: $id) {
      __typename
      ... on ApiKey { id revokedAt }
      ... on NotFound { missingId: id message }
    }
  }
`);

export function ApiKeysSection({ accountExternalId }: { accountExternalId: string }) {
  const [result, reexecute] = useQuery({ query: ApiKeysDoc, variables: { id: accountExternalId } });
  const { canWrite } = usePermissions();
  const [, revoke] = useMutation(RevokeApiKeyDoc);
  const [revokeError, setRevokeError] = useState<string | null>(null);
  const refresh = () => reexecute({ requestPolicy: 'network-only' });

  async function revokeKey(id: string, name: string) {
    if (!window.confirm(`Revoke the key “${name}”? Calls with it stop working within moments.`)) return;
    const done = await revoke({ id });
    const failure = done.error ? { message: done.error.message } : failureOf(done.data?.revokeApiKey, ['ApiKey']);
    setRevokeError(failure ? failure.message : null);
    refresh();
  }

  return (
    <section className="card" aria-labelledby="apikeys-title">
      <h2 id="apikeys-title">Gateway keys</h2>
      <FormError message={revokeError} />
      <QueryState result={result} what="gateway keys">
        {(data) =>
          data.apiKeys && data.apiKeys.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Prefix</th>
                  <th scope="col">Models</th>
                  <th scope="col" className="num">Spent</th>
                  <th scope="col">Last used</th>
                  <th scope="col">State</th>
                  {canWrite ? <th scope="col"><span className="sr-only">Actions</span></th> : null}
                </tr>
              </thead>
              <tbody>
                {data.apiKeys.map((k) => (
                  <tr key={k.id}>
                    <td>
                      {k.name}
                      {k.hasByokKey ? <small className="muted"> · own {k.byokProvider ?? 'provider'} key</small> : null}
                    </td>
                    <td><code>{k.prefix}…</code></td>
                    <td>{k.allowedModels ? k.allowedModels.join(', ') : 'Every model'}{k.rpmLimit ? ` · ${k.rpmLimit}/min` : ''}</td>
                    <td className="num">{formatCredits(k.spendCredits)}</td>
                    <td>{k.lastUsedAt ? formatDateTime(k.lastUsedAt) : 'Never'}</td>
                    <td>
                      {k.revokedAt
                        ? `Revoked ${formatDateTime(k.revokedAt)}`
                        : k.expiresAt && new Date(k.expiresAt) < new Date()
                          ? 'Expired'
                          : k.expiresAt
                            ? `Active until ${formatDateTime(k.expiresAt)}`
                            : 'Active'}
                    </td>
                    {canWrite ? (
                      <td>
                        {!k.revokedAt ? (
                          <button type="button" className="small danger" onClick={() => void revokeKey(k.id, k.name)}>
                            Revoke
                          </button>
                        ) : null}
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>This account has no gateway keys.</Empty>
          )
        }
      </QueryState>
      {canWrite ? <CreateApiKeyForm accountExternalId={accountExternalId} onDone={refresh} /> : null}
    </section>
  );
}

function CreateApiKeyForm({ accountExternalId, onDone }: { accountExternalId: string; onDone: () => void }) {
  const empty = { name: '', expiresAt: '', allowedModels: '', rpmLimit: '', byokProvider: '', byokProviderKey: '' };
  const [values, setValues] = useState(empty);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [state, create] = useMutation(CreateApiKeyDoc);
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!values.name.trim()) found.name = 'Name the key so it can be told apart.';
    const expiresAt = values.expiresAt ? fromLocalInput(values.expiresAt) : null;
    if (values.expiresAt && (!expiresAt || new Date(expiresAt) <= new Date())) found.expiresAt = 'A future date and time, or empty.';
    const rpm = values.rpmLimit.trim() ? parseWhole(values.rpmLimit) : null;
    if (values.rpmLimit.trim() && (rpm === null || rpm <= 0n || rpm > 2147483647n)) found.rpmLimit = 'A whole number above zero, or empty.';
    if (Boolean(values.byokProvider.trim()) !== Boolean(values.byokProviderKey.trim())) {
      found.byokProviderKey = 'Give both the provider and the end user’s key, or neither.';
    }
    setErrors(found);
    setFormError(null);
    setSecret(null);
    if (Object.keys(found).length) return;
    const models = values.allowedModels.split(/[\n,]/).map((m) => m.trim()).filter(Boolean);
    const result = await create({
      input: {
        accountExternalId,
        name: values.name.trim(),
        expiresAt,
        allowedModels: models.length ? models : null,
        rpmLimit: rpm === null ? null : Number(rpm),
        byokProvider: values.byokProvider.trim() || null,
        byokProviderKey: values.byokProviderKey.trim() || null,
      },
    });
    if (result.error) return setFormError(result.error.message);
    const outcome = result.data?.createApiKey;
    const failure = failureOf(outcome, ['CreatedApiKey']);
    if (failure) {
      const applied = applyFailure(failure, Object.keys(values));
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    if (outcome?.__typename === 'CreatedApiKey') setSecret(outcome.secret);
    setValues(empty);
    onDone();
  }

  return (
    <details>
      <summary>New gateway key</summary>
      {secret ? (
        <div className="secret" role="status">
          <p>
            <strong>Copy the key now: it is shown this once and never again.</strong>
          </p>
          <code>{secret}</code>
        </div>
      ) : null}
      <form onSubmit={(e) => void submit(e)} noValidate className="form-grid">
        <FormError message={formError} />
        <TextField label="Name" value={values.name} error={errors.name} onValue={set('name')} />
        <TextField label="Expires (optional)" type="datetime-local" value={values.expiresAt} error={errors.expiresAt} onValue={set('expiresAt')} />
        <TextAreaField label="Allowed models" rows={2} value={values.allowedModels} error={errors.allowedModels} onValue={set('allowedModels')} hint="One name or pattern per line; empty allows every model." />
        <TextField label="Requests per minute" inputMode="numeric" value={values.rpmLimit} error={errors.rpmLimit} onValue={set('rpmLimit')} />
        <TextField label="Own provider (BYOK)" value={values.byokProvider} error={errors.byokProvider} onValue={set('byokProvider')} />
        <TextField label="End user's provider key" type="password" autoComplete="off" value={values.byokProviderKey} error={errors.byokProviderKey} onValue={set('byokProviderKey')} hint="Stored encrypted; never shown again." />
        <div className="actions">
          <button type="submit" className="primary" disabled={state.fetching}>
            Create key
          </button>
        </div>
      </form>
    </details>
  );
}
