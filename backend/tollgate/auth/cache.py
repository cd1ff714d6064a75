"""Recently authenticated keys, kept briefly so a hot path does not query the key table on
every request. Revoking a key publishes "keys" and every replica forgets its cache at once;
the TTL bounds staleness should that message be lost. Failed look-ups are never cached, so a
new key works immediately."""

from __future__ import annotations

import time

from tollgate.auth import service
from tollgate.auth.service import Principal
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus

TOPIC = "keys"


class PrincipalCache:
    def __init__(self, db: Database, bus: InvalidationBus | None, *, ttl: float = 30.0) -> None:
        self._db, self._bus, self._ttl = db, bus, ttl
        self._known: dict[str, tuple[Principal, float]] = {}
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

    async def authenticate(self, secret: str) -> Principal | None:
        digest = service.hash_secret(secret)
        cached = self._known.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._db.transaction() as session:
            principal = await service.authenticate(session, secret)
        if principal is not None:
            self._known[digest] = (principal, now + self._ttl)
        else:
            self._known.pop(digest, None)
        return principal
