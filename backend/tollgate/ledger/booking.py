"""The low-level writes every ledger operation is made of. Callers hold the wallet locks."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.db import Writes
from tollgate.ledger.models import CreditGrant, LedgerEntry, LedgerTransaction

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
    """Add to grants' `remaining`, one statement whatever their number."""
    await _run(session, grant_changes, deltas)


async def change_pool_drawn(session: AsyncSession, deltas: Mapping[int, int]) -> None:
    """Add to members' net draws from their organisation's pool."""
    await _run(session, pool_drawn_changes, deltas)


async def change_wallets(session: AsyncSession, deltas: Mapping[int, tuple[int, int]]) -> None:
    """Add (balance, reserved) to wallets."""
    await _run(session, wallet_changes, deltas)


def grant_changes(writes: Writes, deltas: Mapping[int, int]) -> None:
    writes.add_deltas(_ADD_TO_GRANTS, deltas)


def pool_drawn_changes(writes: Writes, deltas: Mapping[int, int]) -> None:
    writes.add_deltas(_ADD_TO_POOL_DRAWN, deltas)


def wallet_changes(writes: Writes, deltas: Mapping[int, tuple[int, int]]) -> None:
    changed = [(w, b, r) for w, (b, r) in deltas.items() if b or r]
    if changed:
        ids, balances, reserved = (list(column) for column in zip(*changed, strict=True))
        writes.add(_ADD_TO_WALLETS, ids, balances, reserved)


# Arrays in, one UPDATE out: an executemany would cost one round trip per row.
_ADD_TO_GRANTS = """
UPDATE credit_grants t SET remaining = t.remaining + d.delta
FROM unnest($1::bigint[], $2::bigint[]) AS d(id, delta) WHERE t.id = d.id
"""
_ADD_TO_POOL_DRAWN = """
UPDATE accounts t SET pool_drawn = t.pool_drawn + d.delta
FROM unnest($1::bigint[], $2::bigint[]) AS d(id, delta) WHERE t.id = d.id
"""
_ADD_TO_WALLETS = """
UPDATE wallets t SET balance = t.balance + d.balance, reserved = t.reserved + d.reserved
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS d(id, balance, reserved)
WHERE t.id = d.id
"""


async def _run(session: AsyncSession, add: Callable[[Writes, Any], None], deltas: Any) -> None:
    writes = Writes()
    add(writes, deltas)
    await writes.run(session)


async def mark_expired(session: AsyncSession, grant_id: int) -> None:
    await session.execute(
        update(CreditGrant)
        .where(CreditGrant.id == grant_id)
        .values(remaining=0, expired_at=func.now())
    )


async def change_wallet(session: AsyncSession, wallet_id: int, delta: int) -> None:
    await change_wallets(session, {wallet_id: (delta, 0)})
