"""Subscriptions over GraphQL: subscribe, change plan with proration, cancel, legal statuses,
and enforcement taking limits, models and pricing policy from the subscriber's plan version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.conftest import GraphQLClient, new_key
from tests.helpers import create_account
from tests.metering_helpers import authorize, price_model
from tests.plan_helpers import (
    CANCEL,
    MIGRATE,
    NEW_DRAFT,
    balance,
    change,
    create_plan,
    publish,
    published_plan,
    subscribe,
    subscriber,
)
from tollgate.billing.models import InvoiceLine
from tollgate.db import Database
from tollgate.subscriptions.models import SubscriptionEvent

PREVIEW = """
query($input: ChangePlanInput!) {
  previewPlanChange(input: $input) {
    __typename
    ... on PlanChangePreview {
      creditMinor creditCurrency chargeMinor chargeCurrency creditsTakenBack creditsGranted
      remainingSeconds periodSeconds
    }
  }
}"""


async def _lines(db: Database) -> list[tuple[str, str, int]]:
    async with db.transaction() as session:
        rows = await session.scalars(select(InvoiceLine).order_by(InvoiceLine.id))
        return [(r.kind, r.currency, r.amount_minor) for r in rows]


async def _events(db: Database) -> list[str]:
    async with db.transaction() as session:
        rows = await session.scalars(select(SubscriptionEvent).order_by(SubscriptionEvent.id))
        return [r.kind for r in rows]


async def test_subscribing_allocates_credits_and_bills_the_first_period(
    gql: GraphQLClient, db: Database
) -> None:
    await published_plan(gql, "starter", monthly=1900, annual=19000, credits=1000)
    await create_account(gql, "ada")
    key = new_key()
    sub = await subscribe(gql, "ada", "starter", "ANNUAL", key=key, country="US")
    assert (sub["status"], sub["cycle"], sub["currency"], sub["amountMinor"]) == (
        "ACTIVE", "ANNUAL", "USD", 19000,
    )  # fmt: skip
    start = datetime.fromisoformat(sub["currentPeriodStart"])
    end = datetime.fromisoformat(sub["currentPeriodEnd"])
    assert end.year == start.year + 1 and (end.month, end.day) == (start.month, start.day)
    assert await balance(gql, "ada") == 1000
    assert await _lines(db) == [("SUBSCRIPTION", "USD", 19000)]
    # The same key books nothing more; another key finds the live subscription.
    assert (await subscribe(gql, "ada", "starter", "ANNUAL", key=key, country="US"))["id"] == sub[
        "id"
    ]
    assert (await subscribe(gql, "ada", "starter"))["__typename"] == "AlreadyExists"
    conflict = await subscribe(gql, "ada", "starter", "MONTHLY", key=key)
    assert conflict["__typename"] == "IdempotencyConflict"
    assert await balance(gql, "ada") == 1000 and len(await _lines(db)) == 1
    assert await _events(db) == ["SUBSCRIBED"]


async def test_bad_subscriptions_are_refused(gql: GraphQLClient) -> None:
    await published_plan(gql, "monthly-only", annual=None)
    await create_account(gql, "bob")
    cases = [
        (("nobody", "monthly-only"), {}, "AccountNotFound"),
        (("bob", "ghost"), {}, "NotFound"),
        (("bob", "monthly-only"), {"cycle": "ANNUAL"}, "ValidationFailed"),
        (("bob", "monthly-only"), {"country": "Poland"}, "ValidationFailed"),
        (("bob", "monthly-only"),
         {"startAt": (datetime.now(UTC) + timedelta(days=3)).isoformat()}, "ValidationFailed"),
    ]  # fmt: skip
    for (account, plan), extra, typename in cases:
        cycle = extra.pop("cycle", "MONTHLY")
        found = await subscribe(gql, account, plan, cycle, **extra)
        assert found["__typename"] == typename, (account, plan, extra, found)
    assert await balance(gql, "bob") == 0


async def test_a_trial_starts_without_a_charge(gql: GraphQLClient, db: Database) -> None:
    await published_plan(gql, "pro", monthly=4900, credits=5000, trialDays=14)
    sub = await subscriber(gql, "trier", "pro")
    assert sub["status"] == "TRIALING"
    trial_end = datetime.fromisoformat(sub["trialEndsAt"])
    assert datetime.fromisoformat(sub["currentPeriodEnd"]) == trial_end
    assert await _lines(db) == []
    assert await balance(gql, "trier") == 5000


async def test_an_upgrade_mid_period_prorates_money_and_credits(
    gql: GraphQLClient, db: Database
) -> None:
    await published_plan(gql, "starter", monthly=1900, credits=1000)
    await published_plan(gql, "pro", monthly=4900, credits=5000)
    # Started ten days ago: about two thirds of the month are left.
    start = datetime.now(UTC) - timedelta(days=10)
    sub = await subscriber(gql, "grower", "starter", startAt=start.isoformat())
    period = datetime.fromisoformat(sub["currentPeriodEnd"]) - datetime.fromisoformat(
        sub["currentPeriodStart"]
    )
    preview = (
        await gql.data(
            PREVIEW,
            input={"accountExternalId": "grower", "planCode": "pro", "idempotencyKey": "preview"},
        )
    )["previewPlanChange"]
    left, length = preview["remainingSeconds"], preview["periodSeconds"]
    assert length == int(period.total_seconds()) and 0 < left < length

    def share(amount: int) -> int:
        return (2 * amount * left + length) // (2 * length)

    assert (preview["creditMinor"], preview["chargeMinor"]) == (share(1900), share(4900))
    assert (preview["creditsTakenBack"], preview["creditsGranted"]) == (share(1000), share(5000))
    changed = await change(gql, "grower", "pro")
    assert (changed["planCode"], changed["amountMinor"]) == ("pro", 4900)
    assert changed["currentPeriodEnd"] == sub["currentPeriodEnd"]
    lines = await _lines(db)
    assert lines[0] == ("SUBSCRIPTION", "USD", 1900)
    # The change happened a moment after the preview: a second may have passed.
    (k1, c1, credit), (k2, c2, charge) = lines[1:]
    assert (k1, k2, c1, c2) == ("PRORATION_CREDIT", "PRORATION_CHARGE", "USD", "USD")
    assert abs(-credit - share(1900)) <= 1 and abs(charge - share(4900)) <= 1
    assert abs(await balance(gql, "grower") - (1000 - share(1000) + share(5000))) <= 2
    assert await _events(db) == ["SUBSCRIBED", "PLAN_CHANGED"]
    same = await change(gql, "grower", "pro")
    assert same["__typename"] == "IllegalTransition"


async def test_monthly_to_annual_starts_a_new_period(gql: GraphQLClient, db: Database) -> None:
    await published_plan(gql, "pro", monthly=4900, annual=49000, credits=5000)
    await subscriber(gql, "yearly", "pro")
    changed = await change(gql, "yearly", "pro", cycle="ANNUAL")
    start = datetime.fromisoformat(changed["currentPeriodStart"])
    end = datetime.fromisoformat(changed["currentPeriodEnd"])
    assert changed["cycle"] == "ANNUAL" and end.year == start.year + 1
    kinds = await _lines(db)
    assert kinds[-1] == ("PRORATION_CHARGE", "USD", 49000)
    assert kinds[1][0] == "PRORATION_CREDIT" and -kinds[1][2] in (4899, 4900)
    # Almost all of the month's 5000 taken back, a whole year's allocation granted.
    assert 5000 <= await balance(gql, "yearly") <= 5002


async def test_cancel_now_and_at_period_end_and_illegal_transitions(
    gql: GraphQLClient, db: Database
) -> None:
    await published_plan(gql, "starter", credits=1000)
    await subscriber(gql, "leaver", "starter")
    scheduled = (await gql.data(CANCEL, id="leaver", atEnd=True))["cancelSubscription"]
    assert scheduled["status"] == "ACTIVE" and scheduled["cancelAtPeriodEnd"] is True
    twice = (await gql.data(CANCEL, id="leaver", atEnd=True))["cancelSubscription"]
    assert twice["__typename"] == "IllegalTransition"
    now = (await gql.data(CANCEL, id="leaver", atEnd=False))["cancelSubscription"]
    assert now["status"] == "CANCELED" and now["canceledAt"] is not None
    assert await balance(gql, "leaver") == 0  # plan credits end with the plan
    events_before = await _events(db)
    again = (await gql.data(CANCEL, id="leaver", atEnd=False))["cancelSubscription"]
    assert again["__typename"] == "IllegalTransition" and again["state"] == "CANCELED"
    assert await _events(db) == events_before == ["SUBSCRIBED", "CANCEL_SCHEDULED", "CANCELED"]
    # A canceled account may subscribe anew.
    assert (await subscribe(gql, "leaver", "starter"))["status"] == "ACTIVE"
    none = (await gql.data(CANCEL, id="nobody", atEnd=False))["cancelSubscription"]
    assert none["__typename"] == "AccountNotFound"


async def test_enforcement_uses_the_plan_with_account_overrides_on_top(gql: GraphQLClient) -> None:
    await price_model(gql, "small-model")
    await price_model(gql, "big-model")
    await published_plan(
        gql, "basic", credits=100_000,
        limits={"allowedModels": ["small-*"], "maxTokensPerRequest": 1000},
        pricingPolicy={"kind": "MULTIPLIER", "multiplier": "2"},
    )  # fmt: skip
    await subscriber(gql, "user", "basic")
    denied = await authorize(gql, "user", 10, 10, model="big-model")
    assert (denied["__typename"], denied["reason"]) == ("Denied", "MODEL_NOT_ALLOWED")
    too_big = await authorize(gql, "user", 900, 200, model="small-model")
    assert too_big["reason"] == "LIMIT_EXCEEDED"
    allowed = await authorize(gql, "user", 10, 10, model="small-model")
    assert allowed["__typename"] == "Authorized"
    policy = await gql.data(
        '{ pricingPolicy(accountExternalId: "user") '
        "{ ... on PricingPolicy { scope kind multiplier } } }"
    )
    assert policy["pricingPolicy"] == {"scope": "PLAN", "kind": "MULTIPLIER", "multiplier": "2"}
    # The account's own settings win, field by field.
    own = await gql.data(
        'mutation { setAccountLimits(input: {accountExternalId: "user", '
        'allowedModels: ["big-*", "small-*"]}) { __typename } }'
    )
    assert own["setAccountLimits"]["__typename"] == "AccountLimits"
    assert (await authorize(gql, "user", 10, 10, model="big-model"))["__typename"] == "Authorized"
    assert (await authorize(gql, "user", 900, 200, model="big-model"))["reason"] == "LIMIT_EXCEEDED"


async def test_grandfathered_subscribers_keep_their_version_until_migrated(
    gql: GraphQLClient, db: Database
) -> None:
    await price_model(gql, "small-model")
    await price_model(gql, "big-model")
    v1 = await published_plan(gql, "team", credits=10_000, limits={"allowedModels": ["small-*"]})
    await subscriber(gql, "early", "team")
    draft = await gql.data(
        NEW_DRAFT,
        id=v1,
    )
    v2 = draft["createPlanVersion"]["id"]
    updated = await gql.data(
        "mutation($id: ID!, $input: PlanVersionInput!) { updatePlanVersion(id: $id, input: $input)"
        " { __typename } }",
        id=v2,
        input={"prices": [{"cycle": "MONTHLY", "currency": "USD", "amountMinor": 2900}],
               "includedCredits": 10_000, "limits": {"allowedModels": ["*"]}},
    )  # fmt: skip
    assert updated["updatePlanVersion"]["__typename"] == "PlanVersion"
    done = await publish(gql, v2, "NONE")
    assert done["affectedSubscribers"] == 1
    # The early subscriber keeps version 1's model list; a newcomer gets version 2.
    assert (await authorize(gql, "early", 5, 5, model="big-model"))["reason"] == "MODEL_NOT_ALLOWED"
    late = await subscriber(gql, "late", "team")
    assert late["planVersion"]["version"] == 2 and late["amountMinor"] == 2900
    assert (await authorize(gql, "late", 5, 5, model="big-model"))["__typename"] == "Authorized"
    notified = await gql.data(
        '{ notifications(accountExternalId: "early") { nodes { kind subject window } } }'
    )
    assert notified["notifications"]["nodes"] == [
        {"kind": "PLAN_PUBLISHED", "subject": "team", "window": f"version:{v2}"}
    ]

    later = await gql.data(MIGRATE, **{"from": v1, "to": v2, "effective": "NEXT_RENEWAL"})
    assert later["migrateSubscribers"] == {"__typename": "SubscribersMigrated", "moved": 1,
                                           "effective": "NEXT_RENEWAL"}  # fmt: skip
    sub = await gql.data('{ subscription(accountExternalId: "early") { nextPlanVersionId '
                         "planVersion { version } } }")  # fmt: skip
    assert sub["subscription"] == {"nextPlanVersionId": v2, "planVersion": {"version": 1}}
    assert (await authorize(gql, "early", 5, 5, model="big-model"))["reason"] == "MODEL_NOT_ALLOWED"
    now = await gql.data(MIGRATE, **{"from": v1, "to": v2, "effective": "IMMEDIATELY"})
    assert now["migrateSubscribers"]["moved"] == 1
    assert (await authorize(gql, "early", 5, 5, model="big-model"))["__typename"] == "Authorized"
    kinds = await _events(db)
    assert kinds.count("MIGRATION_SCHEDULED") == 1 and kinds.count("MIGRATED") == 1


async def test_publish_with_immediate_migration(gql: GraphQLClient) -> None:
    v1 = await published_plan(gql, "solo", credits=10)
    await subscriber(gql, "s1", "solo")
    created = await create_plan(gql, "other")
    assert created["__typename"] == "PlanVersion"
    draft = await gql.data(
        NEW_DRAFT,
        id=v1,
    )
    v2 = draft["createPlanVersion"]["id"]
    done = await publish(gql, v2, "IMMEDIATELY")
    assert (done["affectedSubscribers"], done["migrate"]) == (1, "IMMEDIATELY")
    sub = await gql.data('{ subscription(accountExternalId: "s1") { planVersion { id } } }')
    assert sub["subscription"]["planVersion"]["id"] == v2
