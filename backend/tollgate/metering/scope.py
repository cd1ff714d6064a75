"""What one metering transaction has found and locked, shared by its bookings and its holds.

A group-committed transaction books usage and decides authorizations together (see
`service.Metering`). The accounts of both are found with one query and locked with one, in the
ledger's lock order, before either part runs: a batch never takes a lock after it holds others
(no deadlock with other multi-wallet bookings), and the second part reads nothing the first
already has. Wallets locked here are updated in memory as the bookings draw from them, so the
holds decided after the bookings see what the bookings left.

Both parts plan their ledger changes in one LedgerWriter and leave their writes in `writes`:
`flush` sends them all as one statement, at the end of the batch, or first when a part is about
to read rows they change (limit windows, open holds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.db import Writes
from tollgate.ledger.spending import LedgerWriter
from tollgate.ledger.wallets import LockedWallet
from tollgate.limits import service as limits
from tollgate.limits.rules import Limits
from tollgate.metering import holds, subjects


class ConcurrentDuplicate(Exception):
    """Another transaction inserted one of our event ids first: roll back and run again."""


@dataclass
class BatchScope:
    session: AsyncSession
    now: datetime
    _subjects: dict[str, subjects.Subject] = field(default_factory=dict)
    _limits: dict[int, Limits | None] = field(default_factory=dict)
    locked: dict[int, LockedWallet] = field(default_factory=dict)
    _expired: set[int] = field(default_factory=set)
    # Bookings that already exist for the batch's event ids, when read before the locks.
    earlier_events: dict[str, Any] | None = None
    writer: LedgerWriter = field(default_factory=lambda: LedgerWriter("system:metering"))
    writes: Writes = field(default_factory=Writes)
    _events_expected: int = 0
    known: subjects.Known | None = None

    async def find(self, external_ids: Iterable[str]) -> dict[str, subjects.Subject]:
        wanted = set(external_ids)
        if missing := wanted - self._subjects.keys():
            if self.known is not None:
                for external_id in list(missing):
                    if (subject := self.known.get(external_id)) is not None:
                        self._subjects[external_id] = subject
                        missing.discard(external_id)
            if missing:
                found = await subjects.find(self.session, missing)
                self._subjects |= found
                if self.known is not None:
                    self.known.keep(found.values())
        return {e: self._subjects[e] for e in wanted if e in self._subjects}

    async def limits(self, account_ids: Iterable[int]) -> dict[int, Limits | None]:
        wanted = set(account_ids)
        if missing := wanted - self._limits.keys():
            self._limits |= await limits.get_limits_many(self.session, missing)
        return {a: self._limits[a] for a in wanted}

    async def lock(self, chosen: Iterable[subjects.Subject]) -> dict[int, LockedWallet]:
        """Lock these accounts' wallets and pools. Lock everything a batch may touch in the
        first call: a later call for other accounts would break the lock order."""
        missing = [s for s in chosen if s.wallet_id not in self.locked]
        if missing:
            self.locked |= await subjects.lock(self.session, missing, now=self.now)
        return self.locked

    async def expire_holds(self, account_ids: Iterable[int]) -> None:
        """Close the locked accounts' holds that ran out of time, once per transaction."""
        due = set(account_ids) - self._expired
        if due:
            await holds.expire(self.session, self.writer, self.locked, due, self.now)
            self._expired |= due

    def insert_events(self, statement: str, args: list[Any], count: int) -> None:
        """Usage rows to insert; `statement` skips an event id already booked and returns the
        rows inserted, all of which must be: otherwise `flush` raises ConcurrentDuplicate."""
        self.writes.add(statement, *args, counted="events")
        self._events_expected += count

    async def flush(self) -> None:
        self.writer.add_to(self.writes)
        if not self.writes:
            return
        expected, self._events_expected = self._events_expected, 0
        counts = await self.writes.run(self.session)
        if counts.get("events", 0) != expected:
            raise ConcurrentDuplicate
