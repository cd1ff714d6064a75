"""Writing alerts once, and publishing them for live updates after the transaction commits.

The row is the durable record; the Redis event only tells listeners now. An event is built
inside the transaction but published by the caller after commit, so nobody hears of an alert
that was rolled back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account
from tollgate.notifications.models import KINDS, Notification

log = logging.getLogger(__name__)
ALERTS_CHANNEL = "tollgate:alerts"


async def notify_once(
    session: AsyncSession,
    *,
    account_id: int | None,
    kind: str,
    subject: str,
    window: str,
    payload: dict[str, Any],
) -> dict[str, Any] | None:
    """Write the alert unless this account already had it for this subject and window.
    Returns the event to publish after commit when the row is new, else None."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    # ON CONFLICT names the partial unique index that applies to this row.
    if account_id is None:
        elements = ["kind", "subject", "window_key"]
        partial = Notification.account_id.is_(None)
    else:
        elements = ["account_id", "kind", "subject", "window_key"]
        partial = Notification.account_id.is_not(None)
    row = (
        await session.execute(
            insert(Notification)
            .values(
                account_id=account_id,
                kind=kind,
                subject=subject,
                window_key=window,
                payload=payload,
            )
            .on_conflict_do_nothing(index_elements=elements, index_where=partial)
            .returning(Notification.id, Notification.created_at)
        )
    ).one_or_none()
    if row is None:
        return None
    external_id = None
    if account_id is not None:
        external_id = await session.scalar(
            select(Account.external_id).where(Account.id == account_id)
        )
    return {
        "id": str(row.id),
        "kind": kind,
        "accountExternalId": external_id,
        "subject": subject,
        "window": window,
        "payload": payload,
        "createdAt": row.created_at.isoformat(),
    }


def alert_messages(events: Sequence[dict[str, Any] | None]) -> list[str]:
    """The messages to publish on ALERTS_CHANNEL for these events (None: no new alert)."""
    return [json.dumps(e, separators=(",", ":"), default=str) for e in events if e]


async def publish_alerts(redis: Redis, events: Sequence[dict[str, Any] | None]) -> None:
    """Publish events on ALERTS_CHANNEL. Call after commit. A Redis failure is logged, not
    raised: the change is committed and the rows remain for anyone who reads them."""
    messages = alert_messages(events)
    if not messages:
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(ALERTS_CHANNEL, message)
            await pipe.execute()
    except RedisError:
        log.exception("could not publish %d alert(s)", len(messages))


async def page(
    session: AsyncSession, *, account_id: int | None, first: int, before_id: int | None
) -> Sequence[tuple[Notification, str | None]]:
    """Newest first, with each row's account external id; one extra row tells the caller
    whether another page exists. `account_id` None lists every account's and global ones."""
    query = (
        select(Notification, Account.external_id)
        .outerjoin(Account, Account.id == Notification.account_id)
        .order_by(Notification.id.desc())
        .limit(first + 1)
    )
    if account_id is not None:
        query = query.where(Notification.account_id == account_id)
    if before_id is not None:
        query = query.where(Notification.id < before_id)
    return [(n, external_id) for n, external_id in (await session.execute(query)).all()]
