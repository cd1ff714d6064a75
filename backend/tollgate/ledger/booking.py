"""The low-level writes every ledger operation is made of. Callers hold the wallet locks."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account
from tollgate.db import table_of
from tollgate.ledger.models import CreditGrant, LedgerEntry, LedgerTransaction, Wallet

# System wallets sit on the other side of every booking. Fixed negative ids: never collide with
# generated ones, and need no look-up.
ISSUANCE_WALLET = -1
CONSUMPTION_WALLET = -2
EXPIRY_WALLET = -3
SYSTEM_WALLETS = {
    "issuance": ISSUANCE_WALLET,
    "consumption": CONSUMPTION_WALLET,
    "expiry": EXPIRY_WALLET,
}


@dataclass(frozen=True)
class Entry:
    wallet_id: int
    amount: int
    grant_id: int | None = None


async def new_transaction(
    session: AsyncSession,
    *,
    kind: str,
    amount: int,
    actor: str,
    reason: str = "",
    account_id: int | None = None,
    organization_id: int | None = None,
    counterparty_account_id: int | None = None,
    refund_of: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    tx_id = uuid.uuid4()
    await session.execute(
        insert(LedgerTransaction).values(
            id=tx_id,
            kind=kind,
            amount=amount,
            actor=actor,
            reason=reason,
            account_id=account_id,
            organization_id=organization_id,
            counterparty_account_id=counterparty_account_id,
            refund_of=refund_of,
            idempotency_key=idempotency_key,
            details=dict(details or {}),
        )
    )
    return tx_id


async def add_entries(session: AsyncSession, tx_id: uuid.UUID, entries: Iterable[Entry]) -> None:
    legs = [e for e in entries if e.amount != 0]
    if sum(e.amount for e in legs) != 0:
        raise AssertionError("a ledger transaction's entries must sum to zero")
    await session.execute(
        insert(LedgerEntry),
        [
            {
                "transaction_id": tx_id,
                "wallet_id": e.wallet_id,
                "grant_id": e.grant_id,
                "amount": e.amount,
            }
            for e in legs
        ],
    )


async def create_grant(
    session: AsyncSession,
    *,
    wallet_id: int,
    tx_id: uuid.UUID,
    source: str,
    amount: int,
    priority: int,
    expires_at: datetime | None,
) -> int:
    grant_id = await session.scalar(
        insert(CreditGrant)
        .values(
            wallet_id=wallet_id,
            transaction_id=tx_id,
            source=source,
            amount=amount,
            remaining=amount,
            priority=priority,
            expires_at=expires_at,
        )
        .returning(CreditGrant.id)
    )
    assert grant_id is not None
    return int(grant_id)


async def change_grants(session: AsyncSession, deltas: Mapping[int, int]) -> None:
    """Add to grants' `remaining`, one executemany whatever their number."""
    grants = table_of(CreditGrant)
    await _add(session, grants, grants.c.remaining, deltas)


async def change_pool_drawn(session: AsyncSession, deltas: Mapping[int, int]) -> None:
    """Add to members' net draws from their organisation's pool."""
    accounts = table_of(Account)
    await _add(session, accounts, accounts.c.pool_drawn, deltas)


async def change_wallets(session: AsyncSession, deltas: Mapping[int, tuple[int, int]]) -> None:
    """Add (balance, reserved) to wallets."""
    rows = [{"key": w, "b": b, "r": r} for w, (b, r) in deltas.items() if b or r]
    if rows:
        wallets = table_of(Wallet)
        await session.execute(
            update(wallets)
            .where(wallets.c.id == bindparam("key"))
            .values(
                balance=wallets.c.balance + bindparam("b"),
                reserved=wallets.c.reserved + bindparam("r"),
            ),
            rows,
        )


async def _add(session: AsyncSession, table: Table, column: Any, deltas: Mapping[int, int]) -> None:
    rows = [{"key": k, "delta": d} for k, d in deltas.items() if d]
    if rows:
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("key"))
            .values({column: column + bindparam("delta")}),
            rows,
        )


async def mark_expired(session: AsyncSession, grant_id: int) -> None:
    await session.execute(
        update(CreditGrant)
        .where(CreditGrant.id == grant_id)
        .values(remaining=0, expired_at=func.now())
    )


async def change_wallet(session: AsyncSession, wallet_id: int, delta: int) -> None:
    await change_wallets(session, {wallet_id: (delta, 0)})
