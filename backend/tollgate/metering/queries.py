"""Reading usage: the event list and summaries grouped by account, model, feature, day or hour."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account
from tollgate.errors import ValidationFailed
from tollgate.metering.models import UsageEvent

GROUPINGS = ("ACCOUNT", "MODEL", "FEATURE", "DAY", "HOUR")
MAX_SUMMARY_ROWS = 10_000


@dataclass(frozen=True)
class EventFilter:
    account_external_id: str | None = None
    model: str | None = None
    feature: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class SummaryRow:
    account_external_id: str | None
    model: str | None
    feature: str | None
    period: datetime | None
    calls: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_micros: int
    charge_micros: int
    credits: int
    # Part of `credits` the balances could not cover: billed, not collected.
    uncollected_credits: int

    @property
    def margin_micros(self) -> int:
        return self.charge_micros - self.cost_micros


async def list_events(
    session: AsyncSession, where: EventFilter, *, first: int, before_id: int | None
) -> Sequence[tuple[UsageEvent, str]]:
    """Newest first; one extra row tells the caller whether another page exists."""
    query = (
        select(UsageEvent, Account.external_id)
        .join(Account, Account.id == UsageEvent.account_id)
        .order_by(UsageEvent.id.desc())
        .limit(first + 1)
    )
    for condition in _conditions(where):
        query = query.where(condition)
    if before_id is not None:
        query = query.where(UsageEvent.id < before_id)
    return [(e, x) for e, x in (await session.execute(query)).all()]


def _conditions(where: EventFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.account_external_id is not None:
        conditions.append(Account.external_id == where.account_external_id)
    if where.model is not None:
        conditions.append(UsageEvent.model == where.model)
    if where.feature is not None:
        conditions.append(UsageEvent.feature == where.feature)
    if where.since is not None:
        conditions.append(UsageEvent.occurred_at >= where.since)
    if where.until is not None:
        conditions.append(UsageEvent.occurred_at < where.until)
    return conditions


async def summarize(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    group_by: Sequence[str],
    timezone: str = "UTC",
    account_external_id: str | None = None,
) -> list[SummaryRow] | ValidationFailed:
    if until <= since:
        return ValidationFailed("to", "must be after from")
    if "DAY" in group_by and "HOUR" in group_by:
        return ValidationFailed("groupBy", "group by DAY or by HOUR, not both")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ValidationFailed("timezone", "not an IANA time zone")
    local = func.timezone(timezone, UsageEvent.occurred_at)
    keys = {
        "ACCOUNT": Account.external_id,
        "MODEL": UsageEvent.model,
        "FEATURE": UsageEvent.feature,
        # Truncated in the viewer's zone, then returned as an instant.
        "DAY": func.timezone(timezone, func.date_trunc("day", local)),
        "HOUR": func.timezone(timezone, func.date_trunc("hour", local)),
    }
    chosen = [keys[g] for g in GROUPINGS if g in group_by]
    none = literal(None)
    query = (
        select(
            keys["ACCOUNT"] if "ACCOUNT" in group_by else none,
            keys["MODEL"] if "MODEL" in group_by else none,
            keys["FEATURE"] if "FEATURE" in group_by else none,
            keys["DAY"] if "DAY" in group_by else keys["HOUR"] if "HOUR" in group_by else none,
            func.count(),
            func.coalesce(func.sum(UsageEvent.input_tokens), 0),
            func.coalesce(func.sum(UsageEvent.output_tokens), 0),
            func.coalesce(func.sum(UsageEvent.cached_input_tokens), 0),
            func.coalesce(func.sum(UsageEvent.cost_micros), 0),
            func.coalesce(func.sum(UsageEvent.charge_micros), 0),
            func.coalesce(func.sum(UsageEvent.credits), 0),
            func.coalesce(func.sum(UsageEvent.uncollected_credits), 0),
        )
        .join(Account, Account.id == UsageEvent.account_id)
        .where(UsageEvent.occurred_at >= since, UsageEvent.occurred_at < until)
        .limit(MAX_SUMMARY_ROWS)
    )
    if account_external_id is not None:
        query = query.where(Account.external_id == account_external_id)
    if chosen:
        query = query.group_by(*chosen).order_by(*chosen)
    rows = (await session.execute(query)).all()
    return [SummaryRow(r[0], r[1], r[2], r[3], *(int(v) for v in r[4:])) for r in rows]
