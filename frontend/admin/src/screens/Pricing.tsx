import { useCallback, useState, type FormEvent } from 'react';
import { useSearchParams } from 'react-router';
import { useMutation, useQuery } from 'urql';
import { graphql } from '../gql';
import type { ModelPricesQuery } from '../gql/graphql';
import { usePermissions } from '../auth/session';
import { useLiveRefresh } from '../live/live';
import { PRICING_PUBLISHED } from '../live/subscriptions';
import { Empty, QueryState } from '../components/states';
import { applyFailure, CheckboxField, failureOf, FormError, FormSuccess, TextField, type FieldErrors } from '../components/forms';
import { formatCredits, formatDateTime, formatDecimalUsd, formatMicrosUsd, fromLocalInput, isDecimal, viewerTimeZone } from '../lib/format';
import { PolicyEditor } from './pricing/PolicyEditor';

const PricesDoc = graphql(`
  query ModelPrices($history: Boolean!, $model: String, $after: String) {
    modelPrices(first: 200, includeHistory: $history, model: $model, after: $after) {
      nodes {
        id
        provider
        model
        aliases
        inputPerMillion
        outputPerMillion
        cachedInputPerMillion
        perImage
        perRequest
        effectiveFrom
      }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

const UpsertPriceDoc = graphql(`
  mutation UpsertModelPrice($input: UpsertModelPriceInput!) {
    upsertModelPrice(input: $input) {
      __typename
      ... on ModelPrice { id model effectiveFrom }
      ... on ValidationFailed { field message }
    }
  }
`);

const QuoteDoc = graphql(`
  query QuoteCall($model: String!, $inputTokens: Int!, $outputTokens: Int!, $cachedInputTokens: Int!, $accountExternalId: String) {
    quoteCall(model: $model, inputTokens: $inputTokens, outputTokens: $outputTokens, cachedInputTokens: $cachedInputTokens, accountExternalId: $accountExternalId) {
      __typename
      ... on Quote { costMicros chargeMicros credits policyKind policyScope priceEffectiveFrom price { provider model } }
      ... on UnknownModel { model message }
      ... on AccountNotFound { externalId message }
      ... on ValidationFailed { field message }
    }
  }
`);

type PriceRow = ModelPricesQuery['modelPrices']['nodes'][number];

export function PricingScreen() {
  const [params] = useSearchParams();
  const account = params.get('account');
  return (
    <section>
      <h1>Models & pricing</h1>
      <Catalog />
      <QuoteCalculator initialAccount={account ?? ''} />
      <PolicyEditor initialAccount={account} />
    </section>
  );
}

function Catalog() {
  const [history, setHistory] = useState(false);
  const [filter, setFilter] = useState('');
  const [result, reexecute] = useQuery({ query: PricesDoc, variables: { history, model: filter.trim() || null, after: null } });
  const refresh = useCallback(() => reexecute({ requestPolicy: 'network-only' }), [reexecute]);
  useLiveRefresh(PRICING_PUBLISHED, {}, refresh);
  const { canWrite } = usePermissions();
  const [editing, setEditing] = useState<PriceRow | 'new' | null>(null);

  return (
    <section className="card" aria-labelledby="catalog-title">
      <h2 id="catalog-title">Model price catalog</h2>
      <p className="hint">Provider prices in USD: per 1M tokens, per image and per call. A new version takes effect at its start.</p>
      <div className="toolbar">
        <label>
          Model <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="name or alias" />
        </label>
        <CheckboxField label="Show every version" checked={history} onValue={setHistory} />
        {canWrite ? (
          <button type="button" className="primary" onClick={() => setEditing('new')}>
            Add a model price
          </button>
        ) : null}
      </div>
      {editing ? (
        <PriceForm
          base={editing === 'new' ? null : editing}
          onCancel={() => setEditing(null)}
          onDone={() => {
            setEditing(null);
            refresh();
          }}
        />
      ) : null}
      <QueryState result={result} what="the price catalog">
        {(data) =>
          data.modelPrices.nodes.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">Model</th>
                  <th scope="col">Provider</th>
                  <th scope="col" className="num">Input / 1M</th>
                  <th scope="col" className="num">Cached input / 1M</th>
                  <th scope="col" className="num">Output / 1M</th>
                  <th scope="col" className="num">Per image</th>
                  <th scope="col" className="num">Per call</th>
                  <th scope="col">In force from</th>
                  {canWrite ? <th scope="col"><span className="sr-only">Actions</span></th> : null}
                </tr>
              </thead>
              <tbody>
                {data.modelPrices.nodes.map((p) => (
                  <tr key={p.id}>
                    <td>
                      {p.model}
                      {p.aliases.length ? <small className="muted"> aka {p.aliases.join(', ')}</small> : null}
                    </td>
                    <td>{p.provider}</td>
                    <td className="num">{formatDecimalUsd(p.inputPerMillion)}</td>
                    <td className="num">{p.cachedInputPerMillion ? formatDecimalUsd(p.cachedInputPerMillion) : 'as input'}</td>
                    <td className="num">{formatDecimalUsd(p.outputPerMillion)}</td>
                    <td className="num">{formatDecimalUsd(p.perImage)}</td>
                    <td className="num">{formatDecimalUsd(p.perRequest)}</td>
                    <td>{formatDateTime(p.effectiveFrom)}</td>
                    {canWrite ? (
                      <td>
                        <button type="button" className="small" onClick={() => setEditing(p)}>
                          New version…
                        </button>
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>{filter ? `No price for “${filter}”.` : 'The catalog is empty: add a model price, or load one with `tollgate catalog load`.'}</Empty>
          )
        }
      </QueryState>
    </section>
  );
}

function PriceForm({ base, onDone, onCancel }: { base: PriceRow | null; onDone: () => void; onCancel: () => void }) {
  const [values, setValues] = useState({
    provider: base?.provider ?? '',
    model: base?.model ?? '',
    aliases: base?.aliases.join(', ') ?? '',
    inputPerMillion: base?.inputPerMillion ?? '',
    outputPerMillion: base?.outputPerMillion ?? '',
    cachedInputPerMillion: base?.cachedInputPerMillion ?? '',
    perImage: base?.perImage ?? '0',
    perRequest: base?.perRequest ?? '0',
    effectiveFrom: '',
  });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [state, upsert] = useMutation(UpsertPriceDoc);
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!values.provider.trim()) found.provider = 'Which provider bills this model (e.g. openai).';
    if (!values.model.trim()) found.model = 'The model name callers use.';
    for (const k of ['inputPerMillion', 'outputPerMillion', 'perImage', 'perRequest'] as const) {
      if (!isDecimal(values[k])) found[k] = 'USD as a plain number, e.g. 2.50.';
    }
    if (values.cachedInputPerMillion.trim() && !isDecimal(values.cachedInputPerMillion)) found.cachedInputPerMillion = 'USD, or empty for the input price.';
    const effectiveFrom = values.effectiveFrom ? fromLocalInput(values.effectiveFrom) : null;
    if (values.effectiveFrom && !effectiveFrom) found.effectiveFrom = 'Not a valid date and time.';
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length) return;
    const aliases = values.aliases.split(',').map((a) => a.trim()).filter(Boolean);
    const result = await upsert({
      input: {
        provider: values.provider.trim(),
        model: values.model.trim(),
        inputPerMillion: values.inputPerMillion.trim(),
        outputPerMillion: values.outputPerMillion.trim(),
        cachedInputPerMillion: values.cachedInputPerMillion.trim() || null,
        perImage: values.perImage.trim(),
        perRequest: values.perRequest.trim(),
        aliases,
        effectiveFrom,
      },
    });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.upsertModelPrice, ['ModelPrice']);
    if (failure) {
      const applied = applyFailure(failure, Object.keys(values));
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    onDone();
  }

  return (
    <form onSubmit={(e) => void submit(e)} noValidate className="form-grid boxed" aria-label="Model price">
      <h3>{base ? `New price version of ${base.model}` : 'Add a model price'}</h3>
      <FormError message={formError} />
      <TextField label="Provider" value={values.provider} error={errors.provider} onValue={set('provider')} />
      <TextField label="Model" value={values.model} error={errors.model} onValue={set('model')} readOnly={Boolean(base)} />
      <TextField label="Aliases" value={values.aliases} error={errors.aliases} onValue={set('aliases')} hint="Comma-separated other names of this model." />
      <TextField label="Input, USD per 1M tokens" inputMode="decimal" value={values.inputPerMillion} error={errors.inputPerMillion} onValue={set('inputPerMillion')} />
      <TextField label="Output, USD per 1M tokens" inputMode="decimal" value={values.outputPerMillion} error={errors.outputPerMillion} onValue={set('outputPerMillion')} />
      <TextField label="Cached input, USD per 1M tokens" inputMode="decimal" value={values.cachedInputPerMillion} error={errors.cachedInputPerMillion} onValue={set('cachedInputPerMillion')} hint="Empty: the input price." />
      <TextField label="USD per image" inputMode="decimal" value={values.perImage} error={errors.perImage} onValue={set('perImage')} />
      <TextField label="USD per call" inputMode="decimal" value={values.perRequest} error={errors.perRequest} onValue={set('perRequest')} />
      <TextField
        label="In force from"
        type="datetime-local"
        value={values.effectiveFrom}
        error={errors.effectiveFrom}
        onValue={set('effectiveFrom')}
        hint={`Empty: now. Your time zone: ${viewerTimeZone}. A version with the same start is replaced.`}
      />
      <div className="actions">
        <button type="submit" className="primary" disabled={state.fetching}>
          Save price
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function QuoteCalculator({ initialAccount }: { initialAccount: string }) {
  const [values, setValues] = useState({ model: '', inputTokens: '1000', outputTokens: '1000', cachedInputTokens: '0', accountExternalId: initialAccount });
  const [asked, setAsked] = useState<typeof values | null>(null);
  const [errors, setErrors] = useState<FieldErrors>({});
  const set = (k: keyof typeof values) => (v: string) => setValues((s) => ({ ...s, [k]: v }));
  const [result] = useQuery({
    query: QuoteDoc,
    pause: asked === null,
    requestPolicy: 'network-only',
    variables: {
      model: asked?.model ?? '',
      inputTokens: Number(asked?.inputTokens ?? 0),
      outputTokens: Number(asked?.outputTokens ?? 0),
      cachedInputTokens: Number(asked?.cachedInputTokens ?? 0),
      accountExternalId: asked?.accountExternalId.trim() || null,
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!values.model.trim()) found.model = 'Which model to price.';
    for (const k of ['inputTokens', 'outputTokens', 'cachedInputTokens'] as const) {
      if (!/^\d+$/.test(values[k].trim()) || Number(values[k]) > 2147483647) found[k] = 'A whole number of tokens.';
    }
    setErrors(found);
    if (Object.keys(found).length === 0) setAsked({ ...values, model: values.model.trim() });
  }

  const quote = result.data?.quoteCall;
  const failure = failureOf(quote, ['Quote']);
  const applied = failure ? applyFailure(failure, Object.keys(values)) : null;
  return (
    <section className="card" aria-labelledby="quote-title">
      <h2 id="quote-title">Price a call</h2>
      <form onSubmit={submit} noValidate className="form-grid" aria-label="Price a call">
        <TextField label="Model" value={values.model} error={errors.model ?? applied?.fieldErrors.model} onValue={set('model')} />
        <TextField label="Input tokens" inputMode="numeric" value={values.inputTokens} error={errors.inputTokens} onValue={set('inputTokens')} />
        <TextField label="Output tokens" inputMode="numeric" value={values.outputTokens} error={errors.outputTokens} onValue={set('outputTokens')} />
        <TextField label="Cached input tokens" inputMode="numeric" value={values.cachedInputTokens} error={errors.cachedInputTokens} onValue={set('cachedInputTokens')} />
        <TextField
          label="Account (optional)"
          value={values.accountExternalId}
          error={applied?.fieldErrors.accountExternalId}
          onValue={set('accountExternalId')}
          hint="Empty: the global policy."
        />
        <div className="actions">
          <button type="submit" className="primary">
            Price it
          </button>
        </div>
      </form>
      {result.fetching ? <p role="status">Pricing…</p> : null}
      {result.error ? <FormError message={result.error.message} /> : null}
      {applied?.formError ? <FormError message={applied.formError} /> : null}
      {quote?.__typename === 'Quote' ? (
        <FormSuccess
          message={`Provider cost ${formatMicrosUsd(quote.costMicros)}, charged ${formatMicrosUsd(quote.chargeMicros)} = ${formatCredits(
            quote.credits,
          )} (${quote.policyKind.toLowerCase().replace(/_/g, ' ')} policy, ${quote.policyScope.toLowerCase().replace('_', '-')}; ${quote.price.provider} price from ${formatDateTime(
            quote.priceEffectiveFrom,
          )}).`}
        />
      ) : null}
    </section>
  );
}
