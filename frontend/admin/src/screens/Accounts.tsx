import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { useMutation, useQuery } from 'urql';
import { graphql } from '../gql';
import { usePermissions } from '../auth/session';
import { QueryState, Empty, ErrorNotice, Loading } from '../components/states';
import { applyFailure, failureOf, FormError, TextField, type FieldErrors } from '../components/forms';
import { formatCredits, formatDateTime, parseWhole } from '../lib/format';
import { GrantForm } from './account/LedgerForms';

const AccountsQuery = graphql(`
  query Accounts($search: String, $first: Int!, $after: String) {
    accounts(search: $search, first: $first, after: $after) {
      nodes {
        id
        externalId
        name
        email
        createdAt
        organization { externalId name }
        balance { available reserved }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

const OrganizationsQuery = graphql(`
  query Organizations($first: Int!, $after: String) {
    organizations(first: $first, after: $after) {
      nodes { id externalId name memberCap createdAt balance { available total reserved } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

const CreateAccount = graphql(`
  mutation CreateAccount($input: CreateAccountInput!) {
    createAccount(input: $input) {
      __typename
      ... on Account { externalId }
      ... on ValidationFailed { field message }
      ... on AlreadyExists { field message }
      ... on OrganizationNotFound { externalId message }
    }
  }
`);

const CreateOrganization = graphql(`
  mutation CreateOrganization($input: CreateOrganizationInput!) {
    createOrganization(input: $input) {
      __typename
      ... on Organization { externalId }
      ... on ValidationFailed { field message }
      ... on AlreadyExists { field message }
    }
  }
`);

const PAGE = 25;

function AccountPage({ search, after, isLast, onMore }: { search: string; after: string | null; isLast: boolean; onMore: (cursor: string) => void }) {
  const [result] = useQuery({ query: AccountsQuery, variables: { search: search || null, first: PAGE, after } });
  const data = result.data;
  if (!data) {
    return (
      <tr>
        <td colSpan={5}>
          {result.error ? <ErrorNotice error={result.error} what="accounts" /> : <Loading what="accounts" />}
        </td>
      </tr>
    );
  }
  return (
    <>
      {data.accounts.nodes.length === 0 && after === null ? (
        <tr>
          <td colSpan={5}>
            <Empty>{search ? `No account matches “${search}”.` : 'No accounts yet.'}</Empty>
          </td>
        </tr>
      ) : null}
      {data.accounts.nodes.map((a) => (
        <tr key={a.id}>
          <td>
            <Link to={`/accounts/${encodeURIComponent(a.externalId)}`}>{a.externalId}</Link>
          </td>
          <td>
            {a.name || '—'}
            {a.email ? <small className="muted"> {a.email}</small> : null}
          </td>
          <td>{a.organization ? a.organization.name || a.organization.externalId : '—'}</td>
          <td className="num">{formatCredits(a.balance.available)}</td>
          <td>{formatDateTime(a.createdAt)}</td>
        </tr>
      ))}
      {isLast && data.accounts.pageInfo.hasNextPage && data.accounts.pageInfo.endCursor ? (
        <tr>
          <td colSpan={5}>
            <button type="button" onClick={() => onMore(data.accounts.pageInfo.endCursor ?? '')}>
              Load more accounts
            </button>
          </td>
        </tr>
      ) : null}
    </>
  );
}

export function AccountsScreen() {
  const [params, setParams] = useSearchParams();
  const search = params.get('q') ?? '';
  const [draft, setDraft] = useState(search);
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const { canWrite } = usePermissions();

  function submit(event: FormEvent) {
    event.preventDefault();
    setCursors([null]);
    setParams(draft.trim() ? { q: draft.trim() } : {});
  }

  return (
    <section>
      <h1>Accounts</h1>
      <form className="search" role="search" onSubmit={submit}>
        <label htmlFor="account-search">Search accounts</label>
        <input
          id="account-search"
          type="search"
          placeholder="External id, name or email"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
        />
        <button type="submit">Search</button>
      </form>
      <table>
        <thead>
          <tr>
            <th scope="col">External id</th>
            <th scope="col">Name</th>
            <th scope="col">Organisation</th>
            <th scope="col" className="num">Available</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {cursors.map((after, i) => (
            <AccountPage
              key={`${search}:${after ?? ''}`}
              search={search}
              after={after}
              isLast={i === cursors.length - 1}
              onMore={(cursor) => setCursors((list) => [...list, cursor])}
            />
          ))}
        </tbody>
      </table>
      {canWrite ? <CreateAccountForm /> : null}
      <Organizations />
    </section>
  );
}

function CreateAccountForm() {
  const navigate = useNavigate();
  const [values, setValues] = useState({ externalId: '', name: '', email: '', organizationExternalId: '' });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [state, create] = useMutation(CreateAccount);
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!values.externalId.trim()) found.externalId = 'Give the id your product knows this account by.';
    if (values.email && !/^[^\s@]+@[^\s@]+$/.test(values.email.trim())) found.email = 'Not an email address.';
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length) return;
    const result = await create({
      input: {
        externalId: values.externalId.trim(),
        name: values.name.trim(),
        email: values.email.trim() || null,
        organizationExternalId: values.organizationExternalId.trim() || null,
      },
    });
    if (result.error) return setFormError(result.error.message);
    const outcome = result.data?.createAccount;
    const failure = failureOf(outcome, ['Account']);
    if (failure) {
      const applied = applyFailure(failure, Object.keys(values));
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    if (outcome?.__typename === 'Account') navigate(`/accounts/${encodeURIComponent(outcome.externalId)}`);
  }

  return (
    <details className="card">
      <summary>New account</summary>
      <form onSubmit={(e) => void submit(e)} noValidate className="form-grid">
        <FormError message={formError} />
        <TextField label="External id" value={values.externalId} error={errors.externalId} onValue={set('externalId')} required />
        <TextField label="Name" value={values.name} error={errors.name} onValue={set('name')} />
        <TextField label="Email" type="email" value={values.email} error={errors.email} onValue={set('email')} />
        <TextField
          label="Organisation (external id)"
          value={values.organizationExternalId}
          error={errors.organizationExternalId}
          onValue={set('organizationExternalId')}
          hint="Optional: members draw on the organisation's shared pool."
        />
        <div className="actions">
          <button type="submit" className="primary" disabled={state.fetching}>
            {state.fetching ? 'Creating…' : 'Create account'}
          </button>
        </div>
      </form>
    </details>
  );
}

function Organizations() {
  const [result, reexecute] = useQuery({ query: OrganizationsQuery, variables: { first: 100, after: null } });
  const { canWrite } = usePermissions();
  const [granting, setGranting] = useState<string | null>(null);
  return (
    <section className="card">
      <h2>Organisations</h2>
      <QueryState result={result} what="organisations">
        {(data) =>
          data.organizations.nodes.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">External id</th>
                  <th scope="col">Name</th>
                  <th scope="col" className="num">Pool available</th>
                  <th scope="col" className="num">Member cap</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                {data.organizations.nodes.map((o) => (
                  <tr key={o.id}>
                    <td>
                      {o.externalId}
                      {canWrite ? (
                        <>
                          {' '}
                          <button type="button" className="small" onClick={() => setGranting(o.externalId)}>
                            Add credits…
                          </button>
                        </>
                      ) : null}
                    </td>
                    <td>{o.name || '—'}</td>
                    <td className="num">{formatCredits(o.balance.available)}</td>
                    <td className="num">{o.memberCap === null || o.memberCap === undefined ? 'No cap' : formatCredits(o.memberCap)}</td>
                    <td>{formatDateTime(o.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>No organisations yet.</Empty>
          )
        }
      </QueryState>
      {canWrite && granting ? (
        <div className="boxed">
          <h3>Credits for the pool of {granting}</h3>
          <GrantForm key={granting} organizationExternalId={granting} onDone={() => reexecute({ requestPolicy: 'network-only' })} />
          <button type="button" onClick={() => setGranting(null)}>
            Close
          </button>
        </div>
      ) : null}
      {canWrite ? <CreateOrganizationForm onDone={() => reexecute({ requestPolicy: 'network-only' })} /> : null}
    </section>
  );
}

function CreateOrganizationForm({ onDone }: { onDone: () => void }) {
  const [values, setValues] = useState({ externalId: '', name: '', memberCap: '' });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [state, create] = useMutation(CreateOrganization);
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!values.externalId.trim()) found.externalId = 'Give the id your product knows this organisation by.';
    const cap = values.memberCap.trim() ? parseWhole(values.memberCap) : null;
    if (values.memberCap.trim() && cap === null) found.memberCap = 'A whole number of credits, or empty for no cap.';
    setErrors(found);
    setFormError(null);
    setDone(null);
    if (Object.keys(found).length) return;
    const result = await create({
      input: { externalId: values.externalId.trim(), name: values.name.trim(), memberCap: cap === null ? null : cap.toString() },
    });
    if (result.error) return setFormError(result.error.message);
    const outcome = result.data?.createOrganization;
    const failure = failureOf(outcome, ['Organization']);
    if (failure) {
      const applied = applyFailure(failure, Object.keys(values));
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    setDone(`Organisation ${values.externalId.trim()} created.`);
    setValues({ externalId: '', name: '', memberCap: '' });
    onDone();
  }

  return (
    <details>
      <summary>New organisation</summary>
      <form onSubmit={(e) => void submit(e)} noValidate className="form-grid">
        <FormError message={formError} />
        {done ? <p className="form-success" role="status">{done}</p> : null}
        <TextField label="External id" value={values.externalId} error={errors.externalId} onValue={set('externalId')} />
        <TextField label="Name" value={values.name} error={errors.name} onValue={set('name')} />
        <TextField
          label="Member cap (credits)"
          inputMode="numeric"
          value={values.memberCap}
          error={errors.memberCap}
          onValue={set('memberCap')}
          hint="Most pool credits one member may draw; empty for no cap."
        />
        <div className="actions">
          <button type="submit" className="primary" disabled={state.fetching}>
            Create organisation
          </button>
        </div>
      </form>
    </details>
  );
}
