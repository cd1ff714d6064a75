/** Subscriptions, kept out of code generation so the app builds and runs against a server
 * whose schema has no Subscription type yet. Each is used as a signal that something changed:
 * the screens then refetch their typed queries, so only `__typename` is selected here. */

export const ALERT_RAISED = 'subscription AlertRaised { alertRaised { __typename } }';

export const USAGE_TICKER = `subscription UsageTicker($interval: Int!) {
  usageTicker(interval: $interval) { __typename }
}`;

export const USAGE_RECORDED = `subscription UsageRecorded($accountExternalId: String!) {
  usageRecorded(accountExternalId: $accountExternalId) { __typename }
}`;

export const BALANCE_CHANGED = `subscription BalanceChanged($accountExternalId: String!) {
  balanceChanged(accountExternalId: $accountExternalId) { __typename }
}`;

export const PRICING_PUBLISHED = 'subscription PricingPublished { pricingPublished { __typename } }';
