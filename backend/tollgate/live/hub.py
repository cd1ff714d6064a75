"""Handing live messages to this process's subscriptions.

The hub listens on the process's one pub/sub connection (the InvalidationBus's), decodes each
message once, and offers its events to the subscriptions of that channel: those for all
accounts and those for the event's account. Each subscription has a bounded queue; when a
subscriber falls behind by more than `queue_size` events, its OLDEST events are dropped (and
counted). Nothing waits on a slow subscriber: not the listener, not the other subscribers,
and never a booking.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from functools import partial
from types import TracebackType
from typing import Any

from tollgate.invalidation import InvalidationBus
from tollgate.live.channels import (
    ALERTS_CHANNEL,
    BALANCE_CHANNEL,
    PRICING_PUBLISHED_CHANNEL,
    USAGE_CHANNEL,
)

log = logging.getLogger(__name__)
CHANNELS = (USAGE_CHANNEL, BALANCE_CHANNEL, ALERTS_CHANNEL, PRICING_PUBLISHED_CHANNEL)
Event = dict[str, Any]


class Subscription:
    def __init__(self, hub: LiveHub, channel: str, account: str | None, size: int) -> None:
        self.hub, self.channel, self.account = hub, channel, account
        self._events: deque[Event] = deque(maxlen=size)
        self._waiting = asyncio.Event()
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if len(self._events) == self._events.maxlen:
            if not self.dropped:
                log.warning("a %s subscriber fell behind; dropping its oldest events", self.channel)
            self.dropped += 1
        self._events.append(event)
        self._waiting.set()

    async def next(self, within: float) -> Event | None:
        """The oldest event not yet taken; None if none came `within` seconds."""
        if not self._events:
            self._waiting.clear()
            try:
                await asyncio.wait_for(self._waiting.wait(), within)
            except TimeoutError:
                return None
        return self._events.popleft()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.hub.unsubscribe(self)


class LiveHub:
    def __init__(self, bus: InvalidationBus, *, queue_size: int) -> None:
        self._queue_size = queue_size
        # channel -> account external id (None: every account) -> subscriptions
        self._subs: dict[str, dict[str | None, set[Subscription]]] = {c: {} for c in CHANNELS}
        for channel in CHANNELS:
            bus.on_channel(channel, partial(self._receive, channel))

    def subscribe(self, channel: str, account: str | None = None) -> Subscription:
        subscription = Subscription(self, channel, account, self._queue_size)
        self._subs[channel].setdefault(account, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        by_account = self._subs[subscription.channel]
        found = by_account.get(subscription.account)
        if found is not None:
            found.discard(subscription)
            if not found:
                del by_account[subscription.account]

    def count(self) -> int:
        return sum(len(s) for by_account in self._subs.values() for s in by_account.values())

    def _receive(self, channel: str, data: bytes) -> None:
        by_account = self._subs[channel]
        if not by_account:
            return  # nobody here listens: not even worth decoding
        decoded = json.loads(data)
        events: list[Event] = decoded if isinstance(decoded, list) else [decoded]
        everyone = by_account.get(None, ())
        for event in events:
            for subscription in everyone:
                subscription.offer(event)
            account = event.get("accountExternalId")
            if account is not None:
                for subscription in by_account.get(account, ()):
                    subscription.offer(event)
