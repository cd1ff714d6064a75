"""Each process's controls cache: loaded on start, told of changes through the bus, refreshed
on its own as a safety net."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account
from tollgate.accounts.service import NewAccount, create_account
from tollgate.config import Settings
from tollgate.controls import service
from tollgate.controls.cache import ControlsCache
from tollgate.controls.models import GlobalControls
from tollgate.db import Database
from tollgate.errors import ValidationFailed
from tollgate.invalidation import InvalidationBus

ACTOR = "test"


@pytest.fixture(autouse=True)
async def no_global_stop(db: Database) -> AsyncIterator[None]:
    # The global row belongs to no account, so emptying the accounts does not remove it.
    yield
    async with db.transaction() as s:
        await s.execute(delete(GlobalControls))


@pytest.fixture
async def buses(settings: Settings) -> AsyncIterator[tuple[InvalidationBus, InvalidationBus]]:
    """Two processes' buses: separate connections to the same Redis."""
    clients = [Redis.from_url(settings.redis_url or "") for _ in range(2)]
    pair = (InvalidationBus(clients[0]), InvalidationBus(clients[1]))
    for bus in pair:
        await bus.start()
    yield pair
    for bus in pair:
        await bus.stop()
    for client in clients:
        await client.aclose()


async def _account(db: Database, external_id: str) -> int:
    async with db.transaction() as s:
        account = await create_account(s, NewAccount(external_id))
    assert isinstance(account, Account)
    return account.id


async def _stop(db: Database, on: bool, account: str | None = None) -> None:
    request = service.StopRequest(
        scope="GLOBAL" if account is None else "ACCOUNT",
        on=on,
        reason="provider outage" if on else "",
        account_external_id=account,
    )
    async with db.transaction() as s:
        result = await service.set_emergency_stop(s, request, actor=ACTOR, now=datetime.now(UTC))
    assert isinstance(result, service.StopChanged)


async def _override(db: Database, account: str, **changes: bool) -> None:
    async with db.transaction() as s:
        result = await service.set_account_override(
            s, service.OverrideRequest(account, **changes), actor=ACTOR
        )
    assert isinstance(result, service.AccountState)


async def _soon(check: Callable[[], bool], within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not seen within {within} s"
        await asyncio.sleep(0.01)


@pytest.fixture
async def caches(
    db: Database, buses: tuple[InvalidationBus, InvalidationBus]
) -> AsyncIterator[Callable[[], Awaitable[tuple[ControlsCache, ControlsCache]]]]:
    started: list[ControlsCache] = []

    async def start() -> tuple[ControlsCache, ControlsCache]:
        # A long refresh: what the caches see within a second came through the bus.
        pair = (
            ControlsCache(db, buses[0], refresh_seconds=600),
            ControlsCache(db, buses[1], refresh_seconds=600),
        )
        for cache in pair:
            await cache.start()
            started.append(cache)
        return pair

    yield start
    for cache in started:
        await cache.stop()


async def test_a_stop_set_through_one_replica_reaches_the_other(
    db: Database,
    buses: tuple[InvalidationBus, InvalidationBus],
    caches: Callable[[], Awaitable[tuple[ControlsCache, ControlsCache]]],
) -> None:
    user = await _account(db, "u1")
    here, there = await caches()
    assert there.global_stop() is None

    await _stop(db, True)
    await buses[0].publish(service.CONTROLS_TOPIC)
    await _soon(lambda: there.global_stop() == "provider outage", within=1.0)
    await _soon(lambda: here.global_stop() == "provider outage", within=1.0)

    await _stop(db, True, account="u1")
    await _stop(db, False)
    await buses[0].publish(service.CONTROLS_TOPIC)
    await _soon(lambda: there.global_stop() is None, within=1.0)
    assert there.account_stop(user) == "provider outage"


async def test_suspension_and_exemption(
    db: Database,
    buses: tuple[InvalidationBus, InvalidationBus],
    caches: Callable[[], Awaitable[tuple[ControlsCache, ControlsCache]]],
) -> None:
    a, b = await _account(db, "a"), await _account(db, "b")
    _, there = await caches()
    assert not there.suspended(a) and not there.exempt_from_limits(a)

    await _override(db, "a", suspended=True)
    await _override(db, "b", exempt_from_limits=True)
    await buses[1].publish(service.CONTROLS_TOPIC)
    await _soon(lambda: there.suspended(a) and there.exempt_from_limits(b), within=1.0)
    assert not there.exempt_from_limits(a) and not there.suspended(b)
    assert there.account_stop(a) is None

    # One override changed, the other kept.
    await _override(db, "a", exempt_from_limits=True)
    await _override(db, "a", suspended=False)
    await buses[1].publish(service.CONTROLS_TOPIC)
    await _soon(lambda: not there.suspended(a), within=1.0)
    assert there.exempt_from_limits(a)


async def test_loaded_on_start(db: Database) -> None:
    user = await _account(db, "u1")
    await _stop(db, True)
    await _stop(db, True, account="u1")
    await _override(db, "u1", suspended=True, exempt_from_limits=True)
    cache = ControlsCache(db, None)
    await cache.start()
    try:
        assert cache.global_stop() == "provider outage"
        assert cache.account_stop(user) == "provider outage"
        assert cache.suspended(user) and cache.exempt_from_limits(user)
        assert cache.account_stop(user + 1) is None and not cache.suspended(user + 1)
    finally:
        await cache.stop()


async def test_refreshes_without_a_message(db: Database) -> None:
    cache = ControlsCache(db, None, refresh_seconds=0.05)
    await cache.start()
    try:
        await _stop(db, True)
        await _soon(lambda: cache.global_stop() is not None, within=5.0)
    finally:
        await cache.stop()


async def test_a_stopped_cache_ignores_messages(
    db: Database, buses: tuple[InvalidationBus, InvalidationBus]
) -> None:
    cache = ControlsCache(db, buses[1], refresh_seconds=600)
    await cache.start()
    await cache.stop()
    await _stop(db, True)
    await buses[0].publish(service.CONTROLS_TOPIC)
    await asyncio.sleep(0.2)
    assert cache.global_stop() is None


async def test_bursts_of_reloads_coalesce(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ControlsCache(db, None, refresh_seconds=600)
    await cache.start()
    loads = 0
    load = service.load_snapshot

    async def counted(session: AsyncSession) -> service.Snapshot:
        nonlocal loads
        loads += 1
        return await load(session)

    monkeypatch.setattr(service, "load_snapshot", counted)
    try:
        await _stop(db, True)
        await asyncio.gather(*(cache.reload() for _ in range(20)))
        assert cache.global_stop() == "provider outage"
        # One reload already running, and one more that covers every request made meanwhile.
        assert loads <= 2
    finally:
        await cache.stop()


async def test_a_reason_postgres_cannot_store_is_refused(db: Database) -> None:
    async with db.transaction() as s:
        result = await service.set_emergency_stop(
            s,
            service.StopRequest(scope="GLOBAL", on=True, reason="nul\x00"),
            actor=ACTOR,
            now=datetime.now(UTC),
        )
    assert result == ValidationFailed("reason", "must not contain NUL characters")
