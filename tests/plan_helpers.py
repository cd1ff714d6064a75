"""Shared set-up for plan and subscription tests: GraphQL documents and small builders."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient, new_key
from tests.helpers import create_account

_ERROR_FIELDS = {
    "ValidationFailed": "field message",
    "NotFound": "missing: id message",
    "AlreadyExists": "field message",
    "IllegalTransition": "state: status action message",
    "AccountNotFound": "externalId",
    "IdempotencyConflict": "idempotencyKey",
}


def errors(*names: str) -> str:
    """Fragments for the union's error members (a fragment on a non-member is invalid)."""
    return " ".join(f"... on {n} {{ {_ERROR_FIELDS[n]} }}" for n in names)


VERSION_ERRORS = errors("ValidationFailed", "NotFound", "AlreadyExists", "IllegalTransition")
SUBSCRIPTION_ERRORS = errors(*_ERROR_FIELDS)
ERRORS = VERSION_ERRORS
VERSION = """
    id version status planCode publishedAt defaultCurrency includedCredits rollover
    rolloverCapPercent trialDays seats badge
    prices { cycle currency amountMinor }
    regionalPrices { countries cycle currency amountMinor }
    limits { tokensPerDay allowedModels requestsPerMinute }
    featureValues { featureKey enabled limit }
    pricingPolicy { scope kind multiplier }
"""
CREATE_PLAN = f"""
mutation($input: CreatePlanInput!) {{
  createPlan(input: $input) {{ __typename ... on PlanVersion {{ {VERSION} }} {ERRORS} }}
}}"""
CREATE_VERSION = f"""
mutation($id: ID!) {{
  createPlanVersion(fromVersionId: $id) {{ __typename ... on PlanVersion {{ {VERSION} }} {ERRORS} }}
}}"""
UPDATE_VERSION = f"""
mutation($id: ID!, $input: PlanVersionInput!) {{
  updatePlanVersion(id: $id, input: $input) {{
    __typename ... on PlanVersion {{ {VERSION} }} {ERRORS}
  }}
}}"""
PUBLISH = f"""
mutation($id: ID!, $migrate: PublishMigration!) {{
  publishPlanVersion(id: $id, migrate: $migrate) {{
    __typename
    ... on PublishedPlanVersion {{ affectedSubscribers migrate version {{ {VERSION} }} }}
    {errors("ValidationFailed", "NotFound", "IllegalTransition")}
  }}
}}"""
MIGRATE = f"""
mutation($from: ID!, $to: ID!, $effective: MigrationTiming!) {{
  migrateSubscribers(fromVersionId: $from, toVersionId: $to, effective: $effective) {{
    __typename ... on SubscribersMigrated {{ moved effective }}
    {errors("ValidationFailed", "NotFound", "IllegalTransition")}
  }}
}}"""
SUBSCRIPTION = """
    id accountExternalId status planCode cycle currency amountMinor country trialEndsAt
    currentPeriodStart currentPeriodEnd cancelAtPeriodEnd canceledAt nextPlanVersionId
    planVersion { id version }
"""
SUBSCRIBE = f"""
mutation($input: SubscribeInput!) {{
  subscribe(input: $input) {{
    __typename ... on PlanSubscription {{ {SUBSCRIPTION} }} {SUBSCRIPTION_ERRORS}
  }}
}}"""
CHANGE = f"""
mutation($input: ChangePlanInput!) {{
  changePlan(input: $input) {{
    __typename ... on PlanSubscription {{ {SUBSCRIPTION} }} {SUBSCRIPTION_ERRORS}
  }}
}}"""
NEW_DRAFT = """
mutation($id: ID!) { createPlanVersion(fromVersionId: $id) { ... on PlanVersion { id } } }
"""
CANCEL = f"""
mutation($id: String!, $atEnd: Boolean!) {{
  cancelSubscription(accountExternalId: $id, atPeriodEnd: $atEnd) {{
    __typename ... on PlanSubscription {{ {SUBSCRIPTION} }} {SUBSCRIPTION_ERRORS}
  }}
}}"""


def version_input(
    monthly: int = 1900, annual: int | None = 19000, credits: int = 1000, **extra: Any
) -> dict[str, Any]:
    prices = [{"cycle": "MONTHLY", "currency": "USD", "amountMinor": monthly}]
    if annual is not None:
        prices.append({"cycle": "ANNUAL", "currency": "USD", "amountMinor": annual})
    return {"prices": prices, "includedCredits": credits, **extra}


async def create_plan(gql: GraphQLClient, code: str, **version: Any) -> dict[str, Any]:
    data = await gql.data(
        CREATE_PLAN, input={"code": code, "name": code.title(), "version": version_input(**version)}
    )
    created: dict[str, Any] = data["createPlan"]
    return created


async def publish(gql: GraphQLClient, version_id: str, migrate: str = "NONE") -> dict[str, Any]:
    data = await gql.data(PUBLISH, id=version_id, migrate=migrate)
    published: dict[str, Any] = data["publishPlanVersion"]
    return published


async def published_plan(gql: GraphQLClient, code: str, **version: Any) -> str:
    """A plan with one published version; returns the version id."""
    created = await create_plan(gql, code, **version)
    assert created["__typename"] == "PlanVersion", created
    done = await publish(gql, created["id"])
    assert done["__typename"] == "PublishedPlanVersion", done
    return str(created["id"])


async def subscribe(
    gql: GraphQLClient, account: str, plan: str, cycle: str = "MONTHLY", **extra: Any
) -> dict[str, Any]:
    data = await gql.data(
        SUBSCRIBE,
        input={
            "accountExternalId": account,
            "planCode": plan,
            "cycle": cycle,
            "idempotencyKey": extra.pop("key", None) or new_key(),
            **extra,
        },
    )
    result: dict[str, Any] = data["subscribe"]
    return result


async def subscriber(gql: GraphQLClient, account: str, plan: str, **extra: Any) -> dict[str, Any]:
    await create_account(gql, account)
    sub = await subscribe(gql, account, plan, **extra)
    assert sub["__typename"] == "PlanSubscription", sub
    return sub


async def change(gql: GraphQLClient, account: str, plan: str, **extra: Any) -> dict[str, Any]:
    data = await gql.data(
        CHANGE,
        input={
            "accountExternalId": account,
            "planCode": plan,
            "idempotencyKey": extra.pop("key", None) or new_key(),
            **extra,
        },
    )
    result: dict[str, Any] = data["changePlan"]
    return result


async def balance(gql: GraphQLClient, account: str) -> int:
    data = await gql.data(
        "query($id: String!) { account(externalId: $id) { balance { available } } }", id=account
    )
    return int(data["account"]["balance"]["available"])
