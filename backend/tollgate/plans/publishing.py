"""Publishing a plan version, and moving subscribers between versions (grandfathering).

Subscribers stay on the version they bought. Publishing may migrate the plan's subscribers of
older versions NONE (they stay), at their NEXT_RENEWAL, or IMMEDIATELY. Either way each affected
subscriber gets one notification, and an event on the Redis channel tells live screens after
commit. An immediate migration switches limits, models and pricing policy now; the new price
and allocation apply from the next renewal, so no one is billed twice for a period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.errors import IllegalTransition, NotFound, Rejected, ValidationFailed
from tollgate.live import publish as live
from tollgate.notifications.service import notify_once
from tollgate.plans import content as rules
from tollgate.plans import service as plans
from tollgate.plans.models import Plan, PlanVersion
from tollgate.subscriptions.lifecycle import LIVE
from tollgate.subscriptions.models import Subscription
from tollgate.subscriptions.service import record_event

NONE, NEXT_RENEWAL, IMMEDIATELY = "NONE", "NEXT_RENEWAL", "IMMEDIATELY"
MIGRATIONS = (NONE, NEXT_RENEWAL, IMMEDIATELY)


@dataclass
class Published:
    version: PlanVersion
    plan: Plan
    migrate: str
    affected: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def event(self) -> dict[str, Any]:
        assert self.version.published_at is not None
        return {
            "planCode": self.plan.code,
            "versionId": str(self.version.id),
            "version": self.version.version,
            "publishedAt": self.version.published_at.isoformat(),
            "migrate": self.migrate,
        }


@dataclass
class Migrated:
    moved: int
    effective: str
    alerts: list[dict[str, Any]] = field(default_factory=list)


async def publish(
    session: AsyncSession, version_id: int, migrate: str, *, actor: str, now: datetime
) -> Published | NotFound | IllegalTransition | ValidationFailed:
    if migrate not in MIGRATIONS:
        return ValidationFailed("migrate", f"one of {', '.join(MIGRATIONS)}")
    version = await plans.publish(session, version_id, now)
    if not isinstance(version, PlanVersion):
        return version
    plan = await session.get(Plan, version.plan_id)
    assert plan is not None
    published = Published(version, plan, migrate)
    older = list(
        await session.scalars(
            select(PlanVersion.id).where(
                PlanVersion.plan_id == plan.id,
                PlanVersion.status == plans.PUBLISHED,
                PlanVersion.id != version.id,
            )
        )
    )
    subs = await _live_on(session, older)
    if migrate != NONE:
        moved = await _move(session, subs, version, migrate, actor=actor, now=now)
        if isinstance(moved, ValidationFailed):
            raise Rejected(moved)
    published.affected = len(subs)
    published.alerts = await _notify(session, subs, plan, version, migrate)
    return published


async def _live_on(session: AsyncSession, version_ids: list[int]) -> list[Subscription]:
    if not version_ids:
        return []
    return list(
        await session.scalars(
            select(Subscription)
            .where(Subscription.plan_version_id.in_(version_ids), Subscription.status.in_(LIVE))
            .order_by(Subscription.id)
            .with_for_update()
        )
    )


async def _move(
    session: AsyncSession,
    subs: list[Subscription],
    to: PlanVersion,
    effective: str,
    *,
    actor: str,
    now: datetime,
) -> int | ValidationFailed:
    content = rules.from_json(to.content)
    for sub in subs:
        if rules.price_for(content, sub.cycle, sub.country) is None:
            return ValidationFailed(
                "toVersionId",
                f"version {to.version} is not sold {sub.cycle}, which subscriber {sub.id} pays",
            )
    for sub in subs:
        before = sub.plan_version_id
        if effective == IMMEDIATELY:
            sub.plan_version_id, sub.next_plan_version_id = to.id, None
            kind = "MIGRATED"
        else:
            sub.next_plan_version_id = to.id
            kind = "MIGRATION_SCHEDULED"
        sub.updated_at = now
        await session.flush()
        await record_event(
            session,
            sub,
            kind,
            at=now,
            actor=actor,
            from_status=sub.status,
            from_version=before,
            details={"toVersionId": to.id, "effective": effective},
        )
    return len(subs)


async def _notify(
    session: AsyncSession, subs: list[Subscription], plan: Plan, version: PlanVersion, migrate: str
) -> list[dict[str, Any]]:
    alerts = []
    for sub in subs:
        alert = await notify_once(
            session,
            account_id=sub.account_id,
            kind="PLAN_PUBLISHED",
            subject=plan.code,
            window=f"version:{version.id}",
            payload={"planCode": plan.code, "version": version.version, "migrate": migrate},
        )
        if alert is not None:
            alerts.append(alert)
    return alerts


async def migrate_subscribers(
    session: AsyncSession,
    from_version_id: int,
    to_version_id: int,
    effective: str,
    *,
    actor: str,
    now: datetime,
) -> Migrated | NotFound | ValidationFailed | IllegalTransition:
    if effective not in (NEXT_RENEWAL, IMMEDIATELY):
        return ValidationFailed("effective", "NEXT_RENEWAL or IMMEDIATELY")
    source = await session.get(PlanVersion, from_version_id)
    target = await session.get(PlanVersion, to_version_id)
    if source is None:
        return NotFound(str(from_version_id), "no plan version with this id")
    if target is None:
        return NotFound(str(to_version_id), "no plan version with this id")
    if target.status != plans.PUBLISHED:
        return IllegalTransition(
            str(to_version_id),
            target.status,
            "migrateSubscribers",
            "migrate only to a published version",
        )
    if source.id == target.id:
        return ValidationFailed("toVersionId", "the same version")
    subs = await _live_on(session, [source.id])
    moved = await _move(session, subs, target, effective, actor=actor, now=now)
    if isinstance(moved, ValidationFailed):
        return moved
    plan = await session.get(Plan, target.plan_id)
    assert plan is not None
    alerts = await _notify(session, subs, plan, target, effective)
    return Migrated(moved, effective, alerts)


async def announce(redis: Redis, published: Published) -> None:
    """After commit: tell live screens a version was published."""
    await live.publish_pricing_published(redis, published.event())
