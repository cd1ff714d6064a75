"""Locking a wallet for a booking, the order grants are consumed in, and reading balances.

Lock order, everywhere: account wallets (ascending id) before organisation wallets. Every
change to a wallet's grants happens under that wallet's row lock, so a booking sees a stable
set of grants and concurrent deductions serialize on the row instead of overselling.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account, Organization
from tollgate.db import driver
from tollgate.ledger import booking
from tollgate.ledger.models import CreditGrant, Wallet


@dataclass
class Grant:
    id: int
    remaining: int
    source: str
    priority: int
    expires_at: datetime | None


@dataclass
class LockedWallet:
    id: int
    kind: str
    account_id: int | None
    organization_id: int | None
    balance: int
    reserved: int
    # Live grants with credits left, in consumption order.
    grants: list[Grant] = field(default_factory=list)
    # How many overdue grants locking it expired.
    expired: int = 0

    @property
    def available(self) -> int:
        return self.balance - self.reserved


@dataclass(frozen=True)
class Balance:
    """`total`: credits the account's live grants hold; `reserved`: held for calls in flight;
    `pool`: what its organisation's pool may still give it. Spendable is `available`."""

    total: int
    reserved: int
    pool: int = 0

    @property
    def available(self) -> int:
        return max(0, self.total - self.reserved) + self.pool


CONSUMPTION_ORDER = (
    CreditGrant.expires_at.asc().nulls_last(),
    CreditGrant.priority.asc(),
    CreditGrant.id.asc(),
)


async def lock(session: AsyncSession, wallet_id: int, *, now: datetime) -> LockedWallet:
    """Lock the wallet row, expire its overdue grants in place, and load its live grants."""
    wallet = await try_lock(session, wallet_id, now=now, skip_locked=False)
    assert wallet is not None
    return wallet


async def try_lock(
    session: AsyncSession, wallet_id: int, *, now: datetime, skip_locked: bool
) -> LockedWallet | None:
    """As `lock`; with `skip_locked`, None when another transaction holds the wallet."""
    locked = await _lock_rows(session, [wallet_id], now=now, skip_locked=skip_locked)
    return locked.get(wallet_id)


async def lock_many(
    session: AsyncSession, wallet_ids: Iterable[int], *, now: datetime
) -> dict[int, LockedWallet]:
    """Lock several wallets in ascending id order with two queries, whatever their number.
    Callers lock all account wallets in one call before any organisation wallet."""
    return await _lock_rows(session, sorted(set(wallet_ids)), now=now, skip_locked=False)


# ORDER BY before FOR UPDATE: rows are locked in ascending id order, the ledger's lock order.
_LOCK = """
SELECT id, kind, account_id, organization_id, balance, reserved FROM wallets
WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE
"""
_SKIP_LOCKED = _LOCK.replace("FOR UPDATE", "FOR UPDATE SKIP LOCKED")
# Live grants in CONSUMPTION_ORDER.
_LIVE_GRANTS = """
SELECT wallet_id, id, remaining, source, priority, expires_at FROM credit_grants
WHERE wallet_id = ANY($1::bigint[]) AND remaining > 0
ORDER BY wallet_id, expires_at ASC NULLS LAST, priority ASC, id ASC
"""


async def _lock_rows(
    session: AsyncSession, wallet_ids: list[int], *, now: datetime, skip_locked: bool
) -> dict[int, LockedWallet]:
    conn = await driver(session)
    rows = await conn.fetch(_SKIP_LOCKED if skip_locked else _LOCK, wallet_ids)
    locked = {row[0]: LockedWallet(*row) for row in rows}
    if not locked:
        return locked
    # A second statement, not a join in the first: under READ COMMITTED the lock waits for the
    # previous holder, but a join would read grants from the snapshot taken before that wait.
    grants = await conn.fetch(_LIVE_GRANTS, list(locked))
    for wallet_id, *fields in grants:
        wallet = locked[wallet_id]
        grant = Grant(*fields)
        if grant.expires_at is not None and grant.expires_at <= now:
            await expire_grant(session, wallet, grant)
            wallet.expired += 1
        else:
            wallet.grants.append(grant)
    return locked


async def expire_grant(session: AsyncSession, wallet: LockedWallet, grant: Grant) -> None:
    """Book the expiry of what is left of a grant. Its key makes a second booking impossible."""
    tx_id = await booking.new_transaction(
        session,
        kind="EXPIRY",
        amount=grant.remaining,
        actor="system:expiry",
        reason="grant expired",
        account_id=wallet.account_id,
        organization_id=wallet.organization_id,
        idempotency_key=f"expiry:{grant.id}",
        details={"grantId": grant.id},
    )
    await booking.add_entries(
        session,
        tx_id,
        [
            booking.Entry(wallet.id, -grant.remaining, grant.id),
            booking.Entry(booking.EXPIRY_WALLET, grant.remaining),
        ],
    )
    await booking.mark_expired(session, grant.id)
    await booking.change_wallet(session, wallet.id, -grant.remaining)
    wallet.balance -= grant.remaining


def draw(grants: list[Grant], amount: int) -> list[tuple[Grant, int]]:
    """Take `amount` from grants in consumption order; the caller has checked it is there."""
    taken: list[tuple[Grant, int]] = []
    left = amount
    for grant in grants:
        if left == 0:
            break
        portion = min(grant.remaining, left)
        taken.append((grant, portion))
        left -= portion
    if left:
        raise AssertionError("draw() asked for more than the grants hold")
    return taken


def pool_headroom(pool: LockedWallet | None, member_cap: int | None, pool_drawn: int) -> int:
    if pool is None:
        return 0
    headroom = pool.available
    if member_cap is not None:
        headroom = min(headroom, member_cap - pool_drawn)
    return max(0, headroom)


async def account_wallet_id(session: AsyncSession, account_id: int) -> int:
    wallet_id = await session.scalar(select(Wallet.id).where(Wallet.account_id == account_id))
    assert wallet_id is not None, "every account has a wallet"
    return wallet_id


async def organization_wallet_id(session: AsyncSession, organization_id: int) -> int:
    wallet_id = await session.scalar(
        select(Wallet.id).where(Wallet.organization_id == organization_id)
    )
    assert wallet_id is not None, "every organization has a wallet"
    return wallet_id


async def _live_total(session: AsyncSession, wallet_id: int) -> tuple[int, int]:
    """(balance without grants already past their expiry, reserved), without locking."""
    overdue = (
        select(func.coalesce(func.sum(CreditGrant.remaining), 0))
        .where(
            CreditGrant.wallet_id == wallet_id,
            CreditGrant.remaining > 0,
            and_(CreditGrant.expires_at.is_not(None), CreditGrant.expires_at <= func.now()),
        )
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(Wallet.balance - overdue, Wallet.reserved).where(Wallet.id == wallet_id)
        )
    ).one()
    return int(row[0]), int(row[1])


async def account_balance(session: AsyncSession, account: Account) -> Balance:
    total, reserved = await _live_total(session, await account_wallet_id(session, account.id))
    pool = 0
    if account.organization_id is not None:
        org_total, org_reserved = await _live_total(
            session, await organization_wallet_id(session, account.organization_id)
        )
        # Read fresh: bulk bookings update these columns without touching loaded objects.
        cap, drawn = (
            await session.execute(
                select(Organization.member_cap, Account.pool_drawn)
                .join(Account, Account.organization_id == Organization.id)
                .where(Account.id == account.id)
            )
        ).one()
        pool = max(0, org_total - org_reserved)
        if cap is not None:
            pool = max(0, min(pool, cap - drawn))
    return Balance(total=total, reserved=reserved, pool=pool)


async def organization_balance(session: AsyncSession, organization: Organization) -> Balance:
    total, reserved = await _live_total(
        session, await organization_wallet_id(session, organization.id)
    )
    return Balance(total=total, reserved=reserved)
