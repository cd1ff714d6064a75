"""Group commit: many callers' requests share one transaction.

While a transaction is in flight, new requests queue; when it commits, the next transaction
takes everything queued (up to a bound). An idle service commits each request at once, with no
added delay; a busy one spreads each commit's cost, and each lock held on a hot account's
wallet, over many requests. A caller's future resolves only after its transaction commits, so
an acknowledged booking is durable in PostgreSQL whatever happens to Redis.

PostgreSQL serializes updates of one row at roughly one transaction per round trip and fsync;
booking N requests of a hot account per transaction multiplies that ceiling by N. Up to `lanes`
transactions may be in flight at once, but never two touching the same key (the account): a
second transaction for a hot account would only wait for the first one's row lock while
holding a connection, and split the batch that could have shared one. Work for other accounts
goes ahead in another lane instead of queueing behind a slow batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.db import Database
from tollgate.metering.results import BatchOutcome

log = logging.getLogger(__name__)
Req = TypeVar("Req")
Res = TypeVar("Res")


Runner = Callable[[AsyncSession, list[Req], datetime], Awaitable[BatchOutcome[Res]]]
# Called with each committed batch's outcome, never with one rolled back.
AfterCommit = Callable[[BatchOutcome[Any]], Awaitable[None]]


@dataclass
class _Unit(Generic[Req, Res]):
    requests: list[Req]
    future: asyncio.Future[list[Res]]
    keys: frozenset[str]


class GroupCommitter(Generic[Req, Res]):
    def __init__(
        self,
        db: Database,
        run: Runner[Req, Res],
        after_commit: AfterCommit,
        key: Callable[[Req], str],
        *,
        max_batch: int = 1_000,
        lanes: int = 2,
    ) -> None:
        self._db, self._run, self._after_commit, self._key = db, run, after_commit, key
        self._max_batch, self._lanes = max_batch, lanes
        self._queue: list[_Unit[Req, Res]] = []
        self._busy = 0
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, requests: list[Req]) -> list[Res]:
        future: asyncio.Future[list[Res]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Unit(requests, future, frozenset(map(self._key, requests))))
        if self._busy < self._lanes:
            self._busy += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def wait_idle(self) -> None:
        """Until every queued request is committed and its events handed to `after_commit`
        (which runs after callers are answered): shutdown waits here before closing Redis."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            while self._queue:
                # One turn of the event loop first: callers woken by the last commit, and
                # requests that just arrived, join this batch instead of the next.
                await asyncio.sleep(0)
                batch = self._take()
                if not batch:
                    return  # what is queued waits for keys another lane holds; it takes them
                keys = frozenset().union(*(u.keys for u in batch))
                self._in_flight |= keys
                try:
                    await self._commit(batch)
                finally:
                    self._in_flight -= keys
        finally:
            self._busy -= 1

    def _take(self) -> list[_Unit[Req, Res]]:
        """Queued units in order, up to the bound, skipping those whose keys are in flight.
        A skipped unit's keys are kept back from later units too, so that a unit spanning
        many accounts is not starved by a stream of small ones."""
        taken: list[_Unit[Req, Res]] = []
        left: list[_Unit[Req, Res]] = []
        blocked = set(self._in_flight)
        size = 0
        for unit in self._queue:
            fits = not taken or size + len(unit.requests) <= self._max_batch
            if fits and blocked.isdisjoint(unit.keys):
                taken.append(unit)
                size += len(unit.requests)
            else:
                left.append(unit)
                blocked |= unit.keys
        self._queue = left
        return taken

    async def _commit(self, batch: list[_Unit[Req, Res]]) -> None:
        try:
            outcome = await self._transaction([r for u in batch for r in u.requests])
        except Exception:
            # One bad request must not fail its neighbours: run each unit on its own.
            if len(batch) == 1:
                outcome = None
            else:
                for unit in batch:
                    await self._commit([unit])
                return
        if outcome is None:
            try:
                outcome = await self._transaction(batch[0].requests)
            except Exception as exc:
                log.exception("metering batch failed")
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
        start = 0
        for unit in batch:
            end = start + len(unit.requests)
            if not unit.future.done():
                unit.future.set_result(outcome.results[start:end])
            start = end
        try:
            await self._after_commit(outcome)
        except Exception:
            log.exception("publishing a committed batch's events failed")

    async def _transaction(self, requests: list[Req]) -> BatchOutcome[Res]:
        async with self._db.transaction() as session:
            return await self._run(session, requests, datetime.now(UTC))
