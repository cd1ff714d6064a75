"""Requests per minute per account, as a sliding window in Redis.

Each allowed request is a member of a sorted set scored by its time in milliseconds. One Lua
script drops members older than a minute, counts the rest and adds the new one only when under
the limit, so concurrent replicas can never let more through than the limit. Without an
explicit `now` the script reads Redis's clock, which every replica shares.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

WINDOW_MS = 60_000

# Returns -1 when the request is counted, else the milliseconds until enough members age out.
_HIT = """
local key = KEYS[1]
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
  return -1
end
if limit < 1 then
  return window
end
-- The slot frees when the member at this rank leaves the window: then limit - 1 remain.
local edge = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
return math.max(1, tonumber(edge[2]) + window - now)
"""


class RateLimiter:
    def __init__(self, redis: Redis, *, prefix: str = "tollgate:rate:") -> None:
        self._script = redis.register_script(_HIT)
        self._prefix = prefix

    async def hit(self, account_id: int, per_minute: int, now: float | None = None) -> float | None:
        """None when the request is allowed (and counted); otherwise the seconds until a slot
        frees, for retryAfterSeconds / Retry-After. `now` is Unix time in seconds."""
        at = "" if now is None else str(int(now * 1000))
        wait_ms = int(
            await self._script(
                keys=[f"{self._prefix}{account_id}"],
                args=[at, WINDOW_MS, per_minute, uuid.uuid4().hex],
            )
        )
        return None if wait_ms < 0 else wait_ms / 1000
