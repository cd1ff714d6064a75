"""The group committer: batching, one key per lane, and a failing request isolated."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.db import Database
from tollgate.metering.committer import GroupCommitter
from tollgate.metering.results import BatchOutcome


class Recorder:
    """A runner that notes every batch and which keys were in flight while it ran."""

    def __init__(self, release: asyncio.Event) -> None:
        self.release = release
        self.batches: list[list[tuple[str, int]]] = []
        self.running: dict[str, int] = {}
        self.overlaps: list[str] = []

    async def run(
        self, session: AsyncSession, requests: list[tuple[str, int]], now: datetime
    ) -> BatchOutcome[int]:
        keys = {k for k, _ in requests}
        for key in keys:
            if self.running.get(key):
                self.overlaps.append(key)
            self.running[key] = self.running.get(key, 0) + 1
        self.batches.append(requests)
        try:
            await session.execute(text("SELECT 1"))
            await self.release.wait()
            if any(n < 0 for _, n in requests):
                raise ValueError("a bad request")
            return BatchOutcome(results=[n * 10 for _, n in requests])
        finally:
            for key in keys:
                self.running[key] -= 1


async def _nothing(outcome: BatchOutcome[Any]) -> None:
    return None


def _committer(db: Database, recorder: Recorder, lanes: int) -> GroupCommitter[Any, int]:
    return GroupCommitter(db, recorder.run, _nothing, lambda r: r[0], lanes=lanes)


async def test_requests_queued_behind_a_transaction_share_the_next_one(db: Database) -> None:
    release = asyncio.Event()
    recorder = Recorder(release)
    committer = _committer(db, recorder, lanes=1)
    first = asyncio.create_task(committer.submit([("a", 1)]))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(committer.submit([("a", n)])) for n in range(2, 7)]
    await asyncio.sleep(0.05)
    release.set()
    assert await first == [10]
    assert [await t for t in rest] == [[20], [30], [40], [50], [60]]
    assert [len(b) for b in recorder.batches] == [1, 5]


async def test_one_key_is_never_in_two_transactions_at_once(db: Database) -> None:
    release = asyncio.Event()
    recorder = Recorder(release)
    committer = _committer(db, recorder, lanes=4)
    hot = asyncio.create_task(committer.submit([("hot", 1)]))
    await asyncio.sleep(0.05)
    # A second lane is free, but these wait for the hot key; the other account goes ahead.
    more_hot = [asyncio.create_task(committer.submit([("hot", n)])) for n in (2, 3)]
    other = asyncio.create_task(committer.submit([("other", 4)]))
    await asyncio.sleep(0.05)
    assert [b for b in recorder.batches] == [[("hot", 1)], [("other", 4)]]
    release.set()
    assert await other == [40]
    assert await hot == [10]
    assert [await t for t in more_hot] == [[20], [30]]
    assert recorder.overlaps == []
    assert recorder.batches[2] == [("hot", 2), ("hot", 3)]


async def test_a_unit_spanning_many_keys_is_not_starved(db: Database) -> None:
    release = asyncio.Event()
    recorder = Recorder(release)
    committer = _committer(db, recorder, lanes=2)
    busy = asyncio.create_task(committer.submit([("a", 1)]))
    await asyncio.sleep(0.05)
    wide = asyncio.create_task(committer.submit([("a", 2), ("b", 3)]))
    # Comes later and touches a key the waiting wide unit needs: it must not overtake it.
    later = asyncio.create_task(committer.submit([("b", 4)]))
    await asyncio.sleep(0.05)
    assert recorder.batches == [[("a", 1)]]
    release.set()
    await asyncio.gather(busy, wide, later)
    assert recorder.batches[1][:2] == [("a", 2), ("b", 3)]
    assert recorder.overlaps == []


async def test_a_failing_request_fails_alone(db: Database) -> None:
    release = asyncio.Event()
    release.set()
    recorder = Recorder(release)
    blocker = asyncio.Event()

    async def slow_first(
        session: AsyncSession, requests: list[tuple[str, int]], now: datetime
    ) -> BatchOutcome[int]:
        if requests == [("a", 0)]:
            await blocker.wait()
        return await recorder.run(session, requests, now)

    committer = GroupCommitter(db, slow_first, _nothing, lambda r: r[0], lanes=1)
    first = asyncio.create_task(committer.submit([("a", 0)]))
    await asyncio.sleep(0.05)
    good = asyncio.create_task(committer.submit([("a", 5)]))
    bad = asyncio.create_task(committer.submit([("a", -1)]))
    await asyncio.sleep(0.05)
    blocker.set()
    assert await first == [0]
    assert await good == [50]
    with pytest.raises(ValueError, match="a bad request"):
        await bad


async def test_waiting_until_idle_covers_publishing_after_the_answer(db: Database) -> None:
    """Callers are answered before their batch's events are published; shutdown must wait for
    the publishing too, or the last batch's live events are lost when Redis closes."""
    release = asyncio.Event()
    release.set()
    recorder = Recorder(release)
    published: list[int] = []

    async def slow_publish(outcome: BatchOutcome[Any]) -> None:
        await asyncio.sleep(0.1)
        published.extend(outcome.results)

    committer = GroupCommitter(db, recorder.run, slow_publish, lambda r: r[0])
    assert await committer.submit([("a", 1)]) == [10]
    assert published == []
    await committer.wait_idle()
    assert published == [10]
