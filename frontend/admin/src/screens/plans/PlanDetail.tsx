import { useState, type FormEvent } from 'react';
import { Link, useParams } from 'react-router';
import { useClient, useMutation, useQuery } from 'urql';
import type { BillingCycle, MigrationTiming, PlanVersionFieldsFragment, PublishMigration } from '../../gql/graphql';
import { usePermissions } from '../../auth/session';
import { Empty, QueryState } from '../../components/states';
import { applyFailure, ConfirmPanel, failureOf, FormError, FormSuccess, SelectField, TextField, type FieldErrors } from '../../components/forms';
import { formatDateTime } from '../../lib/format';
import { formatMinor } from '../../lib/money';
import {
  ArchivePlanDoc,
  CreatePlanVersionDoc,
  MigrateSubscribersDoc,
  PlanDoc,
  PriceForDoc,
  PublishPlanVersionDoc,
  UpdatePlanVersionDoc,
} from './documents';
import { CYCLE_LABEL, draftOf, summarize, toInput, type FeatureInfo, type VersionDraft } from './version';
import { VersionEditor } from './VersionEditor';

const MIGRATIONS: { value: PublishMigration; label: string }[] = [
  { value: 'NONE', label: 'Keep existing subscribers on their version (new subscribers get this one)' },
  { value: 'NEXT_RENEWAL', label: 'Move existing subscribers at their next renewal' },
  { value: 'IMMEDIATELY', label: 'Move existing subscribers now' },
];

export function PlanDetailScreen() {
  const { code = '' } = useParams();
  const [result, reexecute] = useQuery({ query: PlanDoc, variables: { code } });
  const refresh = () => reexecute({ requestPolicy: 'network-only' });
  const { canWrite } = usePermissions();
  const [notice, setNotice] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [, createVersion] = useMutation(CreatePlanVersionDoc);
  const [, archive] = useMutation(ArchivePlanDoc);

  async function newDraft(fromVersionId: string, version: number) {
    setError(null);
    const done = await createVersion({ fromVersionId });
    const failure = done.error ? { message: done.error.message } : failureOf(done.data?.createPlanVersion, ['PlanVersion']);
    if (failure) return setError(failure.message);
    setNotice(`A new draft was copied from version ${version}.`);
    refresh();
  }

  async function archivePlan() {
    if (!window.confirm(`Archive ${code}? No one can subscribe to it any more; existing subscribers stay.`)) return;
    const done = await archive({ code });
    const failure = done.error ? { message: done.error.message } : failureOf(done.data?.archivePlan, ['Plan']);
    if (failure) return setError(failure.message);
    setNotice('The plan is archived.');
    refresh();
  }

  return (
    <section>
      <p className="breadcrumb">
        <Link to="/plans">Plans & features</Link> / {code}
      </p>
      <QueryState result={result} what="the plan">
        {(data) => {
          const plan = data.plan;
          if (!plan) return <Empty>There is no plan with the code “{code}”.</Empty>;
          const features: FeatureInfo[] = data.features;
          const draft = plan.versions.find((v) => v.status === 'DRAFT');
          const published = plan.versions.filter((v) => v.status === 'PUBLISHED');
          const latest = plan.versions[plan.versions.length - 1];
          return (
            <>
              <h1>
                {plan.name} <small className="muted">{plan.code}</small>
              </h1>
              <p className="muted">
                {plan.description || 'No description.'} Created {formatDateTime(plan.createdAt)}.
                {plan.archivedAt ? ` Archived ${formatDateTime(plan.archivedAt)}.` : ''}
              </p>
              <FormSuccess message={notice} />
              <FormError message={error} />
              <section className="card" aria-labelledby="versions-title">
                <h2 id="versions-title">Versions</h2>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Version</th>
                      <th scope="col">State</th>
                      <th scope="col">Published</th>
                      <th scope="col">Last edited</th>
                      {canWrite ? <th scope="col"><span className="sr-only">Actions</span></th> : null}
                    </tr>
                  </thead>
                  <tbody>
                    {plan.versions.map((v) => (
                      <tr key={v.id}>
                        <td>v{v.version}</td>
                        <td>
                          {v.status === 'DRAFT' ? (
                            <span className="tag tag-warning">Draft</span>
                          ) : v.id === plan.currentVersion?.id ? (
                            <span className="tag tag-ok">Current</span>
                          ) : (
                            <span className="tag">Earlier</span>
                          )}
                        </td>
                        <td>{v.publishedAt ? formatDateTime(v.publishedAt) : '—'}</td>
                        <td>{formatDateTime(v.updatedAt)}</td>
                        {canWrite ? (
                          <td>
                            {!draft && v.status === 'PUBLISHED' && !plan.archivedAt ? (
                              <button type="button" className="small" onClick={() => void newDraft(v.id, v.version)}>
                                New draft from v{v.version}
                              </button>
                            ) : null}
                          </td>
                        ) : null}
                      </tr>
                    ))}
                  </tbody>
                </table>
                {canWrite && !plan.archivedAt ? (
                  <div className="actions">
                    <button type="button" className="danger" onClick={() => void archivePlan()}>
                      Archive plan
                    </button>
                  </div>
                ) : null}
              </section>
              {draft && canWrite ? (
                <DraftSection
                  key={`${draft.id}:${draft.updatedAt}`}
                  draft={draft}
                  features={features}
                  hasPublished={published.length > 0}
                  onDone={(message) => {
                    setError(null);
                    setNotice(message);
                    refresh();
                  }}
                />
              ) : null}
              {plan.versions.length > 1 ? <Compare versions={plan.versions} features={features} /> : null}
              {!draft || !canWrite ? (
                latest ? (
                  <section className="card" aria-labelledby="latest-title">
                    <h2 id="latest-title">Version {latest.version}</h2>
                    <Summary version={latest} features={features} />
                  </section>
                ) : null
              ) : null}
              {published.length ? <PriceForCountry planCode={plan.code} /> : null}
              {canWrite && published.length > 1 ? <MigrateSection versions={published} onDone={refresh} /> : null}
            </>
          );
        }}
      </QueryState>
    </section>
  );
}

function Summary({ version, features }: { version: PlanVersionFieldsFragment; features: FeatureInfo[] }) {
  return (
    <dl className="facts">
      {summarize(version, features).map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

function DraftSection({
  draft,
  features,
  hasPublished,
  onDone,
}: {
  draft: PlanVersionFieldsFragment;
  features: FeatureInfo[];
  hasPublished: boolean;
  onDone: (message: string) => void;
}) {
  const [values, setValues] = useState<VersionDraft>(() => draftOf(draft));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [dirty, setDirty] = useState(false);
  const [publishing, setPublishing] = useState(false);
  const [migrate, setMigrate] = useState<PublishMigration>('NONE');
  const [updateState, update] = useMutation(UpdatePlanVersionDoc);
  const [publishState, publish] = useMutation(PublishPlanVersionDoc);

  async function save(event: FormEvent) {
    event.preventDefault();
    const { input, errors: found } = toInput(values, features);
    setErrors(found);
    setFormError(Object.keys(found).length ? 'Some fields need attention.' : null);
    if (!input) return;
    const result = await update({ id: draft.id, input });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.updatePlanVersion, ['PlanVersion']);
    if (failure) {
      const applied = applyFailure(failure, [...Object.keys(values), ...Object.keys(values.limits)]);
      setErrors(applied.fieldErrors);
      setFormError(applied.formError ?? 'The server refused a field: see below.');
      return;
    }
    setDirty(false);
    onDone(`Draft version ${draft.version} saved.`);
  }

  async function confirmPublish() {
    const result = await publish({ id: draft.id, migrate });
    if (result.error) {
      setFormError(result.error.message);
      setPublishing(false);
      return;
    }
    const outcome = result.data?.publishPlanVersion;
    const failure = failureOf(outcome, ['PublishedPlanVersion']);
    setPublishing(false);
    if (failure) return setFormError(failure.message);
    if (outcome?.__typename !== 'PublishedPlanVersion') return;
    onDone(
      `Version ${outcome.version.version} is published. ${
        outcome.migrate === 'NONE'
          ? 'Existing subscribers keep their version.'
          : `${outcome.affectedSubscribers} subscriber(s) ${outcome.migrate === 'IMMEDIATELY' ? 'moved now' : 'move at their next renewal'}.`
      }`,
    );
  }

  return (
    <section className="card" aria-labelledby="draft-title">
      <h2 id="draft-title">Draft version {draft.version}</h2>
      <FormError message={formError} />
      {publishing ? (
        <ConfirmPanel
          title="Publish the draft"
          busy={publishState.fetching}
          onBack={() => setPublishing(false)}
          onConfirm={() => void confirmPublish()}
          confirmLabel={`Publish version ${draft.version}`}
          rows={[
            ['Version', `v${draft.version} of ${draft.planCode}`],
            ['New subscribers', 'get this version from now on'],
            ['Existing subscribers', MIGRATIONS.find((m) => m.value === migrate)?.label ?? migrate],
          ]}
        />
      ) : (
        <form onSubmit={(e) => void save(e)} noValidate aria-label="Draft version">
          <VersionEditor
            draft={values}
            onChange={(d) => {
              setValues(d);
              setDirty(true);
            }}
            errors={errors}
            features={features}
            footer={
              <div className="actions publish-row">
                <button type="submit" className="primary" disabled={updateState.fetching}>
                  {updateState.fetching ? 'Saving…' : 'Save draft'}
                </button>
                {hasPublished ? (
                  <SelectField label="When publishing" value={migrate} options={MIGRATIONS} onValue={(v) => setMigrate(v as PublishMigration)} />
                ) : null}
                <button
                  type="button"
                  disabled={dirty}
                  title={dirty ? 'Save the draft first' : undefined}
                  onClick={() => {
                    setFormError(null);
                    setPublishing(true);
                  }}
                >
                  Publish…
                </button>
                {dirty ? <small className="hint">Save the draft before publishing it.</small> : null}
              </div>
            }
          />
        </form>
      )}
    </section>
  );
}

function Compare({ versions, features }: { versions: PlanVersionFieldsFragment[]; features: FeatureInfo[] }) {
  const last = versions[versions.length - 1];
  const before = versions[versions.length - 2];
  const [leftId, setLeftId] = useState(before?.id ?? '');
  const [rightId, setRightId] = useState(last?.id ?? '');
  const left = versions.find((v) => v.id === leftId);
  const right = versions.find((v) => v.id === rightId);
  const options = versions.map((v) => ({ value: v.id, label: `v${v.version}${v.status === 'DRAFT' ? ' (draft)' : ''}` }));
  const leftRows = left ? summarize(left, features) : [];
  const rightRows = new Map(right ? summarize(right, features) : []);
  const [onlyChanges, setOnlyChanges] = useState(true);
  const rows = leftRows.filter(([k, v]) => !onlyChanges || rightRows.get(k) !== v);
  return (
    <section className="card" aria-labelledby="compare-title">
      <h2 id="compare-title">Compare versions</h2>
      <div className="toolbar">
        <SelectField label="From" value={leftId} options={options} onValue={setLeftId} />
        <SelectField label="To" value={rightId} options={options} onValue={setRightId} />
        <label>
          <input type="checkbox" checked={onlyChanges} onChange={(e) => setOnlyChanges(e.target.checked)} /> Only what changed
        </label>
      </div>
      {rows.length ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">v{left?.version}</th>
              <th scope="col">v{right?.version}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(([k, v]) => (
              <tr key={k} className={rightRows.get(k) !== v ? 'changed' : undefined}>
                <td>{k}</td>
                <td>{v}</td>
                <td>{rightRows.get(k)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Empty>The two versions are the same.</Empty>
      )}
    </section>
  );
}

function MigrateSection({ versions, onDone }: { versions: PlanVersionFieldsFragment[]; onDone: () => void }) {
  const latest = versions[versions.length - 1];
  const [fromId, setFromId] = useState(versions[0]?.id ?? '');
  const [effective, setEffective] = useState<MigrationTiming>('NEXT_RENEWAL');
  const [confirming, setConfirming] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [state, migrate] = useMutation(MigrateSubscribersDoc);
  if (!latest) return null;
  const older = versions.filter((v) => v.id !== latest.id);

  async function confirm() {
    const done = await migrate({ fromVersionId: fromId, toVersionId: latest?.id ?? '', effective });
    setConfirming(false);
    const outcome = done.data?.migrateSubscribers;
    const failure = done.error ? { message: done.error.message } : failureOf(outcome, ['SubscribersMigrated']);
    if (failure) return setError(failure.message);
    if (outcome?.__typename === 'SubscribersMigrated') {
      setMessage(`${outcome.moved} subscriber(s) ${outcome.effective === 'IMMEDIATELY' ? 'moved now' : 'move at their next renewal'}.`);
    }
    onDone();
  }

  return (
    <section className="card" aria-labelledby="migrate-title">
      <h2 id="migrate-title">Move subscribers to v{latest.version}</h2>
      <FormSuccess message={message} />
      <FormError message={error} />
      {confirming ? (
        <ConfirmPanel
          title="Move subscribers"
          busy={state.fetching}
          onBack={() => setConfirming(false)}
          onConfirm={() => void confirm()}
          rows={[
            ['From', `v${versions.find((v) => v.id === fromId)?.version ?? '?'}`],
            ['To', `v${latest.version}`],
            ['When', effective === 'IMMEDIATELY' ? 'Now, with proration' : 'At each subscriber’s next renewal'],
          ]}
        />
      ) : (
        <div className="toolbar">
          <SelectField label="Subscribers of" value={fromId} options={older.map((v) => ({ value: v.id, label: `v${v.version}` }))} onValue={setFromId} />
          <SelectField
            label="When"
            value={effective}
            options={[
              { value: 'NEXT_RENEWAL', label: 'At their next renewal' },
              { value: 'IMMEDIATELY', label: 'Now' },
            ]}
            onValue={(v) => setEffective(v as MigrationTiming)}
          />
          <button type="button" onClick={() => setConfirming(true)}>
            Review the move
          </button>
        </div>
      )}
    </section>
  );
}

/** What a customer in a country pays: the regional price, else the default currency's. */
function PriceForCountry({ planCode }: { planCode: string }) {
  const client = useClient();
  const [cycle, setCycle] = useState<BillingCycle>('MONTHLY');
  const [country, setCountry] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [answer, setAnswer] = useState<string | null>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setAnswer(null);
    if (country.trim() && !/^[A-Za-z]{2}$/.test(country.trim())) return setError('An ISO 3166 code such as PL, or empty.');
    setError(undefined);
    const code = country.trim().toUpperCase() || null;
    const result = await client.query(PriceForDoc, { planCode, cycle, country: code }, { requestPolicy: 'network-only' }).toPromise();
    if (result.error) return setError(result.error.message);
    const price = result.data?.priceFor;
    const failure = failureOf(price, ['ResolvedPrice']);
    if (failure) return setError(failure.message);
    if (price?.__typename === 'ResolvedPrice') {
      setAnswer(
        `${formatMinor(price.amountMinor, price.currency)} ${CYCLE_LABEL[price.cycle].toLowerCase()}${
          price.regional ? ` (regional price${price.country ? ` for ${price.country}` : ''})` : ' (the default currency’s price)'
        }.`,
      );
    }
  }

  return (
    <section className="card" aria-labelledby="price-for-title">
      <h2 id="price-for-title">Price for a country</h2>
      <form onSubmit={(e) => void submit(e)} noValidate className="inline-form" aria-label="Price for a country">
        <SelectField label="Cycle" value={cycle} options={Object.entries(CYCLE_LABEL).map(([value, label]) => ({ value, label }))} onValue={(v) => setCycle(v as BillingCycle)} />
        <TextField label="Country" value={country} error={error} onValue={setCountry} hint="ISO 3166, e.g. PL; empty: no country." />
        <button type="submit">Show the price</button>
      </form>
      <FormSuccess message={answer} />
    </section>
  );
}
