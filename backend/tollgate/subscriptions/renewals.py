"""Renewals: at each period's end, roll over or let expire what is left, allocate the next
period's credits, advance the period and bill it. The arq cron job calls `renew_due`.

Exactly once per subscription and period, however the job runs: each renewal is one
transaction holding the subscription's row lock (a concurrent run skips a locked row and
re-reads the period under the lock), the period row is unique per subscription and start, and
every ledger booking's key names the period. A run killed midway rolls back whole; the next run
finds the same subscription still due.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account
from tollgate.db import Database
from tollgate.ledger import wallets
from tollgate.live import publish as live
from tollgate.plans.content import price_for
from tollgate.plans.models import Plan, PlanVersion
from tollgate.subscriptions import allocation
from tollgate.subscriptions.lifecycle import ACTIVE, CANCELED, EXPIRED, LIVE, PAST_DUE, TRIALING
from tollgate.subscriptions.models import Subscription
from tollgate.subscriptions.periods import Interval, period_containing
from tollgate.subscriptions.service import content_of, end, move, record_event, start_period

log = logging.getLogger(__name__)
ACTOR = "system:renewals"
# How long a PAST_DUE subscription keeps its plan before it expires.
PAST_DUE_GRACE = timedelta(days=14)


async def renew_due(
    db: Database, *, now: datetime, batch: int = 200, redis: Redis | None = None
) -> int:
    """Renew every subscription whose period has ended; returns the steps taken. With `redis`,
    live subscribers hear of each account's new balance once all is committed."""
    renewed = 0
    touched: set[int] = set()
    while True:
        async with db.transaction() as session:
            due = list(
                await session.scalars(
                    select(Subscription.id)
                    .where(
                        Subscription.status.in_(LIVE),
                        Subscription.current_period_end <= now,
                        # PAST_DUE ones wait out their grace without blocking the queue.
                        or_(
                            Subscription.status != PAST_DUE,
                            Subscription.current_period_end <= now - PAST_DUE_GRACE,
                        ),
                    )
                    .order_by(Subscription.current_period_end)
                    .limit(batch)
                )
            )
        progressed = 0
        for sub_id in due:
            async with db.transaction() as session:
                if await renew_one(session, sub_id, now=now):
                    progressed += 1
                    touched.add(sub_id)
        renewed += progressed
        # A subscription behind by several periods is due again after each step. Locked rows
        # (another run has them) make no progress: stop then.
        if progressed == 0:
            if redis is not None and touched:
                await _announce(db, redis, touched)
            return renewed


async def renew_one(session: AsyncSession, sub_id: int, *, now: datetime) -> bool:
    """One step for one subscription: end it, or renew one period. False when there was
    nothing to do (not due any more, or another run holds it)."""
    sub = await session.scalar(
        select(Subscription).where(Subscription.id == sub_id).with_for_update(skip_locked=True)
    )
    if sub is None or sub.status not in LIVE or sub.current_period_end > now:
        return False
    if sub.cancel_at_period_end:
        await end(session, sub, CANCELED, actor=ACTOR, now=now, event="CANCELED")
        return True
    if sub.status == PAST_DUE:
        if sub.current_period_end + PAST_DUE_GRACE > now:
            return False
        await end(session, sub, EXPIRED, actor=ACTOR, now=now, event="EXPIRED")
        return True
    await _renew(session, sub, now)
    return True


async def _renew(session: AsyncSession, sub: Subscription, now: datetime) -> None:
    account = await session.get(Account, sub.account_id)
    assert account is not None
    # Locking the wallet books the expiry of the ending period's grants: what they had left
    # is then on the books, and rolls over from there.
    await wallets.lock(session, await wallets.account_wallet_id(session, account.id), now=now)
    ending = await allocation.period_row(session, sub, sub.current_period_start)
    old_version = await session.get(PlanVersion, sub.plan_version_id)
    assert old_version is not None
    old_content = content_of(old_version)
    left = await allocation.unused_at_end(session, ending) if ending is not None else 0
    from_version, from_status = sub.plan_version_id, sub.status
    if sub.status == TRIALING:
        await move(session, sub, ACTIVE, actor=ACTOR, now=now, event="TRIAL_ENDED")
    version = old_version
    if sub.next_plan_version_id is not None:
        migrated = await session.get(PlanVersion, sub.next_plan_version_id)
        assert migrated is not None
        version = migrated
        sub.plan_version_id, sub.next_plan_version_id = migrated.id, None
        price = _price(migrated, sub)
        if price is not None:
            sub.currency, sub.amount_minor = price
    content = content_of(version)
    interval = Interval(sub.interval_unit, sub.interval_count)
    start = sub.current_period_end
    sub.current_period_start = start
    sub.current_period_end = period_containing(sub.anchor_at, interval, start)[1]
    sub.updated_at = now
    await session.flush()
    plan = await session.get(Plan, version.plan_id)
    assert plan is not None
    row = await start_period(
        session,
        sub,
        account.external_id,
        content,
        credits=content.included_credits,
        charge=True,
        reason=f"{plan.name} plan renewal",
    )
    rolled = old_content.rollover_limit(ending.allocated if ending else 0, left)
    grant_id = await allocation.grant(
        session,
        sub,
        account.external_id,
        period=(start, sub.current_period_end),
        credits=rolled,
        what="rollover",
        reason="unused plan credits rolled over",
    )
    if grant_id is not None:
        row.rolled_over = rolled
        row.grant_ids = [*row.grant_ids, grant_id]
    await session.flush()
    await record_event(
        session,
        sub,
        "RENEWED",
        at=now,
        actor=ACTOR,
        from_status=from_status,
        from_version=from_version,
        details={
            "periodStart": start.isoformat(),
            "allocated": row.allocated,
            "rolledOver": row.rolled_over,
            "expired": left - row.rolled_over,
        },
    )


def _price(version: PlanVersion, sub: Subscription) -> tuple[str, int] | None:
    price = price_for(content_of(version), sub.cycle, sub.country)
    return None if price is None else (price.currency, price.amount_minor)


async def _announce(db: Database, redis: Redis, subscription_ids: set[int]) -> None:
    async with db.transaction() as session:
        external_ids = list(
            await session.scalars(
                select(Account.external_id)
                .join(Subscription, Subscription.account_id == Account.id)
                .where(Subscription.id.in_(subscription_ids))
            )
        )
    for external_id in external_ids:
        await live.publish_account_balance(db, redis, external_id, "PLAN")
