"""Recently authenticated keys and sessions, kept briefly so a hot path does not query the key
and session tables on every request. Revoking a key publishes "keys", ending or changing a
session (logout, a user disabled or given another role) publishes "sessions", and every
replica forgets that cache at once; the TTL bounds staleness should that message be lost. A
session is never kept past its own end. Failed look-ups are never cached, so a new key or
session works immediately."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tollgate.auth import service, sessions
from tollgate.auth.service import Principal
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus

TOPIC = "keys"
SESSIONS_TOPIC = "sessions"
# Beyond this many cached sessions the cache starts over rather than grow without bound.
MAX_SESSIONS = 10_000


class PrincipalCache:
    def __init__(
        self,
        db: Database,
        bus: InvalidationBus | None,
        *,
        ttl: float = 30.0,
        session_idle: timedelta = timedelta(hours=12),
    ) -> None:
        self._db, self._bus, self._ttl = db, bus, ttl
        self.session_idle = session_idle
        self._known: dict[str, tuple[Principal, float]] = {}
        self._sessions: dict[str, tuple[Principal, float]] = {}
        if bus is not None:
            bus.on(TOPIC, self._forget)
            bus.on(SESSIONS_TOPIC, self._forget_sessions)

    async def _forget(self, _: str) -> None:
        self.forget()

    async def _forget_sessions(self, _: str) -> None:
        self._sessions.clear()

    def forget(self) -> None:
        self._known.clear()
        self._sessions.clear()

    async def revoked(self) -> None:
        """After a revocation commits: forget here at once, and tell the other replicas."""
        self.forget()
        if self._bus is not None:
            await self._bus.publish(TOPIC)

    async def sessions_changed(self) -> None:
        """After a session ended or a user changed (role, disabled) and that committed."""
        self._sessions.clear()
        if self._bus is not None:
            await self._bus.publish(SESSIONS_TOPIC)

    async def authenticate(self, secret: str) -> Principal | None:
        """The admin key with this secret."""
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

    async def session(self, token: str) -> Principal | None:
        """The signed-in user whose session cookie holds this token."""
        digest = service.hash_secret(token)
        cached = self._sessions.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._db.transaction() as session:
            found = await sessions.resolve(session, token, idle=self.session_idle)
        if found is None:
            self._sessions.pop(digest, None)
            return None
        left = (found.expires_at - datetime.now(UTC)).total_seconds()
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions.clear()
        self._sessions[digest] = (found.principal, now + min(self._ttl, max(0.0, left)))
        return found.principal
