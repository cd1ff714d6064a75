"""Renewals: one allocation per subscription and period whether the job runs once, twice,
concurrently, or is killed midway; rollover by rule; trials, cancellations and migrations
taking effect at the period's end."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import GraphQLClient
from tests.plan_helpers import CANCEL, NEW_DRAFT, balance, publish, published_plan, subscriber
from tollgate.accounts.models import Account
from tollgate.billing.models import InvoiceLine
from tollgate.config import Settings
from tollgate.db import Database
from tollgate.ledger import wallets
from tollgate.ledger.models import CreditGrant
from tollgate.subscriptions import service
from tollgate.subscriptions.models import Subscription, SubscriptionEvent, SubscriptionPeriod
from tollgate.subscriptions.renewals import PAST_DUE_GRACE, renew_due


async def _sub(db: Database, account: str) -> Subscription:
    async with db.transaction() as session:
        sub = await session.scalar(
            select(Subscription).join(Account).where(Account.external_id == account)
            .order_by(Subscription.id.desc()).limit(1)
        )  # fmt: skip
        assert sub is not None
        return sub


async def _counts(db: Database, sub_id: int) -> tuple[int, int, int]:
    """(periods, plan allocation grants, subscription invoice lines) of a subscription."""
    async with db.transaction() as session:
        periods = await session.scalar(
            select(func.count()).where(SubscriptionPeriod.subscription_id == sub_id)
        )
        grants = await session.scalar(
            select(func.count()).where(CreditGrant.source == "PLAN_ALLOCATION")
        )
        lines = await session.scalar(
            select(func.count()).where(
                InvoiceLine.subscription_id == sub_id, InvoiceLine.kind == "SUBSCRIPTION"
            )
        )
    return int(periods or 0), int(grants or 0), int(lines or 0)


async def _spend(gql: GraphQLClient, account: str, credits: int) -> None:
    data = await gql.data(
        "mutation($input: DeductCreditsInput!) { deductCredits(input: $input) { __typename } }",
        input={
            "accountExternalId": account,
            "amount": credits,
            "idempotencyKey": f"spend-{account}",
        },
    )
    assert data["deductCredits"]["__typename"] == "LedgerSuccess"


async def test_a_renewal_allocates_once_however_often_it_runs(
    gql: GraphQLClient, db: Database
) -> None:
    await published_plan(gql, "starter", credits=1000)
    await subscriber(gql, "ada", "starter")
    sub = await _sub(db, "ada")
    due = sub.current_period_end + timedelta(seconds=1)
    assert await renew_due(db, now=sub.current_period_end - timedelta(seconds=1)) == 0
    assert await renew_due(db, now=due) == 1
    assert await renew_due(db, now=due) == 0
    after = await _sub(db, "ada")
    assert after.current_period_start == sub.current_period_end
    assert after.current_period_end > after.current_period_start
    assert await _counts(db, sub.id) == (2, 2, 2)
    # The first period's grant expired at its end; the new one is all that is left.
    assert await balance(gql, "ada") == 1000


async def test_concurrent_runs_renew_each_period_once(gql: GraphQLClient, db: Database) -> None:
    await published_plan(gql, "starter", credits=1000)
    for name in ("a", "b", "c"):
        await subscriber(gql, name, "starter")
    subs = [await _sub(db, n) for n in ("a", "b", "c")]
    due = max(s.current_period_end for s in subs) + timedelta(seconds=1)
    results = await asyncio.gather(*(renew_due(db, now=due) for _ in range(4)))
    assert sum(results) == 3
    for s in subs:
        assert (await _counts(db, s.id))[0] == 2
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(InvoiceLine)) == 6


@pytest.mark.parametrize(
    ("rule", "cap", "expected"), [("NONE", None, 0), ("CAP", 25, 250), ("UNLIMITED", None, 600)]
)
async def test_rollover_by_rule(
    gql: GraphQLClient, db: Database, rule: str, cap: int | None, expected: int
) -> None:
    await published_plan(gql, "plan", credits=1000, rollover=rule, rolloverCapPercent=cap)
    await subscriber(gql, "roller", "plan")
    await _spend(gql, "roller", 400)  # 600 left at the period's end
    sub = await _sub(db, "roller")
    assert await renew_due(db, now=sub.current_period_end + timedelta(seconds=1)) == 1
    assert await balance(gql, "roller") == 1000 + expected
    async with db.transaction() as session:
        event = await session.scalar(
            select(SubscriptionEvent).where(SubscriptionEvent.kind == "RENEWED")
        )
        assert event is not None
        assert (event.details["rolledOver"], event.details["expired"]) == (expected, 600 - expected)


async def test_trial_end_cancellation_and_scheduled_migration(
    gql: GraphQLClient, db: Database
) -> None:
    await published_plan(gql, "pro", monthly=4900, credits=100, trialDays=7)
    await subscriber(gql, "trier", "pro")
    await subscriber(gql, "quitter", "pro")
    assert (await gql.data(CANCEL, id="quitter", atEnd=True))["cancelSubscription"][
        "cancelAtPeriodEnd"
    ]
    trial = await _sub(db, "trier")
    assert await renew_due(db, now=trial.current_period_end + timedelta(seconds=1)) == 2
    trier, quitter = await _sub(db, "trier"), await _sub(db, "quitter")
    assert (trier.status, quitter.status) == ("ACTIVE", "CANCELED")
    assert trier.current_period_start == trial.trial_ends_at
    async with db.transaction() as session:
        kinds = list(await session.scalars(
            select(SubscriptionEvent.kind).where(SubscriptionEvent.subscription_id == trier.id)
            .order_by(SubscriptionEvent.id)
        ))  # fmt: skip
        line = await session.scalar(
            select(InvoiceLine).where(InvoiceLine.subscription_id == trier.id)
        )
    assert kinds == ["SUBSCRIBED", "TRIAL_ENDED", "RENEWED"]
    assert line is not None and line.amount_minor == 4900


async def test_catching_up_after_downtime_bills_each_missed_period(
    gql: GraphQLClient, db: Database
) -> None:
    await published_plan(gql, "daily", credits=10, prices=[
        {"cycle": "CUSTOM", "currency": "USD", "amountMinor": 100}],
        customInterval={"unit": "DAY", "count": 1})  # fmt: skip
    await subscriber(gql, "sleepy", "daily", cycle="CUSTOM")
    sub = await _sub(db, "sleepy")
    assert await renew_due(db, now=sub.current_period_end + timedelta(days=2, hours=1)) == 3
    assert (await _counts(db, sub.id))[2] == 4
    assert (await _sub(db, "sleepy")).current_period_end > sub.current_period_end + timedelta(
        days=2
    )


KILLED_RUN = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import datetime
    from tollgate.config import Settings
    from tollgate.db import Database, create_engine
    from tollgate.subscriptions import allocation, renewals

    grant = allocation.grant

    async def grant_then_hang(*args, **kwargs):
        granted = await grant(*args, **kwargs)
        print("granted", flush=True)
        await asyncio.sleep(600)
        return granted

    allocation.grant = grant_then_hang

    async def main():
        settings = Settings(database_url=sys.argv[1], redis_url="redis://unused")
        db = Database(create_engine(settings))
        await renewals.renew_due(db, now=datetime.fromisoformat(sys.argv[2]))

    asyncio.run(main())
    """
)


async def test_a_run_killed_midway_books_nothing_and_the_rerun_books_once(
    gql: GraphQLClient, db: Database, settings: Settings
) -> None:
    await published_plan(gql, "starter", credits=1000)
    await subscriber(gql, "ada", "starter")
    sub = await _sub(db, "ada")
    due = sub.current_period_end + timedelta(seconds=1)
    process = subprocess.Popen(  # noqa: ASYNC220 - read in a thread below
        [sys.executable, "-c", KILLED_RUN, settings.database_url, due.isoformat()],
        stdout=subprocess.PIPE, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        assert line.strip() == "granted"
        # The allocation is written, but not committed, when the process dies.
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert await _counts(db, sub.id) == (1, 1, 1)
    assert await renew_due(db, now=due) == 1
    assert await renew_due(db, now=due) == 0
    assert await _counts(db, sub.id) == (2, 2, 2)


async def test_usage_after_the_period_end_expires_then_rolls_over(
    gql: GraphQLClient, db: Database
) -> None:
    """A booking that locks the wallet after the period's end expires the old grant before the
    job runs: the rollover still finds what was left."""
    await published_plan(gql, "plan", credits=1000, rollover="UNLIMITED")
    await subscriber(gql, "busy", "plan")
    await _spend(gql, "busy", 100)
    sub = await _sub(db, "busy")
    async with db.transaction() as session:
        wallet_id = await wallets.account_wallet_id(session, sub.account_id)
        locked = await wallets.lock(session, wallet_id, now=sub.current_period_end)
        assert locked.expired == 1
    assert await renew_due(db, now=sub.current_period_end + timedelta(seconds=1)) == 1
    assert await balance(gql, "busy") == 1900


async def test_past_due_waits_out_its_grace_then_expires(gql: GraphQLClient, db: Database) -> None:
    await published_plan(gql, "starter", credits=1000)
    await subscriber(gql, "late-payer", "starter")
    await subscriber(gql, "good-payer", "starter")
    sub = await _sub(db, "late-payer")
    async with db.transaction() as session:
        locked = await session.get(Subscription, sub.id, with_for_update=True)
        assert locked is not None
        now = sub.current_period_end - timedelta(days=1)
        assert await service.mark_past_due(session, locked, actor="test", now=now) is None
        twice = await service.mark_past_due(session, locked, actor="test", now=now)
        assert twice is not None and twice.status == "PAST_DUE"
    end = sub.current_period_end + timedelta(seconds=1)
    # The good payer renews; the late one keeps waiting inside its grace period.
    assert await renew_due(db, now=end) == 1
    assert (await _sub(db, "late-payer")).status == "PAST_DUE"
    assert await renew_due(db, now=end + PAST_DUE_GRACE) == 1
    expired = await _sub(db, "late-payer")
    assert (expired.status, expired.ended_at is not None) == ("EXPIRED", True)
    async with db.transaction() as session:
        final = await session.get(Subscription, sub.id)
        assert final is not None
        refused = await service.reactivate(session, final, actor="test", now=end)
        assert refused is not None and refused.action == "REACTIVATED"


async def test_a_migration_for_the_next_renewal_takes_effect_there(
    gql: GraphQLClient, db: Database
) -> None:
    v1 = await published_plan(gql, "team", monthly=9900, credits=1000)
    await subscriber(gql, "loyal", "team")
    draft = await gql.data(NEW_DRAFT, id=v1)
    v2 = draft["createPlanVersion"]["id"]
    await gql.data(
        "mutation($id: ID!, $input: PlanVersionInput!) { updatePlanVersion(id: $id, input: $input)"
        " { __typename } }",
        id=v2,
        input={"prices": [{"cycle": "MONTHLY", "currency": "USD", "amountMinor": 14900}],
               "includedCredits": 3000},
    )  # fmt: skip
    done = await publish(gql, v2, "NEXT_RENEWAL")
    assert done["affectedSubscribers"] == 1
    sub = await _sub(db, "loyal")
    assert (sub.plan_version_id, sub.next_plan_version_id) == (int(v1), int(v2))
    assert await renew_due(db, now=sub.current_period_end + timedelta(seconds=1)) == 1
    renewed = await _sub(db, "loyal")
    assert (renewed.plan_version_id, renewed.next_plan_version_id) == (int(v2), None)
    assert renewed.amount_minor == 14900
    assert await balance(gql, "loyal") == 3000
    async with db.transaction() as session:
        amounts = list(
            await session.scalars(
                select(InvoiceLine.amount_minor)
                .where(InvoiceLine.subscription_id == sub.id)
                .order_by(InvoiceLine.id)
            )
        )
    assert amounts == [9900, 14900]
