"""The accounts a batch touches, found and locked together.

Lock order is the ledger's: every account wallet of the batch (ascending id), then every
organisation pool wallet (ascending id), so concurrent batches can never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.db import driver
from tollgate.ledger import wallets


@dataclass
class Subject:
    account_id: int
    external_id: str
    wallet_id: int
    organization_id: int | None
    pool_wallet_id: int | None
    member_cap: int | None
    pool_drawn: int = 0


# Each organisation has one pool wallet; an account outside one gets NULLs.
_SUBJECTS = """
SELECT a.id, a.external_id, w.id, a.organization_id, p.id, o.member_cap
FROM accounts a
JOIN wallets w ON w.account_id = a.id
LEFT JOIN wallets p ON p.organization_id = a.organization_id
LEFT JOIN organizations o ON o.id = a.organization_id
WHERE {condition}
"""
_BY_EXTERNAL_ID = _SUBJECTS.format(condition="a.external_id = ANY($1::text[])")
_BY_ID = _SUBJECTS.format(condition="a.id = ANY($1::bigint[])")


async def find(session: AsyncSession, external_ids: Iterable[str]) -> dict[str, Subject]:
    rows = await (await driver(session)).fetch(_BY_EXTERNAL_ID, list(set(external_ids)))
    return {row[1]: Subject(*row) for row in rows}


async def by_ids(session: AsyncSession, account_ids: Iterable[int]) -> list[Subject]:
    rows = await (await driver(session)).fetch(_BY_ID, list(set(account_ids)))
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
            await (await driver(session)).fetch(
                "SELECT id, pool_drawn FROM accounts WHERE id = ANY($1::bigint[])",
                [s.account_id for s in members],
            )
        )
        for s in members:
            s.pool_drawn = int(drawn[s.account_id])
    return locked
