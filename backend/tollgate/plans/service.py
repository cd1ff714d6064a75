"""Features, plans and plan versions: create, edit drafts, publish, archive, look up.

A version is a DRAFT until published and never changes afterwards; editing a published plan
means creating a new draft from it. Each plan has at most one draft. The plan's current version
is its latest published one: new subscribers get it, existing ones keep theirs
(grandfathering) unless migrated (see publishing.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.errors import AlreadyExists, IllegalTransition, NotFound, ValidationFailed
from tollgate.plans import content as rules
from tollgate.plans.content import VersionContent
from tollgate.plans.models import FEATURE_KINDS, Feature, Plan, PlanVersion

CODE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}", re.ASCII)
DRAFT, PUBLISHED = "DRAFT", "PUBLISHED"


def check_code(field: str, code: str) -> ValidationFailed | None:
    if not CODE.fullmatch(code):
        return ValidationFailed(
            field, "1-100 of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
        )
    return None


def _check_text(field: str, value: str, limit: int, *, required: bool) -> ValidationFailed | None:
    if required and not value.strip():
        return ValidationFailed(field, "required")
    if len(value) > limit:
        return ValidationFailed(field, f"at most {limit} characters")
    return None


@dataclass(frozen=True)
class FeatureInput:
    key: str
    name: str
    kind: str
    description: str = ""
    unit: str | None = None


async def upsert_feature(session: AsyncSession, given: FeatureInput) -> Feature | ValidationFailed:
    invalid = (
        check_code("key", given.key)
        or _check_text("name", given.name, 200, required=True)
        or _check_text("description", given.description, 2000, required=False)
        or (None if given.unit is None else _check_text("unit", given.unit, 50, required=True))
    )
    if invalid is not None:
        return invalid
    if given.kind not in FEATURE_KINDS:
        return ValidationFailed("kind", f"one of {', '.join(FEATURE_KINDS)}")
    values = {
        "name": given.name,
        "kind": given.kind,
        "description": given.description,
        "unit": given.unit,
        "updated_at": func.now(),
    }
    feature: Feature | None = await session.scalar(
        insert(Feature)
        .values(key=given.key, **values)
        .on_conflict_do_update(index_elements=["key"], set_=values)
        .returning(Feature)
    )
    assert feature is not None
    return feature


async def features(session: AsyncSession) -> list[Feature]:
    return list(await session.scalars(select(Feature).order_by(Feature.key)))


async def _unknown_features(session: AsyncSession, c: VersionContent) -> ValidationFailed | None:
    keys = {f.key for f in c.feature_values}
    if not keys:
        return None
    rows = (
        await session.execute(select(Feature.key, Feature.kind).where(Feature.key.in_(keys)))
    ).all()
    kinds = {row.key: row.kind for row in rows}
    for value in c.feature_values:
        kind = kinds.get(value.key)
        if kind is None:
            return ValidationFailed("featureValues", f"no feature {value.key!r} in the catalog")
        if kind == "BOOLEAN" and (value.enabled is None or value.limit is not None):
            return ValidationFailed("featureValues", f"{value.key} is on/off: give enabled only")
        if kind != "BOOLEAN" and value.enabled is not None:
            return ValidationFailed("featureValues", f"{value.key} takes a limit, not enabled")
    return None


async def check_content(session: AsyncSession, c: VersionContent) -> ValidationFailed | None:
    return rules.check(c) or await _unknown_features(session, c)


async def get_plan(session: AsyncSession, code: str) -> Plan | None:
    return await session.scalar(select(Plan).where(Plan.code == code))


async def create_plan(
    session: AsyncSession, code: str, name: str, description: str, c: VersionContent
) -> PlanVersion | ValidationFailed | AlreadyExists:
    """A new plan with its first version as a draft."""
    invalid = (
        check_code("code", code)
        or _check_text("name", name, 200, required=True)
        or _check_text("description", description, 2000, required=False)
    )
    if invalid is not None:
        return invalid
    if (invalid := await check_content(session, c)) is not None:
        return ValidationFailed("version." + invalid.field, invalid.message)
    plan_id = await session.scalar(
        insert(Plan)
        .values(code=code, name=name, description=description)
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(Plan.id)
    )
    if plan_id is None:
        return AlreadyExists("code", f"a plan with code {code!r} exists")
    version = PlanVersion(plan_id=plan_id, version=1, status=DRAFT, content=rules.to_json(c))
    session.add(version)
    await session.flush()
    return version


async def get_version(
    session: AsyncSession, version_id: int, *, lock: bool = False
) -> PlanVersion | None:
    return await session.get(PlanVersion, version_id, with_for_update=lock)


async def create_version(
    session: AsyncSession, from_version_id: int
) -> PlanVersion | NotFound | IllegalTransition:
    """A new draft copied from an existing version of the same plan."""
    source = await get_version(session, from_version_id)
    if source is None:
        return NotFound(str(from_version_id), "no plan version with this id")
    plan = await session.get(Plan, source.plan_id, with_for_update=True)
    assert plan is not None
    if plan.archived_at is not None:
        return IllegalTransition(plan.code, "ARCHIVED", "createPlanVersion", "the plan is archived")
    draft = await session.scalar(
        select(PlanVersion.id).where(PlanVersion.plan_id == plan.id, PlanVersion.status == DRAFT)
    )
    if draft is not None:
        return IllegalTransition(
            str(draft), DRAFT, "createPlanVersion", f"the plan already has draft version {draft}"
        )
    latest = await session.scalar(
        select(func.max(PlanVersion.version)).where(PlanVersion.plan_id == plan.id)
    )
    version = PlanVersion(
        plan_id=plan.id, version=int(latest or 0) + 1, status=DRAFT, content=dict(source.content)
    )
    session.add(version)
    await session.flush()
    return version


async def _locked_draft(
    session: AsyncSession, version_id: int, action: str, published: str
) -> PlanVersion | NotFound | IllegalTransition:
    """The version, locked, when it is still a draft; `published` says why not otherwise."""
    version = await get_version(session, version_id, lock=True)
    if version is None:
        return NotFound(str(version_id), "no plan version with this id")
    if version.status != DRAFT:
        return IllegalTransition(str(version_id), version.status, action, published)
    return version


async def update_version(
    session: AsyncSession, version_id: int, c: VersionContent
) -> PlanVersion | NotFound | IllegalTransition | ValidationFailed:
    version = await _locked_draft(
        session,
        version_id,
        "updatePlanVersion",
        "a published version never changes: create a new version from it",
    )
    if not isinstance(version, PlanVersion):
        return version
    if (invalid := await check_content(session, c)) is not None:
        return invalid
    version.content = rules.to_json(c)
    version.updated_at = func.now()  # type: ignore[assignment]
    await session.flush()
    await session.refresh(version)
    return version


async def publish(
    session: AsyncSession, version_id: int, now: datetime
) -> PlanVersion | NotFound | IllegalTransition:
    version = await _locked_draft(
        session, version_id, "publishPlanVersion", "this version is already published"
    )
    if not isinstance(version, PlanVersion):
        return version
    plan = await session.get(Plan, version.plan_id)
    assert plan is not None
    if plan.archived_at is not None:
        return IllegalTransition(
            plan.code, "ARCHIVED", "publishPlanVersion", "the plan is archived"
        )
    version.status, version.published_at = PUBLISHED, now
    await session.flush()
    return version


async def archive(
    session: AsyncSession, code: str, now: datetime
) -> Plan | NotFound | IllegalTransition:
    """No new subscriptions; existing subscribers keep their version until they leave."""
    plan = await session.scalar(select(Plan).where(Plan.code == code).with_for_update())
    if plan is None:
        return NotFound(code, "no plan with this code")
    if plan.archived_at is not None:
        return IllegalTransition(code, "ARCHIVED", "archivePlan", "the plan is already archived")
    plan.archived_at = now
    await session.flush()
    return plan


async def current_version(session: AsyncSession, plan_id: int) -> PlanVersion | None:
    """The latest published version: what new subscribers get."""
    return await session.scalar(
        select(PlanVersion)
        .where(PlanVersion.plan_id == plan_id, PlanVersion.status == PUBLISHED)
        .order_by(PlanVersion.version.desc())
        .limit(1)
    )


async def versions_of(session: AsyncSession, plan_ids: list[int]) -> dict[int, list[PlanVersion]]:
    found: dict[int, list[PlanVersion]] = {p: [] for p in plan_ids}
    for v in await session.scalars(
        select(PlanVersion).where(PlanVersion.plan_id.in_(plan_ids)).order_by(PlanVersion.version)
    ):
        found[v.plan_id].append(v)
    return found


async def list_plans(session: AsyncSession, *, include_archived: bool) -> list[Plan]:
    query = select(Plan).order_by(Plan.id)
    if not include_archived:
        query = query.where(Plan.archived_at.is_(None))
    return list(await session.scalars(query))


async def price_for(
    session: AsyncSession, code: str, cycle: str, country: str | None
) -> rules.ResolvedPrice | NotFound | ValidationFailed:
    plan = await get_plan(session, code)
    if plan is None or plan.archived_at is not None:
        return NotFound(code, "no plan with this code on sale")
    version = await current_version(session, plan.id)
    if version is None:
        return NotFound(code, "the plan has no published version")
    if country is not None and not rules.COUNTRY.fullmatch(country.upper()):
        return ValidationFailed("country", "an ISO 3166 code such as PL")
    price = rules.price_for(rules.from_json(version.content), cycle, country)
    if price is None:
        return ValidationFailed("cycle", f"the plan is not sold {cycle}")
    return price
