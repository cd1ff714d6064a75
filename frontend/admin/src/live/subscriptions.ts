/** Subscriptions, kept out of code generation so the app builds and runs against a server
 * whose schema has no Subscription type yet. Most are used as a signal that something changed:
 * the screens then refetch their typed queries, so only `__typename` is selected. The ticker's
 * totals feed the overview's live chart directly. */

export const ALERT_RAISED = 'subscription AlertRaised { alertRaised { __typename } }';

export const USAGE_TICKER = `subscription UsageTicker($interval: Int!) {
  usageTicker(interval: $interval) { from to calls tokens providerCostMicros chargeMicros credits }
}`;

/** One tick of usageTicker: usage booked on every replica in [from, to). */
export interface UsageTick {
  from: string;
  to: string;
  calls: number | string;
  tokens: number | string;
  providerCostMicros: number | string;
  chargeMicros: number | string;
  credits: number | string;
}

export const USAGE_RECORDED = `subscription UsageRecorded($accountExternalId: String!) {
  usageRecorded(accountExternalId: $accountExternalId) { __typename }
}`;

export const BALANCE_CHANGED = `subscription BalanceChanged($accountExternalId: String!) {
  balanceChanged(accountExternalId: $accountExternalId) { __typename }
}`;

export const PRICING_PUBLISHED = 'subscription PricingPublished { pricingPublished { __typename } }';
