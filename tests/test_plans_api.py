"""The plan catalog over GraphQL: features, versions (draft, publish, immutable), archiving,
regional prices, and token packages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tests.conftest import GraphQLClient, new_key
from tests.helpers import create_account
from tests.plan_helpers import (
    CREATE_VERSION,
    UPDATE_VERSION,
    create_plan,
    errors,
    publish,
    published_plan,
    subscriber,
    version_input,
)
from tollgate.billing.models import InvoiceLine, Payment
from tollgate.db import Database
from tollgate.plans.models import PlanVersion

UPSERT_FEATURE = """
mutation($input: UpsertFeatureInput!) {
  upsertFeature(input: $input) {
    __typename ... on Feature { key name kind unit } ... on ValidationFailed { field message }
  }
}"""
PRICE_FOR = f"""
query($code: String!, $cycle: BillingCycle!, $country: String) {{
  priceFor(planCode: $code, cycle: $cycle, country: $country) {{
    __typename ... on ResolvedPrice {{ currency amountMinor country regional }}
    {errors("NotFound", "ValidationFailed")}
  }}
}}"""
PLAN = """
query($code: String!) {
  plan(code: $code) {
    code archivedAt versions { id version status } currentVersion { id version } draft { id }
  }
}"""


async def test_features_are_upserted_by_key(gql: GraphQLClient) -> None:
    made = await gql.data(UPSERT_FEATURE, input={"key": "sso", "name": "SSO", "kind": "BOOLEAN"})
    assert made["upsertFeature"] == {"__typename": "Feature", "key": "sso", "name": "SSO",
                                     "kind": "BOOLEAN", "unit": None}  # fmt: skip
    again = await gql.data(
        UPSERT_FEATURE, input={"key": "sso", "name": "Single sign-on", "kind": "BOOLEAN"}
    )
    assert again["upsertFeature"]["name"] == "Single sign-on"
    bad = await gql.data(UPSERT_FEATURE, input={"key": "Bad Key", "name": "x", "kind": "LIMIT"})
    assert bad["upsertFeature"]["field"] == "key"
    listed = await gql.data("{ features { key name } }")
    assert listed["features"] == [{"key": "sso", "name": "Single sign-on"}]


async def test_a_draft_is_edited_then_published_and_never_changes(gql: GraphQLClient) -> None:
    await gql.data(UPSERT_FEATURE, input={"key": "seats", "name": "Seats", "kind": "LIMIT"})
    created = await create_plan(gql, "starter", featureValues=[{"featureKey": "seats", "limit": 3}])
    assert created["status"] == "DRAFT" and created["version"] == 1
    edited = await gql.data(
        UPDATE_VERSION, id=created["id"],
        input=version_input(credits=2000, limits={"tokensPerDay": 5000}, badge="New"),
    )  # fmt: skip
    version = edited["updatePlanVersion"]
    assert version["includedCredits"] == 2000 and version["limits"]["tokensPerDay"] == 5000
    assert version["featureValues"] == []
    done = await publish(gql, created["id"])
    assert done["__typename"] == "PublishedPlanVersion" and done["version"]["status"] == "PUBLISHED"

    # Publishing again, and editing what is published, are typed errors that change nothing.
    again = await publish(gql, created["id"])
    assert again["__typename"] == "IllegalTransition" and again["state"] == "PUBLISHED"
    refused = await gql.data(UPDATE_VERSION, id=created["id"], input=version_input(credits=1))
    assert refused["updatePlanVersion"]["__typename"] == "IllegalTransition"
    plan = (await gql.data(PLAN, code="starter"))["plan"]
    assert plan["currentVersion"]["version"] == 1 and plan["draft"] is None

    # Editing a published plan means a new draft copied from it.
    draft = (await gql.data(CREATE_VERSION, id=created["id"]))["createPlanVersion"]
    assert (draft["version"], draft["status"], draft["includedCredits"]) == (2, "DRAFT", 2000)
    second = (await gql.data(CREATE_VERSION, id=created["id"]))["createPlanVersion"]
    assert second["__typename"] == "IllegalTransition"  # one draft at a time
    plan = (await gql.data(PLAN, code="starter"))["plan"]
    assert plan["currentVersion"]["version"] == 1 and plan["draft"]["id"] == draft["id"]


async def test_invalid_versions_are_refused_with_the_field(
    gql: GraphQLClient, db: Database
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (version_input(monthly=-1), "version.prices"),
        ({"prices": [{"cycle": "MONTHLY", "currency": "usd", "amountMinor": 1}]}, "version.prices"),
        ({"prices": [{"cycle": "MONTHLY", "currency": "EUR", "amountMinor": 1}]}, "version.prices"),
        (version_input(rollover="CAP"), "version.rolloverCapPercent"),
        (version_input(featureValues=[{"featureKey": "nope", "enabled": True}]),
         "version.featureValues"),
        (version_input(regionalPrices=[{"countries": ["POL"], "cycle": "MONTHLY",
                                        "currency": "PLN", "amountMinor": 7900}]),
         "version.regionalPrices"),
        ({"prices": [{"cycle": "CUSTOM", "currency": "USD", "amountMinor": 1}]},
         "version.customInterval"),
        (version_input(limits={"timezone": "Mars/Olympus"}), "version.limits.timezone"),
        (version_input(pricingPolicy={"kind": "MULTIPLIER"}), "version.pricingPolicy.multiplier"),
    ]  # fmt: skip
    for version, field in cases:
        data = await gql.data(
            "mutation($input: CreatePlanInput!) { createPlan(input: $input) "
            "{ __typename ... on ValidationFailed { field message } } }",
            input={"code": "broken", "name": "Broken", "version": version},
        )
        found = data["createPlan"]
        assert (found["__typename"], found["field"]) == ("ValidationFailed", field), version
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(PlanVersion)) == 0
    dup = await create_plan(gql, "twice")
    assert dup["__typename"] == "PlanVersion"
    assert (await create_plan(gql, "twice"))["__typename"] == "AlreadyExists"


async def test_regional_prices_and_unknown_countries(gql: GraphQLClient) -> None:
    await published_plan(
        gql, "pro", monthly=4900, annual=49000,
        prices=[
            {"cycle": "MONTHLY", "currency": "USD", "amountMinor": 4900},
            {"cycle": "MONTHLY", "currency": "EUR", "amountMinor": 4500},
            {"cycle": "ANNUAL", "currency": "USD", "amountMinor": 49000},
        ],
        regionalPrices=[
            {"countries": ["PL"], "cycle": "MONTHLY", "currency": "PLN", "amountMinor": 17900},
            {"countries": ["DE", "FR"], "cycle": "MONTHLY", "currency": "EUR", "amountMinor": 4500},
        ],
    )  # fmt: skip

    async def price(cycle: str, country: str | None) -> dict[str, Any]:
        data = await gql.data(PRICE_FOR, code="pro", cycle=cycle, country=country)
        found: dict[str, Any] = data["priceFor"]
        return found

    assert await price("MONTHLY", "PL") == {"__typename": "ResolvedPrice", "currency": "PLN",
                                            "amountMinor": 17900, "country": "PL",
                                            "regional": True}  # fmt: skip
    assert (await price("MONTHLY", "fr"))["currency"] == "EUR"
    # No regional price: the default currency, for a country we know nothing about too.
    for country in ("US", "ZZ", None):
        found = await price("MONTHLY", country)
        assert (found["currency"], found["amountMinor"], found["regional"]) == ("USD", 4900, False)
    assert (await price("ANNUAL", "PL"))["currency"] == "USD"
    assert (await price("CUSTOM", "PL"))["__typename"] == "ValidationFailed"
    assert (await price("MONTHLY", "Poland"))["field"] == "country"
    missing = await gql.data(PRICE_FOR, code="nope", cycle="MONTHLY", country=None)
    assert missing["priceFor"]["__typename"] == "NotFound"


async def test_an_archived_plan_is_not_sold_but_keeps_its_subscribers(gql: GraphQLClient) -> None:
    await published_plan(gql, "legacy")
    await subscriber(gql, "old-customer", "legacy")
    archived = await gql.data(
        'mutation { archivePlan(code: "legacy") { __typename ... on Plan { archivedAt } } }'
    )
    assert archived["archivePlan"]["archivedAt"] is not None
    again = await gql.data('mutation { archivePlan(code: "legacy") { __typename } }')
    assert again["archivePlan"]["__typename"] == "IllegalTransition"
    await create_account(gql, "newcomer")
    from tests.plan_helpers import subscribe

    refused = await subscribe(gql, "newcomer", "legacy")
    assert refused["__typename"] == "NotFound"
    sub = await gql.data('{ subscription(accountExternalId: "old-customer") { status } }')
    assert sub["subscription"]["status"] == "ACTIVE"
    listed = await gql.data("{ plans { code } all: plans(includeArchived: true) { code } }")
    assert listed == {"plans": [], "all": [{"code": "legacy"}]}


PACKAGE = """
mutation($input: UpsertTokenPackageInput!) {
  upsertTokenPackage(input: $input) {
    __typename ... on TokenPackage { code credits prices { currency amountMinor } availableToPlans }
    ... on ValidationFailed { field message }
  }
}"""
PURCHASE = f"""
mutation($account: String!, $code: String!, $key: String!, $currency: String) {{
  purchaseTokenPackage(accountExternalId: $account, code: $code, idempotencyKey: $key,
                       currency: $currency) {{
    __typename
    ... on TokenPurchase {{ transactionId credits paymentId paymentStatus currency amountMinor }}
    {
    errors(
        "AccountNotFound",
        "NotFound",
        "ValidationFailed",
        "IllegalTransition",
        "IdempotencyConflict",
    )
}
  }}
}}"""


async def test_token_packages_grant_credits_and_record_a_pending_payment(
    gql: GraphQLClient, db: Database
) -> None:
    made = await gql.data(
        PACKAGE,
        input={"code": "boost-10k", "credits": 10000, "validityDays": 90,
               "prices": [{"currency": "USD", "amountMinor": 999},
                          {"currency": "EUR", "amountMinor": 899}]},
    )  # fmt: skip
    assert made["upsertTokenPackage"]["credits"] == 10000
    bad = await gql.data(
        PACKAGE,
        input={"code": "x", "credits": 0, "prices": [{"currency": "USD", "amountMinor": 1}]},
    )
    assert bad["upsertTokenPackage"]["field"] == "credits"
    await create_account(gql, "buyer")
    key = new_key()
    bought = (await gql.data(PURCHASE, account="buyer", code="boost-10k", key=key, currency="EUR"))[
        "purchaseTokenPackage"
    ]
    assert bought["credits"] == 10000 and bought["paymentStatus"] == "PENDING"
    assert (bought["currency"], bought["amountMinor"]) == ("EUR", 899)
    replay = (await gql.data(PURCHASE, account="buyer", code="boost-10k", key=key, currency="EUR"))[
        "purchaseTokenPackage"
    ]
    assert replay == bought
    conflict = await gql.data(PURCHASE, account="buyer", code="boost-10k", key=key, currency="USD")
    assert conflict["purchaseTokenPackage"]["__typename"] == "IdempotencyConflict"
    balance = await gql.data('{ account(externalId: "buyer") { balance { available } } }')
    assert balance["account"]["balance"]["available"] == 10000
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Payment)) == 1
        line = (await session.scalars(select(InvoiceLine))).one()
        assert (line.kind, line.status, line.amount_minor, line.currency) == (
            "TOKEN_PACKAGE", "OPEN", 899, "EUR",
        )  # fmt: skip


async def test_packages_for_some_plans_only(gql: GraphQLClient) -> None:
    await published_plan(gql, "team")
    await published_plan(gql, "free", monthly=0, annual=None)
    made = await gql.data(
        PACKAGE,
        input={"code": "team-pack", "credits": 500, "availableToPlans": ["team"],
               "prices": [{"currency": "USD", "amountMinor": 500}]},
    )  # fmt: skip
    assert made["upsertTokenPackage"]["availableToPlans"] == ["team"]
    await subscriber(gql, "on-free", "free")
    await subscriber(gql, "on-team", "team")
    refused = await gql.data(PURCHASE, account="on-free", code="team-pack", key=new_key())
    assert refused["purchaseTokenPackage"]["__typename"] == "IllegalTransition"
    bought = await gql.data(PURCHASE, account="on-team", code="team-pack", key=new_key())
    assert bought["purchaseTokenPackage"]["__typename"] == "TokenPurchase"
    unknown = await gql.data(
        PACKAGE,
        input={"code": "p", "credits": 1, "availableToPlans": ["ghost"],
               "prices": [{"currency": "USD", "amountMinor": 1}]},
    )  # fmt: skip
    assert unknown["upsertTokenPackage"]["field"] == "availableToPlans"
