"""Subscriptions: subscribe, change plan with proration, cancel, and the status changes the
payment providers will drive. Each function runs in the caller's transaction; a failure found
after writing began raises `Rejected`, so nothing of it is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate import idempotency
from tollgate.accounts.models import Account
from tollgate.accounts.service import get_account
from tollgate.billing import service as billing
from tollgate.errors import (
    AccountNotFound,
    AlreadyExists,
    IdempotencyConflict,
    IllegalTransition,
    NotFound,
    Rejected,
    ValidationFailed,
)
from tollgate.plans import content as plan_rules
from tollgate.plans import service as plans
from tollgate.plans.content import VersionContent
from tollgate.plans.models import Plan, PlanVersion
from tollgate.subscriptions import allocation, lifecycle
from tollgate.subscriptions.lifecycle import ACTIVE, CANCELED, LIVE, PAST_DUE, TRIALING
from tollgate.subscriptions.models import Subscription, SubscriptionEvent, SubscriptionPeriod
from tollgate.subscriptions.periods import period_containing
from tollgate.subscriptions.proration import Proration, prorate

# A start this far in the future is refused: a subscription starts now or started earlier.
START_SLACK = timedelta(minutes=5)


def content_of(version: PlanVersion) -> VersionContent:
    return plan_rules.from_json(version.content)


async def record_event(
    session: AsyncSession,
    sub: Subscription,
    kind: str,
    *,
    at: datetime,
    actor: str,
    from_status: str | None = None,
    from_version: int | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        SubscriptionEvent(
            subscription_id=sub.id,
            account_id=sub.account_id,
            kind=kind,
            from_status=from_status,
            to_status=sub.status,
            from_plan_version_id=from_version,
            to_plan_version_id=sub.plan_version_id,
            currency=sub.currency,
            amount_minor=sub.amount_minor if sub.status in LIVE else 0,
            actor=actor,
            details=details or {},
            occurred_at=at,
        )
    )


async def live_subscription(
    session: AsyncSession, account_id: int, *, lock: bool = False
) -> Subscription | None:
    query = select(Subscription).where(
        Subscription.account_id == account_id, Subscription.status.in_(LIVE)
    )
    return await session.scalar(query.with_for_update() if lock else query)


@dataclass(frozen=True)
class SubscribeRequest:
    account_external_id: str
    plan_code: str
    cycle: str
    idempotency_key: str
    country: str | None = None
    start_at: datetime | None = None


async def _on_sale(session: AsyncSession, code: str) -> tuple[Plan, PlanVersion] | NotFound:
    plan = await plans.get_plan(session, code)
    if plan is None or plan.archived_at is not None:
        return NotFound(code, "no plan with this code on sale")
    version = await plans.current_version(session, plan.id)
    if version is None:
        return NotFound(code, "the plan has no published version")
    return plan, version


def _check_key(key: str) -> ValidationFailed | None:
    if not 0 < len(key) <= 200:
        return ValidationFailed("idempotencyKey", "1 to 200 characters")
    return None


async def _claim(
    session: AsyncSession, operation: str, key: str, params: dict[str, Any]
) -> Subscription | IdempotencyConflict | None:
    """None when the key is new (claimed now); the first result's subscription on a replay."""
    claim = await idempotency.claim(session, f"{operation}:{key}", operation, params)
    if isinstance(claim, idempotency.Conflict):
        return IdempotencyConflict(key)
    if isinstance(claim, idempotency.Replayed):
        sub = await session.get(Subscription, claim.response["subscriptionId"])
        assert sub is not None
        return sub
    return None


async def _store(session: AsyncSession, operation: str, key: str, sub: Subscription) -> None:
    await idempotency.store(session, f"{operation}:{key}", {"subscriptionId": sub.id})


async def start_period(
    session: AsyncSession,
    sub: Subscription,
    external_id: str,
    content: VersionContent,
    *,
    credits: int,
    charge: bool,
    reason: str,
) -> SubscriptionPeriod:
    """Allocate the current period's credits and bill it (once per subscription and period)."""
    period = (sub.current_period_start, sub.current_period_end)
    grant_id = await allocation.grant(
        session, sub, external_id, period=period, credits=credits, what="allocation", reason=reason
    )
    row = SubscriptionPeriod(
        subscription_id=sub.id,
        plan_version_id=sub.plan_version_id,
        starts_at=period[0],
        ends_at=period[1],
        allocated=credits if grant_id is not None else 0,
        grant_ids=[] if grant_id is None else [grant_id],
    )
    session.add(row)
    if charge and sub.amount_minor > 0:
        await billing.open_line(
            session,
            key=f"subscription:{sub.id}:{period[0].isoformat()}",
            account_id=sub.account_id,
            subscription_id=sub.id,
            kind="SUBSCRIPTION",
            description=f"{reason} ({sub.cycle.lower()})",
            currency=sub.currency,
            amount_minor=sub.amount_minor,
            period=period,
        )
    await session.flush()
    return row


async def subscribe(
    session: AsyncSession, request: SubscribeRequest, *, actor: str, now: datetime
) -> (
    Subscription
    | AccountNotFound
    | NotFound
    | ValidationFailed
    | AlreadyExists
    | IdempotencyConflict
):
    if (invalid := _check_key(request.idempotency_key)) is not None:
        return invalid
    start = request.start_at or now
    if start.tzinfo is None:
        return ValidationFailed("startAt", "needs a timezone")
    if start > now + START_SLACK:
        return ValidationFailed("startAt", "a subscription starts now or in the past")
    account = await get_account(session, request.account_external_id)
    if account is None:
        return AccountNotFound(request.account_external_id)
    found = await _on_sale(session, request.plan_code)
    if isinstance(found, NotFound):
        return found
    plan, version = found
    content = content_of(version)
    if request.country is not None and not plan_rules.COUNTRY.fullmatch(request.country.upper()):
        return ValidationFailed("country", "an ISO 3166 code such as PL")
    price = plan_rules.price_for(content, request.cycle, request.country)
    if price is None:
        return ValidationFailed("cycle", f"{plan.code} is not sold {request.cycle}")
    params = {
        "account": request.account_external_id,
        "plan": request.plan_code,
        "cycle": request.cycle,
        "country": request.country,
        "startAt": None if request.start_at is None else request.start_at.isoformat(),
    }
    replay = await _claim(session, "subscribe", request.idempotency_key, params)
    if replay is not None:
        return replay
    # Serialize subscribes of one account on its row; the unique index is the backstop.
    await session.execute(select(Account.id).where(Account.id == account.id).with_for_update())
    if await live_subscription(session, account.id) is not None:
        raise Rejected(
            AlreadyExists(
                "accountExternalId", "the account already has a live subscription; use changePlan"
            )
        )
    interval = content.interval(request.cycle)
    trial_end = start + timedelta(days=content.trial_days) if content.trial_days else None
    in_trial = trial_end is not None and trial_end > now
    anchor = trial_end if trial_end is not None else start
    if in_trial:
        assert trial_end is not None
        period = (start, trial_end)
    else:
        period = period_containing(anchor, interval, now)
    sub = Subscription(
        account_id=account.id,
        plan_version_id=version.id,
        status=TRIALING if in_trial else ACTIVE,
        cycle=request.cycle,
        interval_unit=interval.unit,
        interval_count=interval.count,
        country=price.country,
        currency=price.currency,
        amount_minor=price.amount_minor,
        trial_ends_at=trial_end,
        anchor_at=anchor,
        current_period_start=period[0],
        current_period_end=period[1],
    )
    session.add(sub)
    await session.flush()
    await start_period(
        session,
        sub,
        account.external_id,
        content,
        credits=content.included_credits,
        charge=not in_trial,
        reason=f"{plan.name} plan",
    )
    await record_event(
        session, sub, "SUBSCRIBED", at=now, actor=actor, details={"planCode": plan.code}
    )
    await _store(session, "subscribe", request.idempotency_key, sub)
    return sub


@dataclass(frozen=True)
class ChangeRequest:
    account_external_id: str
    plan_code: str
    idempotency_key: str
    cycle: str | None = None  # None: keep the current cycle


@dataclass(frozen=True)
class ChangeQuote:
    """What a plan change would do, without doing it: the preview and the change share it."""

    sub: Subscription
    plan: Plan
    version: PlanVersion
    content: VersionContent
    old_content: VersionContent
    cycle: str
    currency: str
    amount_minor: int
    new_period: tuple[datetime, datetime] | None  # set when the billing interval changes
    proration: Proration


async def quote_change(
    session: AsyncSession, request: ChangeRequest, now: datetime, *, lock: bool
) -> ChangeQuote | AccountNotFound | NotFound | ValidationFailed | IllegalTransition:
    account = await get_account(session, request.account_external_id)
    if account is None:
        return AccountNotFound(request.account_external_id)
    sub = await live_subscription(session, account.id, lock=lock)
    if sub is None:
        return NotFound(request.account_external_id, "the account has no live subscription")
    found = await _on_sale(session, request.plan_code)
    if isinstance(found, NotFound):
        return found
    plan, version = found
    cycle = request.cycle or sub.cycle
    if version.id == sub.plan_version_id and cycle == sub.cycle:
        return IllegalTransition(
            str(sub.id), sub.status, "changePlan", "already on this plan and cycle"
        )
    content = content_of(version)
    price = plan_rules.price_for(content, cycle, sub.country)
    if price is None:
        return ValidationFailed("cycle", f"{plan.code} is not sold {cycle}")
    old_version = await session.get(PlanVersion, sub.plan_version_id)
    assert old_version is not None
    interval = content.interval(cycle)
    same_interval = (interval.unit, interval.count) == (sub.interval_unit, sub.interval_count)
    paying = sub.status != TRIALING
    # A trial keeps its end; the new interval counts from there.
    new_period = None if same_interval or not paying else (now, interval.after(now))
    old_content = content_of(old_version)
    proration = prorate(
        period_start=sub.current_period_start,
        period_end=sub.current_period_end,
        at=now,
        old_amount=sub.amount_minor if paying else 0,
        new_amount=price.amount_minor if paying else 0,
        old_credits=old_content.included_credits,
        new_credits=content.included_credits,
        new_period=new_period is not None,
    )
    return ChangeQuote(
        sub,
        plan,
        version,
        content,
        old_content,
        cycle,
        price.currency,
        price.amount_minor,
        new_period,
        proration,
    )


async def change_plan(
    session: AsyncSession, request: ChangeRequest, *, actor: str, now: datetime
) -> (
    Subscription
    | AccountNotFound
    | NotFound
    | ValidationFailed
    | IllegalTransition
    | IdempotencyConflict
):
    if (invalid := _check_key(request.idempotency_key)) is not None:
        return invalid
    params = {
        "account": request.account_external_id,
        "plan": request.plan_code,
        "cycle": request.cycle,
    }
    replay = await _claim(session, "changePlan", request.idempotency_key, params)
    if replay is not None:
        return replay
    quote = await quote_change(session, request, now, lock=True)
    if not isinstance(quote, ChangeQuote):
        raise Rejected(quote)
    sub, p = quote.sub, quote.proration
    account = await session.get(Account, sub.account_id)
    assert account is not None
    stamp = now.isoformat()
    current = await allocation.period_row(session, sub, sub.current_period_start)
    clawed = 0
    if current is not None:
        clawed = await allocation.take_back(
            session,
            sub,
            current,
            p.clawback_credits,
            what=f"change:{stamp}",
            reason="plan change: unused share of the old plan",
            now=now,
        )
    if p.credit_minor:
        await billing.open_line(
            session,
            key=f"proration-credit:{sub.id}:{stamp}",
            account_id=sub.account_id,
            subscription_id=sub.id,
            kind="PRORATION_CREDIT",
            description="unused time of the previous plan",
            currency=sub.currency,
            amount_minor=-p.credit_minor,
            period=(now, sub.current_period_end),
        )
    old_version, old_status = sub.plan_version_id, sub.status
    sub.plan_version_id, sub.cycle = quote.version.id, quote.cycle
    sub.currency, sub.amount_minor = quote.currency, quote.amount_minor
    sub.next_plan_version_id = None
    interval = quote.content.interval(quote.cycle)
    sub.interval_unit, sub.interval_count = interval.unit, interval.count
    granted = 0
    if quote.new_period is not None:
        sub.anchor_at = now
        sub.current_period_start, sub.current_period_end = quote.new_period
        await session.flush()
        row = await start_period(
            session,
            sub,
            account.external_id,
            quote.content,
            credits=p.grant_credits,
            charge=False,
            reason=f"{quote.plan.name} plan",
        )
        granted = row.allocated
    else:
        grant_id = await allocation.grant(
            session,
            sub,
            account.external_id,
            period=(sub.current_period_start, sub.current_period_end),
            credits=p.grant_credits,
            what=f"change:{stamp}:grant",
            reason=f"plan change: {quote.plan.name} for the rest of the period",
        )
        if grant_id is not None and current is not None:
            current.grant_ids = [*current.grant_ids, grant_id]
            current.allocated += p.grant_credits
            granted = p.grant_credits
    if p.charge_minor:
        end = sub.current_period_end
        await billing.open_line(
            session,
            key=f"proration-charge:{sub.id}:{stamp}",
            account_id=sub.account_id,
            subscription_id=sub.id,
            kind="PRORATION_CHARGE",
            description=f"{quote.plan.name} plan from {now:%Y-%m-%d}",
            currency=sub.currency,
            amount_minor=p.charge_minor,
            period=(now, end),
        )
    sub.updated_at = now
    await session.flush()
    await record_event(
        session,
        sub,
        "PLAN_CHANGED",
        at=now,
        actor=actor,
        from_status=old_status,
        from_version=old_version,
        details={
            "creditMinor": p.credit_minor,
            "chargeMinor": p.charge_minor,
            "creditsTakenBack": clawed,
            "creditsGranted": granted,
            "newPeriod": quote.new_period is not None,
        },
    )
    await _store(session, "changePlan", request.idempotency_key, sub)
    return sub


async def latest_subscription(
    session: AsyncSession, account_id: int, *, lock: bool = False
) -> Subscription | None:
    """The account's live subscription, else its most recent one."""
    query = (
        select(Subscription)
        .where(Subscription.account_id == account_id)
        .order_by(Subscription.status.in_(LIVE).desc(), Subscription.id.desc())
        .limit(1)
    )
    return await session.scalar(query.with_for_update() if lock else query)


async def _by_account(
    session: AsyncSession, external_id: str
) -> Subscription | AccountNotFound | NotFound:
    account = await get_account(session, external_id)
    if account is None:
        return AccountNotFound(external_id)
    sub = await latest_subscription(session, account.id, lock=True)
    if sub is None:
        return NotFound(external_id, "the account has no subscription")
    return sub


async def cancel(
    session: AsyncSession,
    account_external_id: str,
    *,
    at_period_end: bool,
    actor: str,
    now: datetime,
) -> Subscription | AccountNotFound | NotFound | IllegalTransition:
    sub = await _by_account(session, account_external_id)
    if not isinstance(sub, Subscription):
        return sub
    if not lifecycle.can_move(sub.status, CANCELED):
        return IllegalTransition(
            str(sub.id),
            sub.status,
            "cancelSubscription",
            f"a {sub.status.lower()} subscription cannot be canceled",
        )
    if at_period_end:
        if sub.cancel_at_period_end:
            return IllegalTransition(
                str(sub.id),
                sub.status,
                "cancelSubscription",
                "already set to cancel at the period's end",
            )
        sub.cancel_at_period_end, sub.updated_at = True, now
        await session.flush()
        await record_event(
            session, sub, "CANCEL_SCHEDULED", at=now, actor=actor, from_status=sub.status
        )
        return sub
    await end(session, sub, CANCELED, actor=actor, now=now, event="CANCELED")
    current = await allocation.period_row(session, sub, sub.current_period_start)
    if current is not None:
        await allocation.take_back(
            session,
            sub,
            current,
            current.allocated + current.rolled_over,
            what="cancel",
            reason="subscription canceled: plan credits end with it",
            now=now,
        )
    return sub


async def end(
    session: AsyncSession, sub: Subscription, status: str, *, actor: str, now: datetime, event: str
) -> None:
    before = sub.status
    if not lifecycle.can_move(before, status):
        raise Rejected(
            IllegalTransition(str(sub.id), before, event, f"{before} cannot become {status}")
        )
    sub.status, sub.updated_at, sub.ended_at = status, now, now
    if status == CANCELED:
        sub.canceled_at = now
    await session.flush()
    await record_event(session, sub, event, at=now, actor=actor, from_status=before)


async def move(
    session: AsyncSession, sub: Subscription, status: str, *, actor: str, now: datetime, event: str
) -> IllegalTransition | None:
    """A status change that keeps the subscription live (PAST_DUE ↔ ACTIVE, trial → ACTIVE)."""
    before = sub.status
    if not lifecycle.can_move(before, status):
        return IllegalTransition(str(sub.id), before, event, f"{before} cannot become {status}")
    sub.status, sub.updated_at = status, now
    await session.flush()
    await record_event(session, sub, event, at=now, actor=actor, from_status=before)
    return None


async def mark_past_due(
    session: AsyncSession, sub: Subscription, *, actor: str, now: datetime
) -> IllegalTransition | None:
    """A renewal payment failed (the payment providers call this)."""
    return await move(session, sub, PAST_DUE, actor=actor, now=now, event="PAST_DUE")


async def reactivate(
    session: AsyncSession, sub: Subscription, *, actor: str, now: datetime
) -> IllegalTransition | None:
    """The overdue payment arrived."""
    return await move(session, sub, ACTIVE, actor=actor, now=now, event="REACTIVATED")


async def history(session: AsyncSession, subscription_id: int) -> list[SubscriptionEvent]:
    return list(
        await session.scalars(
            select(SubscriptionEvent)
            .where(SubscriptionEvent.subscription_id == subscription_id)
            .order_by(SubscriptionEvent.id)
        )
    )


async def count_live(session: AsyncSession, version_ids: list[int]) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(
                Subscription.plan_version_id.in_(version_ids), Subscription.status.in_(LIVE)
            )
        )
        or 0
    )
