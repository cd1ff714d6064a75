"""usageTicker: totals of booked usage per second, shared by every replica through Redis.

Metering adds each committed batch to a hash per second (`tollgate:ticker:<epoch second>`),
in the same pipeline that publishes the batch's events, so the totals are Redis's and not one
replica's. A second is the one in which the booking was published, on the publishing
replica's clock (replicas are expected to keep NTP time).

Windows are aligned to multiples of the interval since the epoch, so every subscriber and
every replica reports the same windows. A window is read LAG seconds after it ends, giving
publishes of its last instant time to land; subscribers of one window share one read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

KEY_PREFIX = "tollgate:ticker:"
LAG = 1.0
MIN_INTERVAL, MAX_INTERVAL = 1, 60
# Long enough for the widest window to be read after it ends.
KEEP_SECONDS = 3 * MAX_INTERVAL


@dataclass(frozen=True)
class Totals:
    start: datetime
    end: datetime
    calls: int = 0
    tokens: int = 0
    cost_micros: int = 0
    charge_micros: int = 0
    credits: int = 0


def add_usage(pipe: Pipeline, events: Sequence[dict[str, Any]], second: int) -> None:
    """Queue the batch's totals onto `pipe` (live usage payloads, see channels.usage_event)."""
    totals = {
        "calls": len(events),
        "tokens": sum(
            e["inputTokens"] + e["outputTokens"] + e["cachedInputTokens"] for e in events
        ),
        "cost": sum(e["providerCostMicros"] for e in events),
        "charge": sum(e["chargeMicros"] for e in events),
        "credits": sum(e["credits"] for e in events),
    }
    key = f"{KEY_PREFIX}{second}"
    for field, value in totals.items():
        if value:
            pipe.hincrby(key, field, value)
    pipe.expire(key, KEEP_SECONDS)


class UsageTicker:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._reads: dict[tuple[int, int], asyncio.Task[Totals]] = {}

    async def ticks(self, interval: int) -> AsyncGenerator[Totals, None]:
        """One Totals per `interval` seconds, forever, zero when nothing was booked."""
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            raise ValueError(f"interval must be {MIN_INTERVAL}..{MAX_INTERVAL} seconds")
        end = (int(time.time()) // interval + 1) * interval
        while True:
            delay = end + LAG - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            yield await self.window(end - interval, end)
            end += interval
            if end + KEEP_SECONDS < time.time():
                # A consumer stalled for minutes: those seconds are gone, resume at now.
                end = (int(time.time()) // interval + 1) * interval

    async def window(self, start: int, end: int) -> Totals:
        key = (start, end)
        read = self._reads.get(key)
        if read is None:
            read = asyncio.create_task(self._read(start, end))
            self._reads[key] = read
            read.add_done_callback(lambda _: self._reads.pop(key, None))
        # Shielded: one subscriber leaving must not cancel the read the others wait for.
        return await asyncio.shield(read)

    async def _read(self, start: int, end: int) -> Totals:
        async with self._redis.pipeline(transaction=False) as pipe:
            for second in range(start, end):
                pipe.hgetall(f"{KEY_PREFIX}{second}")
            seconds: list[dict[bytes, bytes]] = await pipe.execute()
        sums = dict.fromkeys((b"calls", b"tokens", b"cost", b"charge", b"credits"), 0)
        for counts in seconds:
            for field, value in counts.items():
                if field in sums:
                    sums[field] += int(value)
        return Totals(
            start=datetime.fromtimestamp(start, UTC),
            end=datetime.fromtimestamp(end, UTC),
            calls=sums[b"calls"],
            tokens=sums[b"tokens"],
            cost_micros=sums[b"cost"],
            charge_micros=sums[b"charge"],
            credits=sums[b"credits"],
        )
