import { useCallback, useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { useMutation, useQuery } from 'urql';
import type { FeatureKind } from '../../gql/graphql';
import { usePermissions } from '../../auth/session';
import { useLiveRefresh } from '../../live/live';
import { PRICING_PUBLISHED } from '../../live/subscriptions';
import { Empty, QueryState } from '../../components/states';
import { applyFailure, CheckboxField, failureOf, FormError, FormSuccess, SelectField, TextField, type FieldErrors } from '../../components/forms';
import { formatCredits, formatDateTime } from '../../lib/format';
import { CreatePlanDoc, FeaturesDoc, PlansDoc, UpsertFeatureDoc } from './documents';
import { emptyDraft, priceLine, toInput, type VersionDraft } from './version';
import { VersionEditor } from './VersionEditor';
import { TokenPackages } from './TokenPackages';

export function PlansScreen() {
  const [archived, setArchived] = useState(false);
  const [result, reexecute] = useQuery({ query: PlansDoc, variables: { includeArchived: archived } });
  const refresh = useCallback(() => reexecute({ requestPolicy: 'network-only' }), [reexecute]);
  // Another operator (or replica) publishing a version shows up here at once.
  useLiveRefresh(PRICING_PUBLISHED, {}, refresh);
  const { canWrite } = usePermissions();
  const [creating, setCreating] = useState(false);
  return (
    <section>
      <h1>Plans & features</h1>
      <div className="toolbar">
        <CheckboxField label="Show archived plans" checked={archived} onValue={setArchived} />
        {canWrite && !creating ? (
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New plan
          </button>
        ) : null}
      </div>
      {creating ? <CreatePlanForm onCancel={() => setCreating(false)} /> : null}
      <QueryState result={result} what="plans">
        {(data) =>
          data.plans.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">Plan</th>
                  <th scope="col">Price</th>
                  <th scope="col" className="num">Credits per period</th>
                  <th scope="col">Published</th>
                  <th scope="col">Draft</th>
                </tr>
              </thead>
              <tbody>
                {data.plans.map((p) => (
                  <tr key={p.id}>
                    <td>
                      <Link to={`/plans/${encodeURIComponent(p.code)}`}>{p.name || p.code}</Link> <small className="muted">{p.code}</small>
                      {p.archivedAt ? <span className="tag"> archived</span> : null}
                    </td>
                    <td>{p.currentVersion ? priceLine(p.currentVersion.prices) : '—'}</td>
                    <td className="num">{p.currentVersion ? formatCredits(p.currentVersion.includedCredits) : '—'}</td>
                    <td>{p.currentVersion ? `v${p.currentVersion.version}, ${formatDateTime(p.currentVersion.publishedAt)}` : 'Never published'}</td>
                    <td>{p.draft ? `v${p.draft.version}, edited ${formatDateTime(p.draft.updatedAt)}` : '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>No plans yet{canWrite ? ': create the first one.' : '.'}</Empty>
          )
        }
      </QueryState>
      <FeatureCatalog />
      <TokenPackages />
    </section>
  );
}

function CreatePlanForm({ onCancel }: { onCancel: () => void }) {
  const navigate = useNavigate();
  const [features] = useQuery({ query: FeaturesDoc });
  const [values, setValues] = useState({ code: '', name: '', description: '' });
  const [draft, setDraft] = useState<VersionDraft>(emptyDraft);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [state, create] = useMutation(CreatePlanDoc);
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));
  const featureList = features.data?.features ?? [];

  async function submit(event: FormEvent) {
    event.preventDefault();
    const { input, errors: found } = toInput(draft, featureList);
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(values.code.trim())) found.code = 'Lowercase letters, digits, - and _ (e.g. pro-monthly).';
    if (!values.name.trim()) found.name = 'The name customers see.';
    setErrors(found);
    setFormError(Object.keys(found).length ? 'Some fields need attention.' : null);
    if (!input || Object.keys(found).length) return;
    const result = await create({ input: { code: values.code.trim(), name: values.name.trim(), description: values.description.trim(), version: input } });
    if (result.error) return setFormError(result.error.message);
    const outcome = result.data?.createPlan;
    const failure = failureOf(outcome, ['PlanVersion']);
    if (failure) {
      const applied = applyFailure(failure, [...Object.keys(values), ...Object.keys(draft), ...Object.keys(draft.limits)]);
      setErrors(applied.fieldErrors);
      setFormError(applied.formError ?? 'The server refused a field: see below.');
      return;
    }
    navigate(`/plans/${encodeURIComponent(values.code.trim())}`);
  }

  return (
    <form onSubmit={(e) => void submit(e)} noValidate className="boxed" aria-label="New plan">
      <h2>New plan</h2>
      <p className="hint">The plan starts with a draft version 1: review it, then publish it.</p>
      <FormError message={formError} />
      <div className="form-grid">
        <TextField label="Plan code" value={values.code} error={errors.code} onValue={set('code')} hint="Used by the API; cannot change later." />
        <TextField label="Name" value={values.name} error={errors.name} onValue={set('name')} />
        <TextField label="Description" value={values.description} error={errors.description} onValue={set('description')} />
      </div>
      <VersionEditor
        draft={draft}
        onChange={setDraft}
        errors={errors}
        features={featureList}
        footer={
          <div className="actions">
            <button type="submit" className="primary" disabled={state.fetching}>
              {state.fetching ? 'Creating…' : 'Create plan with a draft'}
            </button>
            <button type="button" onClick={onCancel}>
              Cancel
            </button>
          </div>
        }
      />
    </form>
  );
}

const KINDS: { value: FeatureKind; label: string }[] = [
  { value: 'BOOLEAN', label: 'On or off' },
  { value: 'LIMIT', label: 'A limit (e.g. projects)' },
  { value: 'METERED', label: 'Metered (e.g. API calls)' },
];

function FeatureCatalog() {
  const [result, reexecute] = useQuery({ query: FeaturesDoc });
  const { canWrite } = usePermissions();
  const [values, setValues] = useState({ key: '', name: '', kind: 'BOOLEAN', description: '', unit: '' });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [success, setSuccess] = useState<string | null>(null);
  const [state, upsert] = useMutation(UpsertFeatureDoc);
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!/^[a-z0-9][a-z0-9_.-]*$/.test(values.key.trim())) found.key = 'Lowercase letters, digits, ., - and _.';
    if (!values.name.trim()) found.name = 'The name shown on the pricing page.';
    setErrors(found);
    setFormError(null);
    setSuccess(null);
    if (Object.keys(found).length) return;
    const result = await upsert({
      input: {
        key: values.key.trim(),
        name: values.name.trim(),
        kind: values.kind as FeatureKind,
        description: values.description.trim(),
        unit: values.unit.trim() || null,
      },
    });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.upsertFeature, ['Feature']);
    if (failure) {
      const applied = applyFailure(failure, Object.keys(values));
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    setSuccess(`Feature ${values.key.trim()} saved.`);
    setValues({ key: '', name: '', kind: 'BOOLEAN', description: '', unit: '' });
    reexecute({ requestPolicy: 'network-only' });
  }

  return (
    <section className="card" aria-labelledby="features-title">
      <h2 id="features-title">Feature catalog</h2>
      <QueryState result={result} what="features">
        {(data) =>
          data.features.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  <th scope="col">Name</th>
                  <th scope="col">Kind</th>
                  <th scope="col">Unit</th>
                  <th scope="col">Description</th>
                </tr>
              </thead>
              <tbody>
                {data.features.map((f) => (
                  <tr key={f.key}>
                    <td><code>{f.key}</code></td>
                    <td>
                      {f.name}
                      {canWrite ? (
                        <>
                          {' '}
                          <button
                            type="button"
                            className="small"
                            onClick={() => setValues({ key: f.key, name: f.name, kind: f.kind, description: f.description, unit: f.unit ?? '' })}
                          >
                            Edit…
                          </button>
                        </>
                      ) : null}
                    </td>
                    <td>{KINDS.find((k) => k.value === f.kind)?.label ?? f.kind}</td>
                    <td>{f.unit ?? '—'}</td>
                    <td>{f.description || '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>No features yet.</Empty>
          )
        }
      </QueryState>
      {canWrite ? (
        <form onSubmit={(e) => void submit(e)} noValidate className="form-grid" aria-label="Feature">
          <h3>Add or change a feature</h3>
          <FormError message={formError} />
          <FormSuccess message={success} />
          <TextField label="Key" value={values.key} error={errors.key} onValue={set('key')} />
          <TextField label="Name" value={values.name} error={errors.name} onValue={set('name')} />
          <SelectField label="Kind" value={values.kind} options={KINDS} error={errors.kind} onValue={set('kind')} />
          <TextField label="Unit" value={values.unit} error={errors.unit} onValue={set('unit')} hint="For limits: projects, seats, calls…" />
          <TextField label="Description" value={values.description} error={errors.description} onValue={set('description')} />
          <div className="actions">
            <button type="submit" className="primary" disabled={state.fetching}>
              Save feature
            </button>
          </div>
        </form>
      ) : null}
    </section>
  );
}
