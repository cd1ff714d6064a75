"""The catalog and the policies in memory, for pricing calls without a database round trip.

PostgreSQL stays the source of truth. A writer commits, then publishes the "pricing" topic;
every process's cache reloads everything (the catalog and the policies are small) and swaps in
the new snapshot in one assignment, so a reader sees either the old or the new state, never a
mix. Bursts of messages coalesce into one reload, and a reload every `refresh_seconds` covers
messages lost while Redis was away.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from tollgate.db import Database
from tollgate.invalidation import InvalidationBus, ReloadingCache
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
    by_plan: dict[int, Policy] = field(default_factory=dict)


class PricingCache(ReloadingCache):
    topic, name = TOPIC, "pricing"

    def __init__(
        self,
        db: Database,
        bus: InvalidationBus | None,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        super().__init__(bus, refresh_seconds=refresh_seconds)
        self._db = db
        self._snapshot = _Snapshot()

    async def _load(self) -> None:
        async with self._db.transaction() as session:
            versions = await catalog.all_versions(session)
            default, by_account, by_plan = await policies.all_policies(session)
        self._snapshot = _Snapshot(CatalogIndex(versions), default, by_account, by_plan)

    def price_at(
        self, model: str, at: datetime, provider: str | None = None
    ) -> ModelPriceVersion | None:
        return self._snapshot.catalog.price_at(model, at, provider)

    def models(self) -> list[str]:
        return self._snapshot.catalog.models()

    def policy_for(self, account_id: int | None) -> Policy:
        """The account's own policy, else its plan's, else the global default, else
        PASSTHROUGH without fee. Subscription changes publish this cache's topic."""
        snapshot = self._snapshot
        if account_id is None:
            return policies.resolve(None, None, snapshot.default)[0]
        return policies.resolve(
            snapshot.by_account.get(account_id), snapshot.by_plan.get(account_id), snapshot.default
        )[0]
