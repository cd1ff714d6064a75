import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';
import { graphql } from '../gql';
import type { AdminRole } from '../gql/graphql';
import { usePermissions } from '../auth/session';
import { Empty, QueryState } from '../components/states';
import { applyFailure, failureOf, FormError, SelectField, TextField, type FieldErrors } from '../components/forms';
import { formatDateTime } from '../lib/format';

const AdminKeysDoc = graphql(`
  query AdminKeys {
    adminKeys { id name role prefix createdAt revokedAt lastUsedAt }
  }
`);

const CreateAdminKeyDoc = graphql(`
  mutation CreateAdminKey($name: String!, $role: AdminRole!) {
    createAdminKey(name: $name, role: $role) {
      __typename
      ... on CreatedAdminKey { secret key { id prefix } }
      ... on ValidationFailed { field message }
    }
  }
`);

const RevokeAdminKeyDoc = graphql(`
  mutation RevokeAdminKey($id: ID!) {
    revokeAdminKey(id: $id) {
      __typename
      ... on AdminKey { id revokedAt }
      ... on NotFound { missingId: id message }
    }
  }
`);

const ROLES: { value: AdminRole; label: string }[] = [
  { value: 'SERVICE', label: 'Service — the SaaS backend: meters usage, reads nothing' },
  { value: 'ANALYST', label: 'Analyst — sees everything, changes nothing' },
  { value: 'ADMIN', label: 'Admin — runs pricing, credits and controls' },
  { value: 'OWNER', label: 'Owner — everything, including keys' },
];

export function KeysScreen() {
  const { isOwner } = usePermissions();
  if (!isOwner) {
    return (
      <section>
        <h1>Admin keys</h1>
        <p>Only owners see and manage admin keys.</p>
      </section>
    );
  }
  return <OwnerKeys />;
}

function OwnerKeys() {
  const [result, reexecute] = useQuery({ query: AdminKeysDoc });
  const [, revoke] = useMutation(RevokeAdminKeyDoc);
  const [error, setError] = useState<string | null>(null);
  const refresh = () => reexecute({ requestPolicy: 'network-only' });

  async function revokeKey(id: string, name: string) {
    if (!window.confirm(`Revoke the admin key “${name}”? Whatever uses it stops working at once.`)) return;
    const done = await revoke({ id });
    const failure = done.error ? { message: done.error.message } : failureOf(done.data?.revokeAdminKey, ['AdminKey']);
    setError(failure?.message ?? null);
    refresh();
  }

  return (
    <section>
      <h1>Admin keys</h1>
      <p className="hint">Keys for the API: the SaaS backend (service role), scripts and integrations.</p>
      <FormError message={error} />
      <QueryState result={result} what="admin keys">
        {(data) =>
          data.adminKeys.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Role</th>
                  <th scope="col">Prefix</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last used</th>
                  <th scope="col">State</th>
                  <th scope="col"><span className="sr-only">Actions</span></th>
                </tr>
              </thead>
              <tbody>
                {data.adminKeys.map((k) => (
                  <tr key={k.id}>
                    <td>{k.name}</td>
                    <td>{k.role.toLowerCase()}</td>
                    <td><code>{k.prefix}…</code></td>
                    <td>{formatDateTime(k.createdAt)}</td>
                    <td>{k.lastUsedAt ? formatDateTime(k.lastUsedAt) : 'Never'}</td>
                    <td>{k.revokedAt ? `Revoked ${formatDateTime(k.revokedAt)}` : 'Active'}</td>
                    <td>
                      {!k.revokedAt ? (
                        <button type="button" className="small danger" onClick={() => void revokeKey(k.id, k.name)}>
                          Revoke
                        </button>
                      ) : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>No admin keys.</Empty>
          )
        }
      </QueryState>
      <CreateKeyForm onDone={refresh} />
    </section>
  );
}

function CreateKeyForm({ onDone }: { onDone: () => void }) {
  const [name, setName] = useState('');
  const [role, setRole] = useState<AdminRole>('SERVICE');
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [state, create] = useMutation(CreateAdminKeyDoc);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!name.trim()) found.name = 'Name the key after what will use it.';
    setErrors(found);
    setFormError(null);
    setSecret(null);
    if (Object.keys(found).length) return;
    const result = await create({ name: name.trim(), role });
    if (result.error) return setFormError(result.error.message);
    const outcome = result.data?.createAdminKey;
    const failure = failureOf(outcome, ['CreatedAdminKey']);
    if (failure) {
      const applied = applyFailure(failure, ['name', 'role']);
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    if (outcome?.__typename === 'CreatedAdminKey') setSecret(outcome.secret);
    setName('');
    onDone();
  }

  return (
    <section className="card" aria-labelledby="new-key-title">
      <h2 id="new-key-title">New admin key</h2>
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
        <TextField label="Name" value={name} error={errors.name} onValue={setName} />
        <SelectField label="Role" value={role} options={ROLES} error={errors.role} onValue={(v) => setRole(v as AdminRole)} />
        <div className="actions">
          <button type="submit" className="primary" disabled={state.fetching}>
            Create key
          </button>
        </div>
      </form>
    </section>
  );
}
