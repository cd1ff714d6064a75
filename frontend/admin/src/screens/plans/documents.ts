import { graphql } from '../../gql';

graphql(`
  fragment PlanVersionFields on PlanVersion {
    id
    planCode
    version
    status
    publishedAt
    createdAt
    updatedAt
    defaultCurrency
    prices { cycle currency amountMinor }
    regionalPrices { countries cycle currency amountMinor }
    customInterval { unit count }
    includedCredits
    rollover
    rolloverCapPercent
    limits {
      tokensPerDay
      tokensPerMonth
      callsPerDay
      callsPerMonth
      costCapPerDayMicros
      costCapPerMonthMicros
      maxTokensPerRequest
      requestsPerMinute
      allowedModels
      lowBalanceCredits
    }
    featureValues { featureKey enabled limit }
    trialDays
    seats
    pricingPolicy { kind multiplier fixedPerCallUsd defaultMarkup platformFeeUsd }
    badge
    lagoPlanCode
    stripePriceIds { cycle currency priceId }
  }
`);

export const PlansDoc = graphql(`
  query Plans($includeArchived: Boolean!) {
    plans(includeArchived: $includeArchived) {
      id
      code
      name
      description
      archivedAt
      createdAt
      currentVersion { id version publishedAt defaultCurrency prices { cycle currency amountMinor } includedCredits }
      draft { id version updatedAt }
    }
  }
`);

export const PlanDoc = graphql(`
  query Plan($code: String!) {
    plan(code: $code) {
      id
      code
      name
      description
      archivedAt
      createdAt
      versions { ...PlanVersionFields }
      currentVersion { id version }
      draft { id version }
    }
    features { key name kind unit description updatedAt }
  }
`);

export const FeaturesDoc = graphql(`
  query Features {
    features { key name kind unit description updatedAt }
  }
`);

export const CreatePlanDoc = graphql(`
  mutation CreatePlan($input: CreatePlanInput!) {
    createPlan(input: $input) {
      __typename
      ... on PlanVersion { id planCode version }
      ... on ValidationFailed { field message }
      ... on NotFound { missingId: id message }
      ... on AlreadyExists { field message }
      ... on IllegalTransition { currentStatus: status action message }
    }
  }
`);

export const CreatePlanVersionDoc = graphql(`
  mutation CreatePlanVersion($fromVersionId: ID!) {
    createPlanVersion(fromVersionId: $fromVersionId) {
      __typename
      ... on PlanVersion { id version }
      ... on ValidationFailed { field message }
      ... on NotFound { missingId: id message }
      ... on AlreadyExists { field message }
      ... on IllegalTransition { currentStatus: status action message }
    }
  }
`);

export const UpdatePlanVersionDoc = graphql(`
  mutation UpdatePlanVersion($id: ID!, $input: PlanVersionInput!) {
    updatePlanVersion(id: $id, input: $input) {
      __typename
      ... on PlanVersion { id version updatedAt }
      ... on ValidationFailed { field message }
      ... on NotFound { missingId: id message }
      ... on AlreadyExists { field message }
      ... on IllegalTransition { currentStatus: status action message }
    }
  }
`);

export const PublishPlanVersionDoc = graphql(`
  mutation PublishPlanVersion($id: ID!, $migrate: PublishMigration!) {
    publishPlanVersion(id: $id, migrate: $migrate) {
      __typename
      ... on PublishedPlanVersion { affectedSubscribers migrate version { id version publishedAt } }
      ... on ValidationFailed { field message }
      ... on NotFound { missingId: id message }
      ... on IllegalTransition { currentStatus: status action message }
    }
  }
`);

export const ArchivePlanDoc = graphql(`
  mutation ArchivePlan($code: String!) {
    archivePlan(code: $code) {
      __typename
      ... on Plan { code archivedAt }
      ... on NotFound { missingId: id message }
      ... on IllegalTransition { currentStatus: status action message }
    }
  }
`);

export const MigrateSubscribersDoc = graphql(`
  mutation MigrateSubscribers($fromVersionId: ID!, $toVersionId: ID!, $effective: MigrationTiming!) {
    migrateSubscribers(fromVersionId: $fromVersionId, toVersionId: $toVersionId, effective: $effective) {
      __typename
      ... on SubscribersMigrated { moved effective }
      ... on ValidationFailed { field message }
      ... on NotFound { missingId: id message }
      ... on IllegalTransition { currentStatus: status action message }
    }
  }
`);

export const UpsertFeatureDoc = graphql(`
  mutation UpsertFeature($input: UpsertFeatureInput!) {
    upsertFeature(input: $input) {
      __typename
      ... on Feature { key }
      ... on ValidationFailed { field message }
    }
  }
`);

export const TokenPackagesDoc = graphql(`
  query TokenPackages($includeInactive: Boolean!) {
    tokenPackages(includeInactive: $includeInactive) {
      code
      name
      credits
      prices { currency amountMinor }
      validityDays
      availableToPlans
      active
    }
  }
`);

export const UpsertTokenPackageDoc = graphql(`
  mutation UpsertTokenPackage($input: UpsertTokenPackageInput!) {
    upsertTokenPackage(input: $input) {
      __typename
      ... on TokenPackage { code }
      ... on ValidationFailed { field message }
    }
  }
`);

export const PriceForDoc = graphql(`
  query PriceFor($planCode: String!, $cycle: BillingCycle!, $country: String) {
    priceFor(planCode: $planCode, cycle: $cycle, country: $country) {
      __typename
      ... on ResolvedPrice { currency amountMinor country regional cycle }
      ... on NotFound { missingId: id message }
      ... on ValidationFailed { field message }
    }
  }
`);
