"""Publishing live updates after a transaction commits, never before: nobody hears of a
booking that was rolled back. A Redis failure is logged, not raised: the booking is
committed, and PostgreSQL keeps the record for anyone who reads it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tollgate.accounts.service import get_account
from tollgate.db import Database
from tollgate.ledger import wallets
from tollgate.live import ticker
from tollgate.live.channels import (
    ALERTS_CHANNEL,
    BALANCE_CHANNEL,
    PRICING_PUBLISHED_CHANNEL,
    USAGE_CHANNEL,
    balance_change,
    check_pricing_published,
    encode,
)
from tollgate.notifications.service import alert_messages

log = logging.getLogger(__name__)


async def after_commit(
    redis: Redis,
    *,
    alerts: Sequence[dict[str, Any] | None] = (),
    usage: Sequence[dict[str, Any]] = (),
    balances: Sequence[dict[str, Any]] = (),
) -> None:
    """Everything one committed transaction tells listeners, in one pipeline: one round trip
    however many events, and none when there is nothing to tell."""
    messages = alert_messages(alerts)
    if not (messages or usage or balances):
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(ALERTS_CHANNEL, message)
            if usage:
                pipe.publish(USAGE_CHANNEL, encode(list(usage)))
                ticker.add_usage(pipe, usage, int(time.time()))
            if balances:
                pipe.publish(BALANCE_CHANNEL, encode(_last_per_account(balances)))
            await pipe.execute()
    except RedisError:
        log.exception(
            "could not publish %d alert(s), %d usage event(s), %d balance change(s)",
            len(messages),
            len(usage),
            len(balances),
        )


def _last_per_account(balances: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One change per account per transaction: its balance once the transaction is done."""
    return list({b["accountExternalId"]: b for b in balances}.values())


async def publish_balances(redis: Redis, balances: Sequence[dict[str, Any]]) -> None:
    await after_commit(redis, balances=balances)


async def publish_account_balance(
    db: Database, redis: Redis, account_external_id: str, reason: str
) -> None:
    """After a commit whose bookings were not collected on the way (plan changes, renewals,
    purchases): read the account's balance now and tell subscribers."""
    async with db.transaction() as session:
        account = await get_account(session, account_external_id)
        if account is None:
            return
        balance = await wallets.account_balance(session, account)
    change = balance_change(account_external_id, balance, reason, datetime.now(UTC))
    await publish_balances(redis, [change])


async def publish_pricing_published(redis: Redis, payload: dict[str, Any]) -> None:
    """Tell subscribers a plan's pricing version was published; call after the commit.
    `payload`: {"planCode", "versionId", "version", "publishedAt" (ISO), "migrate"}."""
    check_pricing_published(payload)
    try:
        await redis.publish(PRICING_PUBLISHED_CHANNEL, encode(payload))
    except RedisError:
        log.exception("could not publish pricing version %s", payload.get("versionId"))
