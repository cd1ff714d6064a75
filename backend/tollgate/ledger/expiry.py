"""Expiring grants past their `expiresAt`: the hourly job's work.

Each wallet is handled in its own transaction under its row lock; a wallet locked by another
booking or another run is skipped (whoever holds it expires its overdue grants too, since every
lock does). Each expiry carries the key `expiry:<grant id>`, so running twice or concurrently
books each expiry exactly once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from tollgate.db import Database
from tollgate.ledger import wallets
from tollgate.ledger.models import CreditGrant


async def expire_due_grants(db: Database, *, now: datetime, batch: int = 500) -> int:
    expired = 0
    async with db.transaction() as session:
        due = (
            await session.scalars(
                select(CreditGrant.wallet_id)
                .where(CreditGrant.remaining > 0, CreditGrant.expires_at <= now)
                .distinct()
                .limit(batch)
            )
        ).all()
    for wallet_id in due:
        async with db.transaction() as session:
            wallet = await wallets.try_lock(session, wallet_id, now=now, skip_locked=True)
            if wallet is not None:
                expired += wallet.expired
    return expired
