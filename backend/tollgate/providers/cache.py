"""The enabled providers in memory, so routing a call costs no query.

PostgreSQL stays the source of truth. A writer commits, then publishes the "providers" topic;
every process reloads the (small) table, decrypts the stored keys once, and swaps in the new
snapshot in one assignment. Bursts of messages coalesce into one reload, and a reload every
`refresh_seconds` covers messages lost while Redis was away.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tollgate.crypto import DecryptionFailed, SecretBox
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus, ReloadingCache
from tollgate.providers import service
from tollgate.providers.models import Provider
from tollgate.providers.routing import Route, Upstream, candidates, in_order
from tollgate.providers.validation import is_glob

log = logging.getLogger(__name__)
TOPIC = "providers"
REFRESH_SECONDS = 30.0
# Model names come from callers: remembering the routes of every name ever asked for would
# let them grow the memo without bound.
MAX_MEMO = 4_096


@dataclass
class _Snapshot:
    upstreams: tuple[Upstream, ...] = ()
    memo: dict[str, tuple[Upstream, ...]] = field(default_factory=dict)

    def candidates(self, model: str) -> tuple[Upstream, ...]:
        found = self.memo.get(model)
        if found is None:
            found = candidates(self.upstreams, model)
            if len(self.memo) >= MAX_MEMO:
                self.memo.clear()
            self.memo[model] = found
        return found


class ProviderCache(ReloadingCache):
    topic, name = TOPIC, "providers"

    def __init__(
        self,
        db: Database,
        bus: InvalidationBus | None,
        crypto: SecretBox,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        super().__init__(bus, refresh_seconds=refresh_seconds)
        self._db, self._crypto = db, crypto
        self._snapshot = _Snapshot()

    async def _load(self) -> None:
        async with self._db.transaction() as session:
            rows = await service.list_providers(session)
        upstreams = [u for row in rows if row.enabled and (u := self._upstream(row))]
        self._snapshot = _Snapshot(in_order(upstreams))

    def routes(self, model: str) -> list[Route]:
        """Enabled providers whose patterns match, lower priority first, then by name."""
        return [u.route(model) for u in self._snapshot.candidates(model)]

    def models(self) -> list[str]:
        """The model names the enabled providers name exactly (patterns without wildcards, and
        model map entries), sorted: what a model listing can show. Models reached only through
        a wildcard cannot be listed."""
        return sorted(
            {name for u in self._snapshot.upstreams for name in u.model_map}
            | {p for u in self._snapshot.upstreams for p in u.patterns if not is_glob(p)}
        )

    def _upstream(self, row: Provider) -> Upstream | None:
        api_key = None
        if row.api_key_secret is not None:
            try:
                api_key = self._crypto.decrypt(row.api_key_secret)
            except DecryptionFailed as failure:
                # Routing without the key would only collect 401s from the upstream.
                log.error("provider %s left out of routing: its API key %s", row.name, failure)
                return None
        return Upstream(
            id=row.id,
            name=row.name,
            base_url=row.base_url,
            patterns=tuple(row.models),
            model_map=dict(row.model_map),
            priority=row.priority,
            timeout_seconds=row.timeout_seconds,
            api_key=api_key,
            api_key_env=row.api_key_env,
        )
