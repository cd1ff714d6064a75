import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';
import { graphql } from '../gql';
import type { AdminRole } from '../gql/graphql';
import { usePermissions, useSession } from '../auth/session';
import { Empty, QueryState } from '../components/states';
import { applyFailure, failureOf, FormError, FormSuccess, SelectField, TextField, type FieldErrors } from '../components/forms';
import { formatDateTime } from '../lib/format';

const UsersDoc = graphql(`
  query AdminUsers {
    adminUsers { id email role disabled createdAt disabledAt lastLoginAt }
  }
`);

const CreateUserDoc = graphql(`
  mutation CreateAdminUser($input: CreateAdminUserInput!) {
    createAdminUser(input: $input) {
      __typename
      ... on AdminUser { id email }
      ... on ValidationFailed { field message }
      ... on AlreadyExists { field message }
    }
  }
`);

const SetRoleDoc = graphql(`
  mutation SetAdminUserRole($id: ID!, $role: AdminRole!) {
    setAdminUserRole(id: $id, role: $role) {
      __typename
      ... on AdminUser { id role }
      ... on NotFound { missingId: id message }
      ... on ValidationFailed { field message }
    }
  }
`);

const DisableUserDoc = graphql(`
  mutation DisableAdminUser($id: ID!) {
    disableAdminUser(id: $id) {
      __typename
      ... on AdminUser { id disabled }
      ... on NotFound { missingId: id message }
      ... on ValidationFailed { field message }
    }
  }
`);

const ROLES: { value: AdminRole; label: string }[] = [
  { value: 'ANALYST', label: 'Analyst — sees everything, changes nothing' },
  { value: 'ADMIN', label: 'Admin — runs pricing, credits and controls' },
  { value: 'OWNER', label: 'Owner — everything, including people and keys' },
];

export function UsersScreen() {
  const { isOwner } = usePermissions();
  return (
    <section>
      <h1>People</h1>
      {isOwner ? <OwnerUsers /> : <p>Only owners see and manage who may sign in.</p>}
    </section>
  );
}

function OwnerUsers() {
  const me = useSession().user.email;
  const [result, reexecute] = useQuery({ query: UsersDoc });
  const [, setRole] = useMutation(SetRoleDoc);
  const [, disable] = useMutation(DisableUserDoc);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const refresh = () => reexecute({ requestPolicy: 'network-only' });

  async function changeRole(id: string, email: string, role: AdminRole) {
    const done = await setRole({ id, role });
    const failure = done.error ? { message: done.error.message } : failureOf(done.data?.setAdminUserRole, ['AdminUser']);
    setError(failure?.message ?? null);
    setNotice(failure ? null : `${email} is now ${role.toLowerCase()}.`);
    refresh();
  }

  async function disableUser(id: string, email: string) {
    if (!window.confirm(`Disable ${email}? They can no longer sign in and their sessions end now.`)) return;
    const done = await disable({ id });
    const failure = done.error ? { message: done.error.message } : failureOf(done.data?.disableAdminUser, ['AdminUser']);
    setError(failure?.message ?? null);
    setNotice(failure ? null : `${email} is disabled.`);
    refresh();
  }

  return (
    <>
      <p className="hint">The people who sign in to this app, and what their role lets them do.</p>
      <FormError message={error} />
      <FormSuccess message={notice} />
      <QueryState result={result} what="people">
        {(data) =>
          data.adminUsers.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Last sign-in</th>
                  <th scope="col">Created</th>
                  <th scope="col">State</th>
                </tr>
              </thead>
              <tbody>
                {data.adminUsers.map((u) => (
                  <tr key={u.id}>
                    <td>{u.email}{u.email === me ? <small className="muted"> (you)</small> : null}</td>
                    <td>
                      {u.disabled || u.email === me ? (
                        u.role.toLowerCase()
                      ) : (
                        <select
                          aria-label={`Role of ${u.email}`}
                          value={u.role}
                          onChange={(e) => void changeRole(u.id, u.email, e.target.value as AdminRole)}
                        >
                          {ROLES.map((r) => (
                            <option key={r.value} value={r.value}>
                              {r.value.toLowerCase()}
                            </option>
                          ))}
                        </select>
                      )}
                    </td>
                    <td>{u.lastLoginAt ? formatDateTime(u.lastLoginAt) : 'Never'}</td>
                    <td>{formatDateTime(u.createdAt)}</td>
                    <td>
                      {u.disabled ? (
                        `Disabled ${formatDateTime(u.disabledAt)}`
                      ) : u.email === me ? (
                        'Active'
                      ) : (
                        <>
                          Active{' '}
                          <button type="button" className="small danger" onClick={() => void disableUser(u.id, u.email)}>
                            Disable
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>No people yet.</Empty>
          )
        }
      </QueryState>
      <CreateUserForm onDone={refresh} />
    </>
  );
}

function CreateUserForm({ onDone }: { onDone: () => void }) {
  const [values, setValues] = useState({ email: '', password: '', role: 'ANALYST' });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [success, setSuccess] = useState<string | null>(null);
  const [state, create] = useMutation(CreateUserDoc);
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!/^[^\s@]+@[^\s@]+$/.test(values.email.trim())) found.email = 'An email address.';
    if (values.password.length < 12) found.password = 'At least 12 characters.';
    setErrors(found);
    setFormError(null);
    setSuccess(null);
    if (Object.keys(found).length) return;
    const result = await create({
      input: { email: values.email.trim(), password: values.password, role: values.role as AdminRole },
    });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.createAdminUser, ['AdminUser']);
    if (failure) {
      const applied = applyFailure(failure, Object.keys(values));
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    setSuccess(`${values.email.trim()} may now sign in as ${values.role.toLowerCase()}.`);
    setValues({ email: '', password: '', role: 'ANALYST' });
    onDone();
  }

  return (
    <section className="card" aria-labelledby="new-user-title">
      <h2 id="new-user-title">Invite a person</h2>
      <FormSuccess message={success} />
      <form onSubmit={(e) => void submit(e)} noValidate className="form-grid" aria-label="New person">
        <FormError message={formError} />
        <TextField label="Email" type="email" autoComplete="off" value={values.email} error={errors.email} onValue={set('email')} />
        <TextField
          label="Initial password"
          type="password"
          autoComplete="new-password"
          value={values.password}
          error={errors.password}
          onValue={set('password')}
          hint="At least 12 characters; share it with them privately."
        />
        <SelectField label="Role" value={values.role} options={ROLES} error={errors.role} onValue={set('role')} />
        <div className="actions">
          <button type="submit" className="primary" disabled={state.fetching}>
            Add person
          </button>
        </div>
      </form>
    </section>
  );
}
