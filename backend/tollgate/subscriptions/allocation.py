"""A subscription's plan credits in the ledger: each period's allocation (a PLAN_ALLOCATION
grant expiring at the period's end), what rolls over, and what a change or cancel takes back.

Every booking's idempotency key names the subscription and the period, so repeating any step
books nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.errors import Rejected
from tollgate.ledger import forfeit
from tollgate.ledger.models import CreditGrant
from tollgate.ledger.requests import GrantRequest
from tollgate.ledger.service import Booked, grant_credits, utcnow
from tollgate.subscriptions.models import Subscription, SubscriptionPeriod

ACTOR = "system:subscriptions"


def _key(sub: Subscription, start: datetime, what: str) -> str:
    return f"plan:{sub.id}:{start.isoformat()}:{what}"


async def grant(
    session: AsyncSession,
    sub: Subscription,
    external_id: str,
    *,
    period: tuple[datetime, datetime],
    credits: int,
    what: str,
    reason: str,
) -> int | None:
    """Grant plan credits expiring at the period's end; None when there is nothing to grant
    (no credits, or a period already over: a late renewal does not hand out dead credits)."""
    if credits <= 0 or period[1] <= utcnow():
        return None
    booked = await grant_credits(
        session,
        GrantRequest(
            amount=credits,
            source="PLAN_ALLOCATION",
            idempotency_key=_key(sub, period[0], what),
            account_external_id=external_id,
            reason=reason,
            expires_at=period[1],
        ),
        actor=ACTOR,
    )
    if not isinstance(booked, Booked):
        raise Rejected(booked)
    grant_id = await session.scalar(
        select(CreditGrant.id).where(CreditGrant.transaction_id == booked.transaction_id)
    )
    assert grant_id is not None
    return int(grant_id)


async def period_row(
    session: AsyncSession, sub: Subscription, start: datetime
) -> SubscriptionPeriod | None:
    return await session.scalar(
        select(SubscriptionPeriod).where(
            SubscriptionPeriod.subscription_id == sub.id, SubscriptionPeriod.starts_at == start
        )
    )


async def take_back(
    session: AsyncSession,
    sub: Subscription,
    period: SubscriptionPeriod,
    credits: int,
    *,
    what: str,
    reason: str,
    now: datetime,
) -> int:
    """Remove up to `credits` of this period's unused plan credits."""
    if credits <= 0 or not period.grant_ids:
        return 0
    return await forfeit.forfeit(
        session,
        account_id=sub.account_id,
        grant_ids=period.grant_ids,
        amount=credits,
        idempotency_key=_key(sub, period.starts_at, what),
        actor=ACTOR,
        reason=reason,
        now=now,
    )


async def unused_at_end(session: AsyncSession, period: SubscriptionPeriod) -> int:
    """What the period's grants had left when they expired (the caller has locked the wallet
    after the period's end, which books those expiries)."""
    return await forfeit.expired_amounts(session, period.grant_ids)
