"""Which plan version each account is on now: what enforcement and pricing inherit from.

Only published versions are ever subscribed to, and those never change, so their parsed content
is kept in memory, keyed by id and publication time (an id alone could be reused by a database
restored or reset under a running process), and read from PostgreSQL once per process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.plans.content import VersionContent, from_json
from tollgate.plans.models import PlanVersion
from tollgate.subscriptions.lifecycle import LIVE
from tollgate.subscriptions.models import Subscription

_MAX_CACHED = 4096
_contents: dict[tuple[int, datetime | None], VersionContent] = {}


async def plan_contents(
    session: AsyncSession, account_ids: Iterable[int] | None = None
) -> dict[int, VersionContent]:
    """Account id → content of its live subscription's version (every account when None)."""
    query = (
        select(Subscription.account_id, PlanVersion.id, PlanVersion.published_at)
        .join(PlanVersion, PlanVersion.id == Subscription.plan_version_id)
        .where(Subscription.status.in_(LIVE))
    )
    if account_ids is not None:
        wanted = list(set(account_ids))
        if not wanted:
            return {}
        query = query.where(Subscription.account_id.in_(wanted))
    rows = (await session.execute(query)).all()
    return await contents_of(session, {row.account_id: (row.id, row.published_at) for row in rows})


VersionKey = tuple[int, datetime | None]  # (plan version id, published at)


async def contents_of(
    session: AsyncSession, keys: Mapping[int, VersionKey]
) -> dict[int, VersionContent]:
    """Account id -> content of the version its key names; reads only versions not yet cached."""
    missing = set(keys.values()) - _contents.keys()
    if missing:
        if len(_contents) + len(missing) > _MAX_CACHED:
            _contents.clear()
        for version_id, published_at, content in await session.execute(
            select(PlanVersion.id, PlanVersion.published_at, PlanVersion.content).where(
                PlanVersion.id.in_({version_id for version_id, _ in missing})
            )
        ):
            _contents[(version_id, published_at)] = from_json(content)
    return {account_id: _contents[key] for account_id, key in keys.items()}
