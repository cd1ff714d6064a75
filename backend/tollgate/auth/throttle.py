"""Sign-in attempts per email address and client IP, counted in Redis (shared by replicas).

Every attempt counts, and is counted before the password is checked, so parallel guesses cannot
slip past the limit; a successful sign-in clears the count. Beyond the limit the answer is 429
until the window (which starts with the first attempt) has passed."""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

ATTEMPTS = 10
WINDOW_SECONDS = 15 * 60
PREFIX = "tollgate:login:"

# Returns the count after this attempt and the seconds left in the window.
_ATTEMPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {n, redis.call('TTL', KEYS[1])}
"""


class LoginThrottle:
    def __init__(
        self, redis: Redis, *, attempts: int = ATTEMPTS, window_seconds: int = WINDOW_SECONDS
    ) -> None:
        self._redis = redis
        self._script = redis.register_script(_ATTEMPT)
        self.attempts, self.window_seconds = attempts, window_seconds

    @staticmethod
    def _key(email: str, ip: str) -> str:
        # Hashed: keys in Redis should not spell out who tried to sign in from where.
        digest = hashlib.sha256(f"{email.strip().lower()}\n{ip}".encode()).hexdigest()
        return PREFIX + digest

    async def attempt(self, email: str, ip: str) -> int | None:
        """None when this attempt may go ahead (it is counted); else seconds to wait."""
        count, ttl = await self._script(keys=[self._key(email, ip)], args=[self.window_seconds])
        if int(count) <= self.attempts:
            return None
        return max(1, int(ttl))

    async def succeeded(self, email: str, ip: str) -> None:
        await self._redis.delete(self._key(email, ip))
