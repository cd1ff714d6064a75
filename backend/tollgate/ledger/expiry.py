"""Expiring grants past their `expiresAt`: the hourly job's work.

Each wallet is handled in its own transaction under its row lock; a wallet locked by another
booking or another run is skipped (whoever holds it expires its overdue grants too, since every
lock does). Each expiry carries the key `expiry:<grant id>`, so running twice or concurrently
books each expiry exactly once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select

from tollgate.accounts.models import Account
from tollgate.db import Database
from tollgate.ledger import wallets
from tollgate.ledger.models import CreditGrant
from tollgate.live import channels
from tollgate.live import publish as live


async def expire_due_grants(
    db: Database, *, now: datetime, batch: int = 500, redis: Redis | None = None
) -> int:
    """Returns how many grants expired; with `redis`, tells live subscribers the balances of
    the accounts they belonged to, once all are committed."""
    expired = 0
    changes: list[dict[str, Any]] = []
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
                if wallet.expired and wallet.account_id is not None and redis is not None:
                    account = await session.get(Account, wallet.account_id)
                    assert account is not None
                    balance = await wallets.account_balance(session, account)
                    changes.append(
                        channels.balance_change(account.external_id, balance, "EXPIRY", now)
                    )
    if redis is not None:
        await live.publish_balances(redis, changes)
    return expired
