import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';
import { graphql } from '../gql';
import type { ProvidersQuery } from '../gql/graphql';
import { usePermissions } from '../auth/session';
import { Empty, QueryState } from '../components/states';
import { applyFailure, CheckboxField, failureOf, FormError, TextAreaField, TextField, type FieldErrors } from '../components/forms';
import { formatDateTime } from '../lib/format';

const ProvidersDoc = graphql(`
  query Providers {
    providers {
      id
      name
      baseUrl
      apiKeyEnv
      hasApiKey
      models
      modelMap { model upstreamModel }
      priority
      timeoutSeconds
      enabled
      updatedAt
      updatedBy
    }
  }
`);

const UpsertProviderDoc = graphql(`
  mutation UpsertProvider($input: UpsertProviderInput!) {
    upsertProvider(input: $input) {
      __typename
      ... on Provider { id name }
      ... on ValidationFailed { field message }
    }
  }
`);

type Provider = ProvidersQuery['providers'][number];

export function ProvidersScreen() {
  const [result, reexecute] = useQuery({ query: ProvidersDoc });
  const { canWrite } = usePermissions();
  const [editing, setEditing] = useState<Provider | 'new' | null>(null);
  const refresh = () => reexecute({ requestPolicy: 'network-only' });
  return (
    <section>
      <h1>Providers</h1>
      <p className="hint">The OpenAI-compatible upstreams the gateway routes calls to, in the order it tries them.</p>
      {canWrite ? (
        <button type="button" className="primary" onClick={() => setEditing('new')}>
          Add a provider
        </button>
      ) : null}
      {editing ? (
        <ProviderForm
          key={editing === 'new' ? 'new' : editing.id}
          base={editing === 'new' ? null : editing}
          onCancel={() => setEditing(null)}
          onDone={() => {
            setEditing(null);
            refresh();
          }}
        />
      ) : null}
      <QueryState result={result} what="providers">
        {(data) =>
          data.providers.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Base URL</th>
                  <th scope="col">Models</th>
                  <th scope="col">API key</th>
                  <th scope="col" className="num">Priority</th>
                  <th scope="col">State</th>
                  <th scope="col">Changed</th>
                  {canWrite ? <th scope="col"><span className="sr-only">Actions</span></th> : null}
                </tr>
              </thead>
              <tbody>
                {data.providers.map((p) => (
                  <tr key={p.id}>
                    <td>{p.name}</td>
                    <td><code>{p.baseUrl}</code></td>
                    <td>
                      {p.models.join(', ')}
                      {p.modelMap.length ? <small className="muted"> · {p.modelMap.map((m) => `${m.model}→${m.upstreamModel}`).join(', ')}</small> : null}
                    </td>
                    <td>{p.hasApiKey ? 'Stored (encrypted)' : p.apiKeyEnv ? `From $${p.apiKeyEnv}` : 'None'}</td>
                    <td className="num">{p.priority}</td>
                    <td>{p.enabled ? 'Enabled' : 'Disabled'} · {p.timeoutSeconds} s timeout</td>
                    <td>{formatDateTime(p.updatedAt)} by {p.updatedBy}</td>
                    {canWrite ? (
                      <td>
                        <button type="button" className="small" onClick={() => setEditing(p)}>
                          Edit…
                        </button>
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>No providers: the gateway has nowhere to send calls yet.</Empty>
          )
        }
      </QueryState>
    </section>
  );
}

function ProviderForm({ base, onDone, onCancel }: { base: Provider | null; onDone: () => void; onCancel: () => void }) {
  const [values, setValues] = useState({
    name: base?.name ?? '',
    baseUrl: base?.baseUrl ?? 'https://api.openai.com/v1',
    models: base?.models.join('\n') ?? '',
    modelMap: base?.modelMap.map((m) => `${m.model}=${m.upstreamModel}`).join('\n') ?? '',
    apiKeyEnv: '',
    apiKey: '',
    priority: String(base?.priority ?? 100),
    timeoutSeconds: String(base?.timeoutSeconds ?? 60),
  });
  const [enabled, setEnabled] = useState(base?.enabled ?? true);
  const [clearApiKey, setClearApiKey] = useState(false);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [state, upsert] = useMutation(UpsertProviderDoc);
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!/^[a-z0-9._-]+$/.test(values.name.trim())) found.name = "Lowercase letters, digits, '.', '_' and '-'.";
    try {
      const url = new URL(values.baseUrl.trim());
      if (!['http:', 'https:'].includes(url.protocol)) found.baseUrl = 'An http(s) URL.';
    } catch {
      found.baseUrl = 'A full URL such as https://api.openai.com/v1.';
    }
    const models = values.models.split(/[\n,]/).map((m) => m.trim()).filter(Boolean);
    if (!models.length) found.models = 'At least one model name or pattern (gpt-*).';
    const mapLines = values.modelMap.split('\n').map((l) => l.trim()).filter(Boolean);
    const modelMap = mapLines.map((l) => {
      const [model = '', upstream = ''] = l.split('=').map((s) => s.trim());
      return { model, upstreamModel: upstream };
    });
    if (modelMap.some((m) => !m.model || !m.upstreamModel)) found.modelMap = 'One mapping per line: name=upstream-name.';
    if (!/^-?\d+$/.test(values.priority.trim())) found.priority = 'A whole number; lower is tried first.';
    const timeout = Number(values.timeoutSeconds);
    if (!Number.isFinite(timeout) || timeout <= 0) found.timeoutSeconds = 'Seconds, more than zero.';
    if (values.apiKey.trim() && values.apiKeyEnv.trim()) found.apiKey = 'Give the key or the variable, not both.';
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length) return;
    const result = await upsert({
      input: {
        name: values.name.trim(),
        baseUrl: values.baseUrl.trim(),
        models,
        modelMap,
        apiKeyEnv: values.apiKeyEnv.trim() || null,
        apiKey: values.apiKey.trim() || null,
        clearApiKey,
        priority: Number(values.priority),
        timeoutSeconds: timeout,
        enabled,
      },
    });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.upsertProvider, ['Provider']);
    if (failure) {
      const applied = applyFailure(failure, Object.keys(values));
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    onDone();
  }

  return (
    <form onSubmit={(e) => void submit(e)} noValidate className="form-grid boxed" aria-label="Provider">
      <h3>{base ? `Edit ${base.name}` : 'Add a provider'}</h3>
      <FormError message={formError} />
      <TextField label="Name" value={values.name} error={errors.name} onValue={set('name')} readOnly={Boolean(base)} />
      <TextField label="Base URL" value={values.baseUrl} error={errors.baseUrl} onValue={set('baseUrl')} />
      <TextAreaField label="Models served" rows={3} value={values.models} error={errors.models} onValue={set('models')} hint="One name or pattern per line, e.g. gpt-*." />
      <TextAreaField label="Model names upstream" rows={2} value={values.modelMap} error={errors.modelMap} onValue={set('modelMap')} hint="Optional, one per line: name=upstream-name." />
      <TextField label="API key" type="password" autoComplete="off" value={values.apiKey} error={errors.apiKey} onValue={set('apiKey')} hint={base?.hasApiKey ? 'A key is stored; empty keeps it.' : 'Stored encrypted; never shown again.'} />
      <TextField label="…or read it from the environment variable" value={values.apiKeyEnv} error={errors.apiKeyEnv} onValue={set('apiKeyEnv')} />
      <CheckboxField label="Remove the stored key or variable (the upstream needs none)" checked={clearApiKey} onValue={setClearApiKey} />
      <TextField label="Priority" inputMode="numeric" value={values.priority} error={errors.priority} onValue={set('priority')} hint="Lower is tried first." />
      <TextField label="Timeout (seconds)" inputMode="decimal" value={values.timeoutSeconds} error={errors.timeoutSeconds} onValue={set('timeoutSeconds')} />
      <CheckboxField label="Enabled" checked={enabled} onValue={setEnabled} />
      <div className="actions">
        <button type="submit" className="primary" disabled={state.fetching}>
          Save provider
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
