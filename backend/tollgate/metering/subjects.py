"""The accounts a batch touches, found and locked together.

Lock order is the ledger's: every account wallet of the batch (ascending id), then every
organisation pool wallet (ascending id), so concurrent batches can never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
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


class Known:
    """Subjects already found, so that a busy account's transactions skip the lookup: one round
    trip less before its wallet lock. What is kept never changes once it exists: an account's
    id, wallet, organisation and that organisation's pool and member cap are set when the
    account or organisation is created, and accounts are never deleted. A change of any of
    them must invalidate this. Accounts not found are not kept: one created later is found.
    The oldest entries make way once `limit` are kept."""

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._subjects: dict[str, Subject] = {}

    def get(self, external_id: str) -> Subject | None:
        known = self._subjects.get(external_id)
        # A copy: a transaction refreshes `pool_drawn` on the subjects it locks.
        return None if known is None else replace(known)

    def keep(self, subjects: Iterable[Subject]) -> None:
        for subject in subjects:
            if len(self._subjects) >= self._limit:
                del self._subjects[next(iter(self._subjects))]
            self._subjects[subject.external_id] = replace(subject)


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
