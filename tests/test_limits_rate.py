"""Requests per minute in Redis: a sliding window, exact under concurrency."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from tollgate.limits.rate import RateLimiter

T0 = 1_800_000_000.0


@pytest.fixture
def limiter(redis: Redis) -> RateLimiter:
    # A prefix of its own: Redis is shared by every test of the run.
    return RateLimiter(redis, prefix=f"test:rate:{uuid.uuid4().hex}:")


async def test_n_per_minute_then_retry_after(limiter: RateLimiter) -> None:
    for i in range(5):
        assert await limiter.hit(1, 5, now=T0 + i) is None
    # The oldest (T0) leaves the window at T0 + 60.
    assert await limiter.hit(1, 5, now=T0 + 10) == 50.0
    wait = await limiter.hit(1, 5, now=T0 + 59.5)
    assert wait is not None and 0 < wait <= 60
    assert await limiter.hit(1, 5, now=T0 + 60) is None
    # Refused hits were not counted: the next slot frees when T0 + 1 leaves.
    assert await limiter.hit(1, 5, now=T0 + 60.5) == 0.5
    assert await limiter.hit(1, 5, now=T0 + 61) is None


async def test_slots_free_as_time_passes(limiter: RateLimiter) -> None:
    for _ in range(3):
        assert await limiter.hit(7, 3, now=T0) is None
    wait = await limiter.hit(7, 3, now=T0 + 0.001)
    assert wait is not None and 59 < wait <= 60
    for _ in range(3):
        assert await limiter.hit(7, 3, now=T0 + 60) is None
    assert await limiter.hit(7, 3, now=T0 + 60) is not None


async def test_accounts_are_counted_apart(limiter: RateLimiter) -> None:
    assert await limiter.hit(1, 1, now=T0) is None
    assert await limiter.hit(1, 1, now=T0) is not None
    assert await limiter.hit(2, 1, now=T0) is None


async def test_a_lowered_limit_waits_for_enough_requests_to_leave(limiter: RateLimiter) -> None:
    for i in range(5):
        assert await limiter.hit(1, 10, now=T0 + i) is None
    # Five in the window, two allowed: one slot frees when the fourth oldest (T0 + 3) leaves.
    assert await limiter.hit(1, 2, now=T0 + 10) == 53.0


async def test_redis_clock_when_no_time_is_given(limiter: RateLimiter) -> None:
    assert await limiter.hit(1, 2) is None
    assert await limiter.hit(1, 2) is None
    wait = await limiter.hit(1, 2)
    assert wait is not None and 0 < wait <= 60


async def test_concurrent_hits_never_exceed_the_limit(limiter: RateLimiter) -> None:
    results = await asyncio.gather(*(limiter.hit(1, 10, now=T0) for _ in range(50)))
    assert sum(r is None for r in results) == 10
