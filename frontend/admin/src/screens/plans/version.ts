/** A plan version as a form draft (strings, as typed), its validation into the API's
 * PlanVersionInput, and its summary as labelled rows (shown, and compared between versions). */
import type {
  BillingCycle,
  FeatureKind,
  IntervalUnit,
  PlanVersionFieldsFragment,
  PlanVersionInput,
  PricingPolicyKind,
  RolloverRule,
} from '../../gql/graphql';
import type { FieldErrors } from '../../components/forms';
import { formatCredits, formatInteger, formatMicrosUsd, microsToUsdInput, parseUsdToMicros, parseWhole, toBig, type BigIntish } from '../../lib/format';
import { formatMinor, isCurrencyCode, majorToMinor, minorToMajor } from '../../lib/money';

export const CYCLES: BillingCycle[] = ['MONTHLY', 'ANNUAL', 'CUSTOM'];
export const CYCLE_LABEL: Record<BillingCycle, string> = { MONTHLY: 'Monthly', ANNUAL: 'Annual', CUSTOM: 'Custom interval' };
export const ROLLOVERS: { value: RolloverRule; label: string }[] = [
  { value: 'NONE', label: 'None: unused credits expire at the period end' },
  { value: 'CAP', label: 'Up to a cap (% of the allocation)' },
  { value: 'UNLIMITED', label: 'All unused credits roll over' },
];

export const LIMIT_FIELDS = [
  ['tokensPerDay', 'Tokens per day'],
  ['tokensPerMonth', 'Tokens per month'],
  ['callsPerDay', 'Calls per day'],
  ['callsPerMonth', 'Calls per month'],
  ['maxTokensPerRequest', 'Max tokens per request'],
  ['requestsPerMinute', 'Requests per minute'],
  ['lowBalanceCredits', 'Low-balance alert (credits)'],
] as const;
export const COST_FIELDS = [
  ['costCapPerDayMicros', 'Provider cost cap per day (USD)'],
  ['costCapPerMonthMicros', 'Provider cost cap per month (USD)'],
] as const;

type LimitKey = (typeof LIMIT_FIELDS)[number][0] | (typeof COST_FIELDS)[number][0];

export interface PriceDraft {
  cycle: BillingCycle;
  currency: string;
  amount: string;
}
export interface RegionalDraft extends PriceDraft {
  countries: string;
}
export interface StripeDraft {
  cycle: BillingCycle;
  currency: string;
  priceId: string;
}
export interface FeatureDraft {
  enabled: boolean;
  limit: string;
  included: boolean;
}

export interface VersionDraft {
  defaultCurrency: string;
  prices: PriceDraft[];
  regionalPrices: RegionalDraft[];
  customUnit: '' | IntervalUnit;
  customCount: string;
  includedCredits: string;
  rollover: RolloverRule;
  rolloverCapPercent: string;
  limits: Record<LimitKey, string>;
  allowedModels: string;
  features: Record<string, FeatureDraft>;
  trialDays: string;
  seats: string;
  badge: string;
  lagoPlanCode: string;
  stripePriceIds: StripeDraft[];
  policyKind: '' | PricingPolicyKind;
  policyMultiplier: string;
  policyFixed: string;
  policyFee: string;
  policyMarkup: string;
}

export interface FeatureInfo {
  key: string;
  name: string;
  kind: FeatureKind;
  unit?: string | null;
}

function text(value: BigIntish | null | undefined): string {
  return value === null || value === undefined ? '' : String(value);
}

export function emptyDraft(): VersionDraft {
  return {
    defaultCurrency: 'USD',
    prices: [{ cycle: 'MONTHLY', currency: 'USD', amount: '' }],
    regionalPrices: [],
    customUnit: '',
    customCount: '',
    includedCredits: '0',
    rollover: 'NONE',
    rolloverCapPercent: '',
    limits: {
      tokensPerDay: '',
      tokensPerMonth: '',
      callsPerDay: '',
      callsPerMonth: '',
      maxTokensPerRequest: '',
      requestsPerMinute: '',
      lowBalanceCredits: '',
      costCapPerDayMicros: '',
      costCapPerMonthMicros: '',
    },
    allowedModels: '',
    features: {},
    trialDays: '0',
    seats: '',
    badge: '',
    lagoPlanCode: '',
    stripePriceIds: [],
    policyKind: '',
    policyMultiplier: '',
    policyFixed: '',
    policyFee: '',
    policyMarkup: '',
  };
}

export function draftOf(v: PlanVersionFieldsFragment): VersionDraft {
  const l = v.limits;
  return {
    defaultCurrency: v.defaultCurrency,
    prices: v.prices.map((p) => ({ cycle: p.cycle, currency: p.currency, amount: minorToMajor(p.amountMinor, p.currency) })),
    regionalPrices: v.regionalPrices.map((p) => ({
      countries: p.countries.join(', '),
      cycle: p.cycle,
      currency: p.currency,
      amount: minorToMajor(p.amountMinor, p.currency),
    })),
    customUnit: v.customInterval?.unit ?? '',
    customCount: text(v.customInterval?.count),
    includedCredits: text(v.includedCredits),
    rollover: v.rollover,
    rolloverCapPercent: text(v.rolloverCapPercent),
    limits: {
      tokensPerDay: text(l.tokensPerDay),
      tokensPerMonth: text(l.tokensPerMonth),
      callsPerDay: text(l.callsPerDay),
      callsPerMonth: text(l.callsPerMonth),
      maxTokensPerRequest: text(l.maxTokensPerRequest),
      requestsPerMinute: text(l.requestsPerMinute),
      lowBalanceCredits: text(l.lowBalanceCredits),
      costCapPerDayMicros: l.costCapPerDayMicros == null ? '' : microsToUsdInput(l.costCapPerDayMicros),
      costCapPerMonthMicros: l.costCapPerMonthMicros == null ? '' : microsToUsdInput(l.costCapPerMonthMicros),
    },
    allowedModels: l.allowedModels ? l.allowedModels.join('\n') : '',
    features: Object.fromEntries(
      v.featureValues.map((f) => [f.featureKey, { included: true, enabled: f.enabled ?? false, limit: text(f.limit) }]),
    ),
    trialDays: String(v.trialDays),
    seats: text(v.seats),
    badge: v.badge ?? '',
    lagoPlanCode: v.lagoPlanCode ?? '',
    stripePriceIds: v.stripePriceIds.map((s) => ({ cycle: s.cycle, currency: s.currency, priceId: s.priceId })),
    policyKind: v.pricingPolicy?.kind ?? '',
    policyMultiplier: v.pricingPolicy?.multiplier ?? '',
    policyFixed: v.pricingPolicy?.fixedPerCallUsd ?? '',
    policyFee: v.pricingPolicy?.platformFeeUsd ?? '',
    policyMarkup: v.pricingPolicy?.defaultMarkup ?? '',
  };
}

const DECIMAL = /^\d+(\.\d+)?$/;

/** The API input, or the errors of each field (keyed like the form's fields). */
export function toInput(d: VersionDraft, features: FeatureInfo[]): { input: PlanVersionInput | null; errors: FieldErrors } {
  const errors: FieldErrors = {};
  if (!isCurrencyCode(d.defaultCurrency)) errors.defaultCurrency = 'An ISO 4217 code such as USD or EUR.';
  const prices = d.prices.map((p, i) => {
    const currency = p.currency.trim().toUpperCase();
    if (!isCurrencyCode(currency)) errors[`price${i}`] = 'An ISO 4217 currency code.';
    const minor = majorToMinor(p.amount, currency || 'USD');
    if (minor === null) errors[`price${i}`] = `An amount such as 19.00 in ${currency || 'the currency'}.`;
    return { cycle: p.cycle, currency, amountMinor: (minor ?? 0n).toString() };
  });
  if (!prices.length) errors.prices = 'Give at least one price (0 for a free plan).';
  const seen = new Set<string>();
  prices.forEach((p, i) => {
    const key = `${p.cycle}:${p.currency}`;
    if (seen.has(key)) errors[`price${i}`] = 'Only one price per cycle and currency.';
    seen.add(key);
  });
  const regionalPrices = d.regionalPrices.map((p, i) => {
    const currency = p.currency.trim().toUpperCase();
    const countries = p.countries.split(/[\s,]+/).map((c) => c.trim().toUpperCase()).filter(Boolean);
    if (!countries.length || countries.some((c) => !/^[A-Z]{2}$/.test(c))) errors[`regional${i}`] = 'Countries as ISO 3166 codes: PL, DE.';
    if (!isCurrencyCode(currency)) errors[`regional${i}`] = 'An ISO 4217 currency code.';
    const minor = majorToMinor(p.amount, currency || 'USD');
    if (minor === null) errors[`regional${i}`] = `An amount such as 79.00 in ${currency || 'the currency'}.`;
    return { countries, cycle: p.cycle, currency, amountMinor: (minor ?? 0n).toString() };
  });
  const usesCustom = prices.some((p) => p.cycle === 'CUSTOM');
  let customInterval: PlanVersionInput['customInterval'] = null;
  if (usesCustom || d.customUnit) {
    const count = Number(d.customCount);
    if (!d.customUnit || !Number.isInteger(count) || count < 1) errors.customInterval = 'A custom cycle needs a unit and a whole number of them.';
    else customInterval = { unit: d.customUnit, count };
  }
  const included = parseWhole(d.includedCredits || '0');
  if (included === null) errors.includedCredits = 'A whole number of credits per period.';
  let rolloverCapPercent: number | null = null;
  if (d.rollover === 'CAP') {
    const cap = Number(d.rolloverCapPercent);
    if (!Number.isInteger(cap) || cap < 1 || cap > 100) errors.rolloverCapPercent = 'A whole percent from 1 to 100.';
    else rolloverCapPercent = cap;
  }
  const limits: Record<string, unknown> = {};
  for (const [key] of LIMIT_FIELDS) {
    const raw = d.limits[key].trim();
    if (!raw) {
      limits[key] = null;
      continue;
    }
    const n = parseWhole(raw);
    if (n === null || n <= 0n) errors[key] = 'A whole number above zero, or empty for no limit.';
    else limits[key] = key === 'requestsPerMinute' ? Number(n) : n.toString();
  }
  for (const [key] of COST_FIELDS) {
    const raw = d.limits[key].trim();
    if (!raw) {
      limits[key] = null;
      continue;
    }
    const micros = parseUsdToMicros(raw);
    if (micros === null || micros <= 0n) errors[key] = 'USD such as 25.00, or empty.';
    else limits[key] = micros.toString();
  }
  const models = d.allowedModels.split(/[\n,]/).map((m) => m.trim()).filter(Boolean);
  limits.allowedModels = models.length ? models : null;
  const featureValues = features
    .filter((f) => d.features[f.key]?.included)
    .map((f) => {
      const value = d.features[f.key] as FeatureDraft;
      if (f.kind === 'BOOLEAN') return { featureKey: f.key, enabled: value.enabled, limit: null };
      const n = value.limit.trim() ? parseWhole(value.limit) : null;
      if (value.limit.trim() && n === null) errors[`feature_${f.key}`] = 'A whole number, or empty for unlimited.';
      return { featureKey: f.key, enabled: null, limit: n === null ? null : n.toString() };
    });
  const trial = Number(d.trialDays || '0');
  if (!Number.isInteger(trial) || trial < 0) errors.trialDays = 'Whole days, 0 for no trial.';
  let seats: number | null = null;
  if (d.seats.trim()) {
    const n = Number(d.seats);
    if (!Number.isInteger(n) || n < 1) errors.seats = 'A whole number of seats, or empty.';
    else seats = n;
  }
  const stripePriceIds = d.stripePriceIds.map((s, i) => {
    if (!s.priceId.trim()) errors[`stripe${i}`] = 'The Stripe price id (price_…).';
    return { cycle: s.cycle, currency: s.currency.trim().toUpperCase(), priceId: s.priceId.trim() };
  });
  let pricingPolicy: PlanVersionInput['pricingPolicy'] = null;
  if (d.policyKind) {
    if (d.policyKind === 'MULTIPLIER' && !DECIMAL.test(d.policyMultiplier.trim())) errors.policyMultiplier = 'A multiplier such as 1.5.';
    if (d.policyKind === 'FIXED_PER_CALL' && !DECIMAL.test(d.policyFixed.trim())) errors.policyFixed = 'USD per call such as 0.01.';
    if (d.policyKind === 'PER_MODEL' && d.policyMarkup.trim() && !DECIMAL.test(d.policyMarkup.trim())) errors.policyMarkup = 'A markup such as 1.2.';
    if (d.policyFee.trim() && !DECIMAL.test(d.policyFee.trim())) errors.policyFee = 'USD per call, or empty.';
    pricingPolicy = {
      kind: d.policyKind,
      multiplier: d.policyKind === 'MULTIPLIER' ? d.policyMultiplier.trim() : null,
      fixedPerCallUsd: d.policyKind === 'FIXED_PER_CALL' ? d.policyFixed.trim() : null,
      defaultMarkup: d.policyKind === 'PER_MODEL' && d.policyMarkup.trim() ? d.policyMarkup.trim() : null,
      platformFeeUsd: d.policyFee.trim() || null,
    };
  }
  if (Object.keys(errors).length) return { input: null, errors };
  return {
    errors,
    input: {
      defaultCurrency: d.defaultCurrency.trim().toUpperCase(),
      prices,
      regionalPrices,
      customInterval,
      includedCredits: (included ?? 0n).toString(),
      rollover: d.rollover,
      rolloverCapPercent,
      limits: limits as PlanVersionInput['limits'],
      featureValues,
      trialDays: trial,
      seats,
      pricingPolicy,
      badge: d.badge.trim() || null,
      lagoPlanCode: d.lagoPlanCode.trim() || null,
      stripePriceIds,
    },
  };
}

function limitText(value: BigIntish | null | undefined, unit: string): string {
  return value === null || value === undefined ? 'No limit' : `${formatInteger(value)} ${unit}`;
}

/** The version as labelled rows, in a fixed order (so two versions line up). */
export function summarize(v: PlanVersionFieldsFragment, features: FeatureInfo[]): [string, string][] {
  const rows: [string, string][] = [];
  for (const cycle of CYCLES) {
    const list = v.prices.filter((p) => p.cycle === cycle);
    if (list.length) rows.push([`Price, ${CYCLE_LABEL[cycle].toLowerCase()}`, list.map((p) => formatMinor(p.amountMinor, p.currency)).join(' · ')]);
  }
  if (v.customInterval) rows.push(['Custom interval', `${v.customInterval.count} ${v.customInterval.unit.toLowerCase()}(s)`]);
  rows.push(['Default currency', v.defaultCurrency]);
  rows.push([
    'Regional prices',
    v.regionalPrices.length
      ? v.regionalPrices.map((p) => `${p.countries.join(',')}: ${formatMinor(p.amountMinor, p.currency)} ${CYCLE_LABEL[p.cycle].toLowerCase()}`).join(' · ')
      : 'None',
  ]);
  rows.push(['Credits per period', formatCredits(v.includedCredits)]);
  rows.push(['Rollover', v.rollover === 'CAP' ? `Up to ${v.rolloverCapPercent ?? 0} %` : v.rollover === 'UNLIMITED' ? 'All' : 'None']);
  rows.push(['Trial', v.trialDays ? `${v.trialDays} days` : 'None']);
  rows.push(['Seats', v.seats == null ? 'Unlimited' : String(v.seats)]);
  const l = v.limits;
  rows.push(['Tokens per day', limitText(l.tokensPerDay, 'tokens')]);
  rows.push(['Tokens per month', limitText(l.tokensPerMonth, 'tokens')]);
  rows.push(['Calls per day', limitText(l.callsPerDay, 'calls')]);
  rows.push(['Calls per month', limitText(l.callsPerMonth, 'calls')]);
  rows.push(['Cost cap per day', l.costCapPerDayMicros == null ? 'No limit' : formatMicrosUsd(l.costCapPerDayMicros)]);
  rows.push(['Cost cap per month', l.costCapPerMonthMicros == null ? 'No limit' : formatMicrosUsd(l.costCapPerMonthMicros)]);
  rows.push(['Max tokens per request', limitText(l.maxTokensPerRequest, 'tokens')]);
  rows.push(['Requests per minute', limitText(l.requestsPerMinute, 'per minute')]);
  rows.push(['Allowed models', l.allowedModels ? l.allowedModels.join(', ') || 'None' : 'Every model']);
  rows.push(['Low-balance alert', l.lowBalanceCredits == null ? 'Off' : formatCredits(l.lowBalanceCredits)]);
  for (const f of features) {
    const value = v.featureValues.find((x) => x.featureKey === f.key);
    let shown = 'Not included';
    if (value) {
      if (f.kind === 'BOOLEAN') shown = value.enabled ? 'Yes' : 'No';
      else shown = value.limit == null ? 'Unlimited' : `${formatInteger(value.limit)}${f.unit ? ` ${f.unit}` : ''}`;
    }
    rows.push([`Feature: ${f.name}`, shown]);
  }
  const p = v.pricingPolicy;
  rows.push([
    'Pricing policy',
    !p
      ? 'The global default'
      : p.kind === 'MULTIPLIER'
        ? `Multiplier × ${p.multiplier}`
        : p.kind === 'FIXED_PER_CALL'
          ? `Fixed $${p.fixedPerCallUsd} per call`
          : p.kind === 'PER_MODEL'
            ? `Per model, default × ${p.defaultMarkup ?? '1'}`
            : 'Passthrough',
  ]);
  rows.push(['Badge', v.badge || '—']);
  rows.push(['Lago plan', v.lagoPlanCode || '—']);
  rows.push(['Stripe prices', v.stripePriceIds.length ? v.stripePriceIds.map((s) => `${s.cycle.toLowerCase()} ${s.currency}: ${s.priceId}`).join(' · ') : '—']);
  return rows;
}

export function priceLine(prices: { cycle: BillingCycle; currency: string; amountMinor: BigIntish }[]): string {
  if (!prices.length) return 'No price';
  return prices
    .map((p) => `${toBig(p.amountMinor) === 0n ? 'Free' : formatMinor(p.amountMinor, p.currency)} ${CYCLE_LABEL[p.cycle].toLowerCase()}`)
    .join(' · ');
}
