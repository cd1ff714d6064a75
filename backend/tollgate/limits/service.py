"""Reading and setting an account's limits, and counting its usage per window.

The functions used while metering (`get_limits`, `window_usage`, `add_usage`,
`notify_crossings`) run in the caller's transaction, which holds the account's wallet row lock:
reads and writes of one account's counters are serialized by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account
from tollgate.accounts.service import get_account
from tollgate.db import Writes, columns, driver
from tollgate.errors import AccountNotFound, ValidationFailed
from tollgate.limits import rules
from tollgate.limits.models import AccountLimits, UsageWindow
from tollgate.limits.rules import Crossing, Limits, WindowUsage
from tollgate.notifications.service import notify_once
from tollgate.subscriptions.current import contents_of
from tollgate.subscriptions.lifecycle import LIVE


@dataclass(frozen=True)
class SetLimitsRequest:
    account_external_id: str
    limits: Limits


@dataclass(frozen=True)
class Window:
    key: str
    starts_at: datetime
    usage: WindowUsage


@dataclass(frozen=True)
class LimitsReport:
    """An account's limits with the usage of its current windows."""

    account_id: int
    external_id: str
    limits: Limits
    updated_at: datetime | None
    day: Window
    month: Window
    status: list[rules.LimitStatus] = field(default_factory=list)


def _limits_of(row: Mapping[str, Any]) -> Limits:
    allowed = row["allowed_models"]
    return Limits(
        tokens_per_day=row["tokens_per_day"],
        tokens_per_month=row["tokens_per_month"],
        calls_per_day=row["calls_per_day"],
        calls_per_month=row["calls_per_month"],
        cost_per_day_micros=row["cost_per_day_micros"],
        cost_per_month_micros=row["cost_per_month_micros"],
        max_tokens_per_request=row["max_tokens_per_request"],
        requests_per_minute=row["requests_per_minute"],
        allowed_models=None if allowed is None else tuple(allowed),
        timezone=row["timezone"],
        low_balance_credits=row["low_balance_credits"],
        thresholds={name: (pair[0], pair[1]) for name, pair in row["thresholds"].items()},
    )


def _combined(inherited: Limits | None, own: Limits | None) -> Limits | None:
    if inherited is None:
        return own
    return inherited if own is None else rules.overlay(inherited, own)


async def get_limits(session: AsyncSession, account_id: int) -> Limits | None:
    """The limits in force for an account, or None when it has none."""
    return (await get_limits_many(session, [account_id]))[account_id]


# The account's own limits and its plan version in one round trip: this runs in every metering
# transaction.
_LIMITS_AND_PLAN = """
SELECT a.id, l.account_id IS NOT NULL AS has_limits, l.tokens_per_day, l.tokens_per_month,
    l.calls_per_day, l.calls_per_month, l.cost_per_day_micros, l.cost_per_month_micros,
    l.max_tokens_per_request, l.requests_per_minute, l.allowed_models, l.timezone,
    l.low_balance_credits, l.thresholds, v.id AS version_id, v.published_at
FROM accounts a
LEFT JOIN account_limits l ON l.account_id = a.id
LEFT JOIN subscriptions s ON s.account_id = a.id AND s.status = ANY($2::text[])
LEFT JOIN plan_versions v ON v.id = s.plan_version_id
WHERE a.id = ANY($1::bigint[])
"""


async def get_limits_many(
    session: AsyncSession, account_ids: Iterable[int]
) -> dict[int, Limits | None]:
    """`get_limits` for many accounts with one query: what a metering batch needs."""
    wanted = list(set(account_ids))
    rows = await (await driver(session)).fetch(_LIMITS_AND_PLAN, wanted, list(LIVE))
    own = {row["id"]: _limits_of(row) for row in rows if row["has_limits"]}
    plans = {
        row["id"]: (row["version_id"], row["published_at"])
        for row in rows
        if row["version_id"] is not None
    }
    inherited = {a: c.limits for a, c in (await contents_of(session, plans)).items()}
    return {a: _combined(inherited.get(a), own.get(a)) for a in wanted}


_WINDOWS = """
SELECT period, tokens, calls, cost_micros FROM usage_windows
WHERE account_id = $1 AND ((period = 'DAY' AND starts_at = $2)
    OR (period = 'MONTH' AND starts_at = $3))
"""


async def window_usage(
    session: AsyncSession, account_id: int, at: datetime, timezone: str | None
) -> tuple[WindowUsage, WindowUsage]:
    """(day, month) usage recorded in the windows containing `at`."""
    _, _, day_start, month_start = rules.windows_for(at, timezone)
    rows = await (await driver(session)).fetch(_WINDOWS, account_id, day_start, month_start)
    found = {period: WindowUsage(tokens, calls, cost) for period, tokens, calls, cost in rows}
    return found.get("DAY", WindowUsage()), found.get("MONTH", WindowUsage())


@dataclass(frozen=True)
class UsageIncrement:
    account_id: int
    tokens: int
    calls: int
    cost_micros: int
    at: datetime
    timezone: str | None


async def add_usage_many(session: AsyncSession, increments: Iterable[UsageIncrement]) -> None:
    """`add_usage` for a whole batch in one statement."""
    writes = Writes()
    usage_additions(writes, increments)
    await writes.run(session)


def usage_additions(writes: Writes, increments: Iterable[UsageIncrement]) -> None:
    """The statement of `add_usage_many`, to go with other writes."""
    totals: dict[tuple[int, str, datetime], dict[str, Any]] = {}
    for inc in increments:
        if min(inc.tokens, inc.calls, inc.cost_micros) < 0:
            raise ValueError("usage counters only grow")
        day_key, month_key, day_start, month_start = rules.windows_for(inc.at, inc.timezone)
        for period, start, key in (("DAY", day_start, day_key), ("MONTH", month_start, month_key)):
            row = totals.setdefault(
                (inc.account_id, period, start),
                {"account_id": inc.account_id, "period": period, "starts_at": start,
                 "window_key": key, "tokens": 0, "calls": 0, "cost_micros": 0},
            )  # fmt: skip
            row["tokens"] += inc.tokens
            row["calls"] += inc.calls
            row["cost_micros"] += inc.cost_micros
    if totals:
        writes.add(_ADD_TO_WINDOWS, *columns(totals.values(), _WINDOW_FIELDS))


_WINDOW_FIELDS = (
    "account_id", "period", "starts_at", "window_key", "tokens", "calls", "cost_micros"
)  # fmt: skip
# Rows for the same window were summed first: one INSERT … ON CONFLICT may not touch a row twice.
_ADD_TO_WINDOWS = """
INSERT INTO usage_windows (account_id, period, starts_at, window_key, tokens, calls, cost_micros)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::bigint[],
    $6::bigint[], $7::bigint[])
ON CONFLICT (account_id, period, starts_at) DO UPDATE SET
    tokens = usage_windows.tokens + excluded.tokens,
    calls = usage_windows.calls + excluded.calls,
    cost_micros = usage_windows.cost_micros + excluded.cost_micros
"""


async def add_usage(
    session: AsyncSession,
    account_id: int,
    *,
    tokens: int,
    calls: int,
    cost_micros: int,
    at: datetime,
    timezone: str | None,
) -> None:
    """Add to the counters of the day and month windows containing `at`."""
    if min(tokens, calls, cost_micros) < 0:
        raise ValueError("usage counters only grow")
    day_key, month_key, day_start, month_start = rules.windows_for(at, timezone)
    counts = {"tokens": tokens, "calls": calls, "cost_micros": cost_micros}
    stmt = insert(UsageWindow).values(
        [
            {"account_id": account_id, "period": "DAY", "starts_at": day_start,
             "window_key": day_key, **counts},
            {"account_id": account_id, "period": "MONTH", "starts_at": month_start,
             "window_key": month_key, **counts},
        ]
    )  # fmt: skip
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["account_id", "period", "starts_at"],
            set_={
                "tokens": UsageWindow.tokens + stmt.excluded.tokens,
                "calls": UsageWindow.calls + stmt.excluded.calls,
                "cost_micros": UsageWindow.cost_micros + stmt.excluded.cost_micros,
            },
        )
    )


async def notify_crossings(
    session: AsyncSession, account_id: int, crossings: Iterable[Crossing]
) -> list[dict[str, Any]]:
    """One notification per crossing, at most once per window; the events to publish after
    commit (tollgate.notifications.service.publish_alerts)."""
    events = []
    for c in crossings:
        event = await notify_once(
            session,
            account_id=account_id,
            kind=c.level,
            subject=c.limit,
            window=c.window,
            payload={
                "limit": c.limit,
                "level": c.level,
                "used": c.used,
                "limitValue": c.limit_value,
            },
        )
        if event is not None:
            events.append(event)
    return events


async def report(session: AsyncSession, account: Account, now: datetime) -> LimitsReport:
    row = await session.scalar(select(AccountLimits).where(AccountLimits.account_id == account.id))
    limits = await get_limits(session, account.id) or Limits()
    day_key, month_key, day_start, month_start = rules.windows_for(now, limits.timezone)
    day, month = await window_usage(session, account.id, now, limits.timezone)
    return LimitsReport(
        account_id=account.id,
        external_id=account.external_id,
        limits=limits,
        updated_at=None if row is None else row.updated_at,
        day=Window(day_key, day_start, day),
        month=Window(month_key, month_start, month),
        status=rules.status(limits, day=day, month=month, windows=(day_key, month_key)),
    )


def _normalized(limits: Limits) -> Limits:
    if limits.allowed_models is None:
        return limits
    # First occurrence kept: a repeated pattern changes nothing.
    return replace(limits, allowed_models=tuple(dict.fromkeys(limits.allowed_models)))


async def set_account_limits(
    session: AsyncSession, request: SetLimitsRequest, *, actor: str, now: datetime
) -> LimitsReport | ValidationFailed | AccountNotFound:
    """Replace the account's limits with these (a limit left out is no limit)."""
    if (invalid := rules.check(request.limits)) is not None:
        return invalid
    account = await get_account(session, request.account_external_id)
    if account is None:
        return AccountNotFound(request.account_external_id)
    limits = _normalized(request.limits)
    values: dict[str, Any] = {f: getattr(limits, f) for f in rules.FIELD_NAMES}
    values.update(
        allowed_models=None if limits.allowed_models is None else list(limits.allowed_models),
        timezone=limits.timezone,
        thresholds={name: list(pair) for name, pair in limits.thresholds.items()},
        updated_by=actor,
        updated_at=func.now(),
    )
    stmt = insert(AccountLimits).values(account_id=account.id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["account_id"], set_=values))
    return await report(session, account, now)
