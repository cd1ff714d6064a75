"""Limits against PostgreSQL: stored settings, usage counters per window, alerts once per window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tollgate.accounts.models import Account
from tollgate.accounts.service import NewAccount, create_account
from tollgate.db import Database
from tollgate.errors import AccountNotFound, ValidationFailed
from tollgate.limits import rules, service
from tollgate.limits.rules import Crossing, Limits, WindowUsage
from tollgate.notifications.models import Notification

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


async def _account(db: Database, external_id: str = "u1") -> Account:
    async with db.transaction() as s:
        account = await create_account(s, NewAccount(external_id))
    assert isinstance(account, Account)
    return account


async def _count(db: Database) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(Notification)) or 0)


async def test_set_and_get_limits(db: Database) -> None:
    account = await _account(db)
    limits = Limits(
        tokens_per_day=1_000,
        cost_per_month_micros=5_000_000,
        allowed_models=("gpt-4o*", "claude-*", "gpt-4o*"),
        timezone="Europe/Warsaw",
        low_balance_credits=50,
        thresholds={"TOKENS_PER_DAY": (70, 90)},
    )
    async with db.transaction() as s:
        assert await service.get_limits(s, account.id) is None
        stored = await service.set_account_limits(
            s, service.SetLimitsRequest("u1", limits), actor="test", now=NOW
        )
    assert isinstance(stored, service.LimitsReport)
    assert stored.day.key == "day:2026-11-21" and stored.updated_at is not None
    async with db.transaction() as s:
        loaded = await service.get_limits(s, account.id)
    assert loaded is not None
    assert loaded.allowed_models == ("gpt-4o*", "claude-*")
    assert loaded.threshold("TOKENS_PER_DAY") == (70, 90)
    assert (loaded.tokens_per_day, loaded.cost_per_month_micros) == (1_000, 5_000_000)
    assert (loaded.timezone, loaded.low_balance_credits, loaded.calls_per_day) == (
        "Europe/Warsaw",
        50,
        None,
    )

    # Setting again replaces everything: what is left out is no limit.
    async with db.transaction() as s:
        await service.set_account_limits(
            s, service.SetLimitsRequest("u1", Limits(calls_per_day=3)), actor="test", now=NOW
        )
        assert await service.get_limits(s, account.id) == Limits(calls_per_day=3)


async def test_refusals_change_nothing(db: Database) -> None:
    account = await _account(db)
    async with db.transaction() as s:
        bad = await service.set_account_limits(
            s, service.SetLimitsRequest("u1", Limits(timezone="Nowhere/City")), actor="t", now=NOW
        )
        ghost = await service.set_account_limits(
            s, service.SetLimitsRequest("ghost", Limits()), actor="t", now=NOW
        )
        assert await service.get_limits(s, account.id) is None
    assert isinstance(bad, ValidationFailed) and bad.field == "timezone"
    assert isinstance(ghost, AccountNotFound)


async def test_add_usage_and_window_usage_round_trip(db: Database) -> None:
    account = await _account(db)
    last_second = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    async with db.transaction() as s:
        await service.add_usage(
            s, account.id, tokens=100, calls=1, cost_micros=2_500, at=NOW, timezone=None
        )
        await service.add_usage(
            s, account.id, tokens=50, calls=1, cost_micros=500, at=last_second, timezone=None
        )
    async with db.transaction() as s:
        assert await service.window_usage(s, account.id, NOW, None) == (
            WindowUsage(100, 1, 2_500),
            WindowUsage(150, 2, 3_000),
        )
        assert await service.window_usage(s, account.id, last_second, None) == (
            WindowUsage(50, 1, 500),
            WindowUsage(150, 2, 3_000),
        )
        # One second later: a new day and a new month, both empty.
        assert await service.window_usage(
            s, account.id, last_second + timedelta(seconds=1), None
        ) == (WindowUsage(), WindowUsage())


async def test_usage_follows_the_accounts_timezone(db: Database) -> None:
    account = await _account(db)
    # 23:30 UTC on Nov 30 is already December 1st in Warsaw (UTC+1).
    late = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    async with db.transaction() as s:
        await service.add_usage(
            s, account.id, tokens=7, calls=1, cost_micros=0, at=late, timezone="Europe/Warsaw"
        )
    async with db.transaction() as s:
        december = datetime(2026, 12, 1, 8, tzinfo=UTC)
        assert await service.window_usage(s, account.id, december, "Europe/Warsaw") == (
            WindowUsage(7, 1, 0),
            WindowUsage(7, 1, 0),
        )
        # Counted in UTC, the same moment belongs to November.
        assert await service.window_usage(s, account.id, december, None) == (
            WindowUsage(),
            WindowUsage(),
        )


async def test_concurrent_add_usage_loses_nothing(db: Database) -> None:
    account = await _account(db)

    async def add() -> None:
        async with db.transaction() as s:
            await service.add_usage(
                s, account.id, tokens=10, calls=1, cost_micros=3, at=NOW, timezone=None
            )

    await asyncio.gather(*(add() for _ in range(20)))
    async with db.transaction() as s:
        day, month = await service.window_usage(s, account.id, NOW, None)
    assert day == month == WindowUsage(200, 20, 60)


async def test_thresholds_fire_once_per_window(db: Database) -> None:
    account = await _account(db)
    limits = Limits(tokens_per_day=1_000)
    day, month, _, _ = rules.windows_for(NOW, None)
    events = []
    for used in (800, 900, 951):  # warning, warning again, then a block
        _, crossings = rules.evaluate(
            limits,
            day=WindowUsage(tokens=used),
            month=WindowUsage(tokens=used),
            request_tokens=0,
            request_cost_micros=0,
            model="gpt-4o",
            windows=(day, month),
        )
        async with db.transaction() as s:
            events += await service.notify_crossings(s, account.id, crossings)
    assert [(e["kind"], e["subject"], e["window"]) for e in events] == [
        ("WARNING", "TOKENS_PER_DAY", "day:2026-11-21"),
        ("BLOCK", "TOKENS_PER_DAY", "day:2026-11-21"),
    ]
    assert events[0]["accountExternalId"] == "u1"
    assert events[0]["payload"] == {
        "limit": "TOKENS_PER_DAY",
        "level": "WARNING",
        "used": 800,
        "limitValue": 1_000,
    }
    # The next day is a new window.
    async with db.transaction() as s:
        again = await service.notify_crossings(
            s, account.id, [Crossing("TOKENS_PER_DAY", "WARNING", 800, 1_000, "day:2026-11-22")]
        )
    assert len(again) == 1
    assert await _count(db) == 3
