import type { ReactNode } from 'react';
import type { BillingCycle, IntervalUnit, PricingPolicyKind, RolloverRule } from '../../gql/graphql';
import { CheckboxField, SelectField, TextAreaField, TextField, type FieldErrors } from '../../components/forms';
import { COST_FIELDS, CYCLE_LABEL, CYCLES, LIMIT_FIELDS, ROLLOVERS, type FeatureInfo, type VersionDraft } from './version';

const CYCLE_OPTIONS = CYCLES.map((c) => ({ value: c, label: CYCLE_LABEL[c] }));
const POLICY_OPTIONS = [
  { value: '', label: 'The global default policy' },
  { value: 'PASSTHROUGH', label: 'Passthrough' },
  { value: 'MULTIPLIER', label: 'Multiplier of the provider cost' },
  { value: 'PER_MODEL', label: 'Markup per model' },
  { value: 'FIXED_PER_CALL', label: 'Fixed price per call' },
];

/** Every field of a plan version; the parent owns the draft and validates it on submit. */
export function VersionEditor({
  draft,
  onChange,
  errors,
  features,
  footer,
}: {
  draft: VersionDraft;
  onChange: (draft: VersionDraft) => void;
  errors: FieldErrors;
  features: FeatureInfo[];
  footer: ReactNode;
}) {
  const set = <K extends keyof VersionDraft>(key: K, value: VersionDraft[K]) => onChange({ ...draft, [key]: value });
  const setLimit = (key: keyof VersionDraft['limits'], value: string) => set('limits', { ...draft.limits, [key]: value });

  return (
    <div className="version-editor">
      <fieldset>
        <legend>Prices</legend>
        <p className="hint">Amounts in the currency's units (19.00 USD); stored exactly in minor units.</p>
        {errors.prices ? <p className="field-error" role="alert">{errors.prices}</p> : null}
        {draft.prices.map((p, i) => {
          const update = (patch: Partial<typeof p>) => set('prices', draft.prices.map((x, j) => (j === i ? { ...x, ...patch } : x)));
          return (
            <div className="rule-row" key={i}>
              <SelectField label="Cycle" value={p.cycle} options={CYCLE_OPTIONS} onValue={(v) => update({ cycle: v as BillingCycle })} />
              <TextField label="Currency" value={p.currency} maxLength={3} onValue={(v) => update({ currency: v.toUpperCase() })} />
              <TextField label="Amount" inputMode="decimal" value={p.amount} error={errors[`price${i}`]} onValue={(v) => update({ amount: v })} />
              <button type="button" className="small" onClick={() => set('prices', draft.prices.filter((_, j) => j !== i))}>
                Remove price
              </button>
            </div>
          );
        })}
        <button type="button" className="small" onClick={() => set('prices', [...draft.prices, { cycle: 'ANNUAL', currency: draft.defaultCurrency || 'USD', amount: '' }])}>
          Add a price
        </button>
        <div className="rule-row">
          <TextField label="Default currency" value={draft.defaultCurrency} maxLength={3} error={errors.defaultCurrency} onValue={(v) => set('defaultCurrency', v.toUpperCase())} />
          <SelectField
            label="Custom interval unit"
            value={draft.customUnit}
            options={[{ value: '', label: 'No custom interval' }, { value: 'DAY', label: 'Days' }, { value: 'MONTH', label: 'Months' }]}
            onValue={(v) => set('customUnit', v as '' | IntervalUnit)}
          />
          <TextField label="Custom interval length" inputMode="numeric" value={draft.customCount} error={errors.customInterval} onValue={(v) => set('customCount', v)} />
        </div>
      </fieldset>

      <fieldset>
        <legend>Regional prices</legend>
        {draft.regionalPrices.map((p, i) => {
          const update = (patch: Partial<typeof p>) => set('regionalPrices', draft.regionalPrices.map((x, j) => (j === i ? { ...x, ...patch } : x)));
          return (
            <div className="rule-row" key={i}>
              <TextField label="Countries" value={p.countries} onValue={(v) => update({ countries: v })} hint="PL, DE" />
              <SelectField label="Cycle" value={p.cycle} options={CYCLE_OPTIONS} onValue={(v) => update({ cycle: v as BillingCycle })} />
              <TextField label="Currency" value={p.currency} maxLength={3} onValue={(v) => update({ currency: v.toUpperCase() })} />
              <TextField label="Amount" inputMode="decimal" value={p.amount} error={errors[`regional${i}`]} onValue={(v) => update({ amount: v })} />
              <button type="button" className="small" onClick={() => set('regionalPrices', draft.regionalPrices.filter((_, j) => j !== i))}>
                Remove
              </button>
            </div>
          );
        })}
        <button type="button" className="small" onClick={() => set('regionalPrices', [...draft.regionalPrices, { countries: '', cycle: 'MONTHLY', currency: 'EUR', amount: '' }])}>
          Add a regional price
        </button>
      </fieldset>

      <fieldset>
        <legend>Credits and trial</legend>
        <div className="form-grid">
          <TextField label="Credits per period" inputMode="numeric" value={draft.includedCredits} error={errors.includedCredits} onValue={(v) => set('includedCredits', v)} />
          <SelectField label="Rollover" value={draft.rollover} options={ROLLOVERS} onValue={(v) => set('rollover', v as RolloverRule)} />
          {draft.rollover === 'CAP' ? (
            <TextField label="Rollover cap (%)" inputMode="numeric" value={draft.rolloverCapPercent} error={errors.rolloverCapPercent} onValue={(v) => set('rolloverCapPercent', v)} />
          ) : null}
          <TextField label="Trial days" inputMode="numeric" value={draft.trialDays} error={errors.trialDays} onValue={(v) => set('trialDays', v)} />
          <TextField label="Seats" inputMode="numeric" value={draft.seats} error={errors.seats} onValue={(v) => set('seats', v)} hint="Empty: unlimited." />
          <TextField label="Badge" value={draft.badge} error={errors.badge} onValue={(v) => set('badge', v)} hint="Shown on the pricing page, e.g. Most popular." />
        </div>
      </fieldset>

      <fieldset>
        <legend>Limits</legend>
        <p className="hint">Empty: no limit.</p>
        <div className="form-grid">
          {LIMIT_FIELDS.map(([key, label]) => (
            <TextField key={key} label={label} inputMode="numeric" value={draft.limits[key]} error={errors[key]} onValue={(v) => setLimit(key, v)} />
          ))}
          {COST_FIELDS.map(([key, label]) => (
            <TextField key={key} label={label} inputMode="decimal" value={draft.limits[key]} error={errors[key]} onValue={(v) => setLimit(key, v)} />
          ))}
          <TextAreaField
            label="Allowed models"
            rows={2}
            value={draft.allowedModels}
            onValue={(v) => set('allowedModels', v)}
            hint="One name or pattern per line; empty allows every model."
          />
        </div>
      </fieldset>

      <fieldset>
        <legend>Features</legend>
        {features.length === 0 ? <p className="hint">No features in the catalog yet: add them below the plans.</p> : null}
        {features.map((f) => {
          const value = draft.features[f.key] ?? { included: false, enabled: false, limit: '' };
          const update = (patch: Partial<typeof value>) => set('features', { ...draft.features, [f.key]: { ...value, ...patch } });
          return (
            <div className="rule-row" key={f.key}>
              <CheckboxField label={`${f.name} (${f.kind.toLowerCase()})`} checked={value.included} onValue={(included) => update({ included })} />
              {value.included && f.kind === 'BOOLEAN' ? <CheckboxField label="Enabled" checked={value.enabled} onValue={(enabled) => update({ enabled })} /> : null}
              {value.included && f.kind !== 'BOOLEAN' ? (
                <TextField
                  label={`Limit${f.unit ? ` (${f.unit})` : ''}`}
                  inputMode="numeric"
                  value={value.limit}
                  error={errors[`feature_${f.key}`]}
                  onValue={(limit) => update({ limit })}
                  hint="Empty: unlimited."
                />
              ) : null}
            </div>
          );
        })}
      </fieldset>

      <fieldset>
        <legend>Pricing of usage for subscribers</legend>
        <div className="form-grid">
          <SelectField label="Policy" value={draft.policyKind} options={POLICY_OPTIONS} onValue={(v) => set('policyKind', v as '' | PricingPolicyKind)} />
          {draft.policyKind === 'MULTIPLIER' ? (
            <TextField label="Multiplier" inputMode="decimal" value={draft.policyMultiplier} error={errors.policyMultiplier} onValue={(v) => set('policyMultiplier', v)} />
          ) : null}
          {draft.policyKind === 'FIXED_PER_CALL' ? (
            <TextField label="USD per call" inputMode="decimal" value={draft.policyFixed} error={errors.policyFixed} onValue={(v) => set('policyFixed', v)} />
          ) : null}
          {draft.policyKind === 'PER_MODEL' ? (
            <TextField label="Default markup" inputMode="decimal" value={draft.policyMarkup} error={errors.policyMarkup} onValue={(v) => set('policyMarkup', v)} />
          ) : null}
          {draft.policyKind ? (
            <TextField label="Platform fee per call (USD)" inputMode="decimal" value={draft.policyFee} error={errors.policyFee} onValue={(v) => set('policyFee', v)} />
          ) : null}
        </div>
      </fieldset>

      <fieldset>
        <legend>Billing integrations</legend>
        <TextField label="Lago plan code" value={draft.lagoPlanCode} error={errors.lagoPlanCode} onValue={(v) => set('lagoPlanCode', v)} />
        {draft.stripePriceIds.map((s, i) => {
          const update = (patch: Partial<typeof s>) => set('stripePriceIds', draft.stripePriceIds.map((x, j) => (j === i ? { ...x, ...patch } : x)));
          return (
            <div className="rule-row" key={i}>
              <SelectField label="Cycle" value={s.cycle} options={CYCLE_OPTIONS} onValue={(v) => update({ cycle: v as BillingCycle })} />
              <TextField label="Currency" value={s.currency} maxLength={3} onValue={(v) => update({ currency: v.toUpperCase() })} />
              <TextField label="Stripe price id" value={s.priceId} error={errors[`stripe${i}`]} onValue={(v) => update({ priceId: v })} />
              <button type="button" className="small" onClick={() => set('stripePriceIds', draft.stripePriceIds.filter((_, j) => j !== i))}>
                Remove
              </button>
            </div>
          );
        })}
        <button type="button" className="small" onClick={() => set('stripePriceIds', [...draft.stripePriceIds, { cycle: 'MONTHLY', currency: draft.defaultCurrency || 'USD', priceId: '' }])}>
          Add a Stripe price
        </button>
      </fieldset>
      {footer}
    </div>
  );
}
