"""Holds on credits while a call is in flight: what is held, and letting go of expired ones."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.db import Database, driver
from tollgate.ledger.spending import LedgerWriter
from tollgate.ledger.wallets import LockedWallet
from tollgate.metering import subjects
from tollgate.metering.models import Reservation


@dataclass
class Held:
    """What an account's live holds add up to: credits, and the estimate counted by limits."""

    credits: int = 0
    pool_credits: int = 0
    tokens: int = 0
    cost_micros: int = 0
    calls: int = 0


async def expire(
    session: AsyncSession,
    writer: LedgerWriter,
    locked: dict[int, LockedWallet],
    account_ids: Iterable[int],
    now: datetime,
) -> int:
    """Close the holds of these (locked) accounts that have run out of time."""
    rows = await (await driver(session)).fetch(_EXPIRE, list(account_ids), now)
    for wallet_id, credits, pool_wallet_id, pool_credits in rows:
        give_back(writer, locked, wallet_id, credits, pool_wallet_id, pool_credits)
    return len(rows)


_EXPIRE = """
UPDATE reservations SET status = 'EXPIRED', closed_at = $2
WHERE account_id = ANY($1::bigint[]) AND status = 'HELD' AND expires_at <= $2
RETURNING wallet_id, credits, pool_wallet_id, pool_credits
"""
_HELD = """
SELECT account_id, sum(credits), sum(pool_credits), sum(estimated_tokens),
    sum(estimated_cost_micros), count(*)
FROM reservations WHERE account_id = ANY($1::bigint[]) AND status = 'HELD'
GROUP BY account_id
"""


def give_back(
    writer: LedgerWriter,
    locked: dict[int, LockedWallet],
    wallet_id: int,
    credits: int,
    pool_wallet_id: int | None,
    pool_credits: int,
) -> None:
    writer.reserve(locked[wallet_id], -credits)
    if pool_wallet_id is not None and pool_credits:
        writer.reserve(locked[pool_wallet_id], -pool_credits)


async def held(session: AsyncSession, account_ids: Iterable[int]) -> dict[int, Held]:
    rows = await (await driver(session)).fetch(_HELD, list(account_ids))
    return {row[0]: Held(*(int(v) for v in row[1:])) for row in rows}


async def release_expired(db: Database, *, now: datetime) -> int:
    """The periodic sweep: accounts that no longer call still get their expired holds back."""
    async with db.transaction() as session:
        due = (
            await session.scalars(
                select(Reservation.account_id)
                .where(Reservation.status == "HELD", Reservation.expires_at <= now)
                .distinct()
            )
        ).all()
    released = 0
    for account_id in due:
        async with db.transaction() as session:
            found = await subjects.by_ids(session, [account_id])
            locked = await subjects.lock(session, found, now=now)
            writer = LedgerWriter("system:holds")
            released += await expire(session, writer, locked, [account_id], now)
            await writer.flush(session)
    return released


async def close(
    session: AsyncSession, reservation_id: uuid.UUID, status: str, now: datetime
) -> None:
    await session.execute(
        update(Reservation)
        .where(Reservation.id == reservation_id)
        .values(status=status, closed_at=now)
    )
