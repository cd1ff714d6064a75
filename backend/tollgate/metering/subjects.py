"""The accounts a batch touches, found and locked together.

Lock order is the ledger's: every account wallet of the batch (ascending id), then every
organisation pool wallet (ascending id), so concurrent batches can never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from tollgate.accounts.models import Account, Organization
from tollgate.ledger import wallets
from tollgate.ledger.models import Wallet


@dataclass
class Subject:
    account_id: int
    external_id: str
    wallet_id: int
    organization_id: int | None
    pool_wallet_id: int | None
    member_cap: int | None
    pool_drawn: int = 0


async def find(session: AsyncSession, external_ids: Iterable[str]) -> dict[str, Subject]:
    rows = await _query(session, Account.external_id.in_(set(external_ids)))
    return {s.external_id: s for s in rows}


async def by_ids(session: AsyncSession, account_ids: Iterable[int]) -> list[Subject]:
    return await _query(session, Account.id.in_(set(account_ids)))


# Built once: an alias made per call costs more to construct than the query takes to run.
_POOL = aliased(Wallet)


async def _query(session: AsyncSession, condition: ColumnElement[bool]) -> list[Subject]:
    pool = _POOL
    rows = (
        await session.execute(
            select(
                Account.id,
                Account.external_id,
                Wallet.id,
                Account.organization_id,
                pool.id,
                Organization.member_cap,
            )
            .join(Wallet, Wallet.account_id == Account.id)
            .outerjoin(pool, pool.organization_id == Account.organization_id)
            .outerjoin(Organization, Organization.id == Account.organization_id)
            .where(condition)
        )
    ).all()
    return [Subject(*row) for row in rows]


async def lock(
    session: AsyncSession, subjects: Iterable[Subject], *, now: datetime
) -> dict[int, wallets.LockedWallet]:
    """Lock the wallets of these accounts and of their pools; refresh each member's pool draw."""
    chosen = list(subjects)
    locked = await wallets.lock_many(session, [s.wallet_id for s in chosen], now=now)
    members = [s for s in chosen if s.pool_wallet_id is not None]
    if members:
        locked |= await wallets.lock_many(
            session, [s.pool_wallet_id for s in members if s.pool_wallet_id], now=now
        )
        drawn = dict(
            (
                await session.execute(
                    select(Account.id, Account.pool_drawn).where(
                        Account.id.in_([s.account_id for s in members])
                    )
                )
            ).all()
        )
        for s in members:
            s.pool_drawn = int(drawn[s.account_id])
    return locked
