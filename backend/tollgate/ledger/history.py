"""Reading the ledger: an account's transactions, newest first, with their effect on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.ledger.models import LedgerEntry, LedgerTransaction


@dataclass(frozen=True)
class HistoryItem:
    transaction: LedgerTransaction
    # The net change this transaction made to the wallet asked about.
    delta: int


async def wallet_history(
    session: AsyncSession, wallet_id: int, *, first: int, before_seq: int | None
) -> Sequence[HistoryItem]:
    """One extra row beyond `first` tells the caller whether another page exists."""
    delta = func.sum(LedgerEntry.amount).label("delta")
    touched = (
        select(LedgerEntry.transaction_id, delta)
        .where(LedgerEntry.wallet_id == wallet_id)
        .group_by(LedgerEntry.transaction_id)
        .subquery()
    )
    query = (
        select(LedgerTransaction, touched.c.delta)
        .join(touched, touched.c.transaction_id == LedgerTransaction.id)
        .order_by(LedgerTransaction.seq.desc())
        .limit(first + 1)
    )
    if before_seq is not None:
        query = query.where(LedgerTransaction.seq < before_seq)
    rows = (await session.execute(query)).all()
    return [HistoryItem(tx, int(d)) for tx, d in rows]


async def transaction_entries(
    session: AsyncSession, transaction_id: object
) -> Sequence[LedgerEntry]:
    return (
        await session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.transaction_id == transaction_id)
            .order_by(LedgerEntry.id)
        )
    ).all()
