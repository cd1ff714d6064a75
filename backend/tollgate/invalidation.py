"""Telling every replica that cached configuration changed, through Redis pub/sub.

A writer commits to PostgreSQL, then publishes a topic name ("controls", "pricing", …). Each
process runs one listener that calls the callbacks registered for that topic, which reload
from PostgreSQL (the source of truth). A message lost while Redis reconnects is covered by
the caches' own periodic refresh.

The listener's connection is the process's only pub/sub connection: other channels (the live
updates of tollgate.live) are attached to it with `on_channel` before `start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

log = logging.getLogger(__name__)
CHANNEL = "tollgate:invalidate"
Callback = Callable[[str], Awaitable[None]]
# Called on the listener's task for each message: must not block.
ChannelHandler = Callable[[bytes], None]


async def publish(redis: Redis, topic: str) -> None:
    await redis.publish(CHANNEL, topic)


class InvalidationBus:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._callbacks: dict[str, list[Callback]] = defaultdict(list)
        self._reloaders: dict[str, list[Callable[[], Awaitable[None]]]] = defaultdict(list)
        self._channels: dict[str, ChannelHandler] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def on(self, topic: str, callback: Callback) -> None:
        self._callbacks[topic].append(callback)

    def reload_on_publish(self, topic: str, reload: Callable[[], Awaitable[None]]) -> None:
        """Run `reload` in this process whenever this process publishes `topic`."""
        self._reloaders[topic].append(reload)

    def on_channel(self, channel: str, handler: ChannelHandler) -> None:
        """Also listen on `channel`, handing each raw message to `handler`. Before `start`."""
        assert self._task is None, "channels are subscribed when the listener starts"
        self._channels[channel] = handler

    async def publish(self, topic: str) -> None:
        await publish(self.redis, topic)
        for reload in self._reloaders.get(topic, []):
            try:
                await reload()
            except Exception:
                log.exception("reloading %s after publishing failed", topic)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="tollgate-invalidation")
        # Subscribed before start() returns, so no change published afterwards is missed.
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL, *self._channels)
                    self._ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        channel = _text(message["channel"])
                        if channel == CHANNEL:
                            await self._dispatch(_text(message["data"]))
                        else:
                            self._hand_over(channel, message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("invalidation listener lost Redis; reconnecting")
                await asyncio.sleep(0.5)

    def _hand_over(self, channel: str, data: bytes | str) -> None:
        try:
            self._channels[channel](data.encode() if isinstance(data, str) else data)
        except Exception:
            log.exception("handling a message on %s failed", channel)

    async def _dispatch(self, topic: str) -> None:
        for callback in self._callbacks.get(topic, []):
            try:
                await callback(topic)
            except Exception:
                log.exception("reloading %s failed", topic)


def _text(data: bytes | str) -> str:
    return data.decode() if isinstance(data, bytes) else data


class ReloadingCache(ABC):
    """Configuration held in memory and reloaded whole from PostgreSQL: when its topic is
    published, and every `refresh_seconds` in case a message was lost while Redis was away.
    A burst of messages coalesces into one reload; `_load` swaps in the new state in one
    assignment, so a reader sees the old state or the new one, never a mix."""

    topic: str
    name: str

    def __init__(self, bus: InvalidationBus | None, *, refresh_seconds: float) -> None:
        self._bus, self._refresh_seconds = bus, refresh_seconds
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @abstractmethod
    async def _load(self) -> None:
        """Read the whole state from PostgreSQL and swap it in."""

    async def start(self) -> None:
        """Load, then follow changes. The bus must be started by its owner."""
        await self.reload()
        if self._bus is not None:
            self._bus.on(self.topic, self._on_change)
            self._bus.reload_on_publish(self.topic, self.reload)
        self._task = asyncio.create_task(self._follow(), name=f"tollgate-{self.name}-cache")

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def reload(self) -> None:
        async with self._lock:
            await self._load()

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
                log.exception("reloading %s failed; keeping the previous state", self.name)
