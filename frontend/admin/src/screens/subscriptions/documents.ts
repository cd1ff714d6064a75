import { graphql } from '../../gql';

export const SubscriptionsDoc = graphql(`
  query Subscriptions($status: SubscriptionStatus, $planCode: String, $after: String) {
    subscriptions(first: 50, status: $status, planCode: $planCode, after: $after) {
      nodes {
        id
        accountExternalId
        status
        planCode
        planName
        planVersion { version }
        cycle
        currency
        amountMinor
        currentPeriodEnd
        cancelAtPeriodEnd
        createdAt
      }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const SubscriptionDoc = graphql(`
  query SubscriptionDetail($account: String!) {
    subscription(accountExternalId: $account) {
      id
      accountExternalId
      status
      planCode
      planName
      planVersion { id version includedCredits }
      nextPlanVersionId
      cycle
      currency
      amountMinor
      country
      trialEndsAt
      currentPeriodStart
      currentPeriodEnd
      cancelAtPeriodEnd
      canceledAt
      endedAt
      createdAt
      events { kind fromStatus toStatus fromPlanVersionId toPlanVersionId currency amountMinor actor occurredAt }
      invoiceLines { id kind status description currency amountMinor periodStart periodEnd createdAt }
    }
    plans { code name currentVersion { id version prices { cycle currency amountMinor } } }
  }
`);

export const PreviewChangeDoc = graphql(`
  query PreviewPlanChange($input: ChangePlanInput!) {
    previewPlanChange(input: $input) {
      __typename
      ... on PlanChangePreview {
        planCode
        cycle
        creditMinor
        creditCurrency
        chargeMinor
        chargeCurrency
        creditsTakenBack
        creditsGranted
        newPeriodStart
        newPeriodEnd
        remainingSeconds
        periodSeconds
      }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
      ... on NotFound { missingId: id message }
      ... on IllegalTransition { currentStatus: status action message }
    }
  }
`);


export const ChangePlanDoc = graphql(`
  mutation ChangePlan($input: ChangePlanInput!) {
    changePlan(input: $input) {
      __typename
      ... on PlanSubscription { id planCode cycle }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
      ... on NotFound { missingId: id message }
      ... on AlreadyExists { field message }
      ... on IllegalTransition { currentStatus: status action message }
      ... on IdempotencyConflict { idempotencyKey message }
    }
  }
`);

export const CancelDoc = graphql(`
  mutation CancelSubscription($account: String!, $atPeriodEnd: Boolean!) {
    cancelSubscription(accountExternalId: $account, atPeriodEnd: $atPeriodEnd) {
      __typename
      ... on PlanSubscription { id status cancelAtPeriodEnd }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
      ... on NotFound { missingId: id message }
      ... on AlreadyExists { field message }
      ... on IllegalTransition { currentStatus: status action message }
      ... on IdempotencyConflict { idempotencyKey message }
    }
  }
`);

export const SubscribeDoc = graphql(`
  mutation Subscribe($input: SubscribeInput!) {
    subscribe(input: $input) {
      __typename
      ... on PlanSubscription { id accountExternalId }
      ... on ValidationFailed { field message }
      ... on AccountNotFound { externalId message }
      ... on NotFound { missingId: id message }
      ... on AlreadyExists { field message }
      ... on IllegalTransition { currentStatus: status action message }
      ... on IdempotencyConflict { idempotencyKey message }
    }
  }
`);

export const PlanChoicesDoc = graphql(`
  query PlanChoices {
    plans { code name currentVersion { id prices { cycle currency amountMinor } } }
  }
`);
