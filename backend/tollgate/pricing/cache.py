"""The catalog and the policies in memory, for pricing calls without a database round trip.

PostgreSQL stays the source of truth. A writer commits, then publishes the "pricing" topic;
every process's cache reloads everything (the catalog and the policies are small) and swaps in
the new snapshot in one assignment, so a reader sees either the old or the new state, never a
mix. Bursts of messages coalesce into one reload, and a reload every `refresh_seconds` covers
messages lost while Redis was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from tollgate.db import Database
from tollgate.invalidation import InvalidationBus
from tollgate.pricing import catalog, policies
from tollgate.pricing.charge import ModelPriceVersion, Policy
from tollgate.pricing.lookup import CatalogIndex

log = logging.getLogger(__name__)
TOPIC = "pricing"
REFRESH_SECONDS = 30.0


@dataclass(frozen=True)
class _Snapshot:
    catalog: CatalogIndex = field(default_factory=lambda: CatalogIndex(()))
    default: Policy | None = None
    by_account: dict[int, Policy] = field(default_factory=dict)


class PricingCache:
    def __init__(
        self,
        db: Database,
        bus: InvalidationBus | None,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._db, self._bus, self._refresh_seconds = db, bus, refresh_seconds
        self._snapshot = _Snapshot()
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        """Load from PostgreSQL, then follow changes. The bus must be started by its owner."""
        await self.reload()
        if self._bus is not None:
            self._bus.on(TOPIC, self._on_change)
        self._task = asyncio.create_task(self._follow(), name="tollgate-pricing-cache")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def reload(self) -> None:
        async with self._lock:
            async with self._db.transaction() as session:
                versions = await catalog.all_versions(session)
                default, by_account = await policies.all_policies(session)
            self._snapshot = _Snapshot(CatalogIndex(versions), default, by_account)

    def price_at(
        self, model: str, at: datetime, provider: str | None = None
    ) -> ModelPriceVersion | None:
        return self._snapshot.catalog.price_at(model, at, provider)

    def models(self) -> list[str]:
        return self._snapshot.catalog.models()

    def policy_for(self, account_id: int | None) -> Policy:
        """The account's own policy, else the global default, else PASSTHROUGH without fee."""
        snapshot = self._snapshot
        own = snapshot.by_account.get(account_id) if account_id is not None else None
        return policies.resolve(own, snapshot.default)[0]

    async def _on_change(self, topic: str) -> None:
        # Only flags the change: the bus's listener is not held up by a database read.
        if not self._stopped:
            self._changed.set()

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=self._refresh_seconds)
            self._changed.clear()
            try:
                await self.reload()
            except Exception:
                log.exception("reloading prices failed; keeping the previous ones")
