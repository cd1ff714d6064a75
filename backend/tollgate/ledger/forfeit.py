"""Taking back what is left of particular grants before they expire: a plan's unused share on a
downgrade, a canceled plan's allocation. Booked like an expiry (kind EXPIRY, to the expiry
wallet), against the named grants only, never below what holds have reserved.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.ledger import booking, wallets
from tollgate.ledger.models import LedgerTransaction


async def forfeit(
    session: AsyncSession,
    *,
    account_id: int,
    grant_ids: Collection[int],
    amount: int,
    idempotency_key: str,
    actor: str,
    reason: str,
    now: datetime,
) -> int:
    """Remove up to `amount` credits from the grants; returns how many were removed. A key seen
    before returns the first booking's amount and books nothing."""
    previous = await session.scalar(
        select(LedgerTransaction.amount).where(LedgerTransaction.idempotency_key == idempotency_key)
    )
    if previous is not None:
        return int(previous)
    wallet = await wallets.lock(
        session, await wallets.account_wallet_id(session, account_id), now=now
    )
    wanted = [g for g in wallet.grants if g.id in set(grant_ids)]
    take = min(amount, sum(g.remaining for g in wanted), max(0, wallet.balance - wallet.reserved))
    if take <= 0:
        return 0
    taken = wallets.draw(wanted, take)
    tx_id = await booking.new_transaction(
        session,
        kind="EXPIRY",
        amount=take,
        actor=actor,
        reason=reason,
        account_id=wallet.account_id,
        idempotency_key=idempotency_key,
        details={"grantIds": [g.id for g, _ in taken]},
    )
    await booking.add_entries(
        session,
        tx_id,
        [booking.Entry(wallet.id, -part, grant.id) for grant, part in taken]
        + [booking.Entry(booking.EXPIRY_WALLET, take)],
    )
    await booking.change_grants(session, {grant.id: -part for grant, part in taken})
    await booking.change_wallet(session, wallet.id, -take)
    return take


async def expired_amounts(session: AsyncSession, grant_ids: Collection[int]) -> int:
    """Credits of these grants that ran out unused at their expiry (see wallets.expire_grant)."""
    if not grant_ids:
        return 0
    keys = [f"expiry:{g}" for g in grant_ids]
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerTransaction.amount), 0)).where(
            LedgerTransaction.idempotency_key.in_(keys)
        )
    )
    return int(total or 0)
