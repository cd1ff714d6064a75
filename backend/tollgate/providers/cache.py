"""The enabled providers in memory, so routing a call costs no query.

PostgreSQL stays the source of truth. A writer commits, then publishes the "providers" topic;
every process reloads the (small) table, decrypts the stored keys once, and swaps in the new
snapshot in one assignment. Bursts of messages coalesce into one reload, and a reload every
`refresh_seconds` covers messages lost while Redis was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from tollgate.crypto import DecryptionFailed, SecretBox
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus
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


class ProviderCache:
    def __init__(
        self,
        db: Database,
        bus: InvalidationBus | None,
        crypto: SecretBox,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._db, self._bus, self._crypto = db, bus, crypto
        self._refresh_seconds = refresh_seconds
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
        self._task = asyncio.create_task(self._follow(), name="tollgate-provider-cache")

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
                log.exception("reloading providers failed; keeping the previous ones")
