"""Recently authenticated virtual keys, kept briefly so the gateway does not query the key
table on every call. Revoking a key publishes "apikeys" and every replica forgets its cache at
once; the TTL bounds staleness should that message be lost. Failed look-ups are never cached,
so a new key works immediately, and a cached key stops working the moment it expires."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from tollgate.apikeys import service
from tollgate.apikeys.service import VirtualKey
from tollgate.auth.service import hash_secret
from tollgate.crypto import SecretBox
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus

TOPIC = "apikeys"
TTL_SECONDS = 10.0
MAX_ENTRIES = 10_000


class VirtualKeyCache:
    def __init__(
        self,
        db: Database,
        bus: InvalidationBus | None,
        crypto: SecretBox,
        *,
        ttl: float = TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._db, self._bus, self._crypto = db, bus, crypto
        self._ttl, self._max_entries = ttl, max_entries
        self._known: dict[str, tuple[VirtualKey, float]] = {}
        if bus is not None:
            bus.on(TOPIC, self._forget)

    async def _forget(self, _: str) -> None:
        self.forget()

    def forget(self) -> None:
        self._known.clear()

    async def revoked(self) -> None:
        """After a revocation commits: forget here at once, and tell the other replicas."""
        self.forget()
        if self._bus is not None:
            await self._bus.publish(TOPIC)

    async def authenticate(self, secret: str) -> VirtualKey | None:
        digest = hash_secret(secret)
        now = datetime.now(UTC)
        clock = time.monotonic()
        cached = self._known.get(digest)
        if cached is not None and cached[1] > clock and _unexpired(cached[0], now):
            return cached[0]
        async with self._db.transaction() as session:
            key = await service.authenticate_virtual_key(session, secret, now, crypto=self._crypto)
        if key is None:
            self._known.pop(digest, None)
            return None
        if len(self._known) >= self._max_entries:
            self._evict(clock)
        self._known[digest] = (key, clock + self._ttl)
        return key

    def _evict(self, clock: float) -> None:
        self._known = {d: entry for d, entry in self._known.items() if entry[1] > clock}
        if len(self._known) >= self._max_entries:
            self._known.clear()


def _unexpired(key: VirtualKey, now: datetime) -> bool:
    return key.expires_at is None or key.expires_at > now
