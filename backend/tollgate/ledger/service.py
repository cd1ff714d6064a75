"""The ledger's business operations: grant, deduct, refund, transfer.

Each runs inside the caller's transaction and is idempotent by the request's key: input is
checked first (nothing written on a bad request), then the key is claimed, then the wallets are
locked and the booking written. A replayed key returns the stored first result.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate import idempotency
from tollgate.accounts.models import Account, Organization
from tollgate.accounts.service import get_account, get_organization
from tollgate.errors import (
    AccountNotFound,
    IdempotencyConflict,
    InsufficientCredits,
    OrganizationNotFound,
    Rejected,
    ValidationFailed,
)
from tollgate.ledger import booking, wallets
from tollgate.ledger.models import CreditGrant, LedgerEntry, LedgerTransaction
from tollgate.ledger.requests import (
    DeductRequest,
    GrantRequest,
    LedgerRequest,
    RefundRequest,
    TransferRequest,
    check_common,
    check_grant,
    check_transfer,
    expiry_passed,
    fingerprint_params,
)
from tollgate.ledger.spending import LedgerWriter
from tollgate.ledger.wallets import Balance


@dataclass(frozen=True)
class Booked:
    transaction_id: uuid.UUID
    balance: Balance
    # Transfers: the receiving account's balance.
    counterparty_balance: Balance | None = None
    # The stored first result of a replayed idempotency key: nothing was booked this time.
    replayed: bool = field(default=False, compare=False)


Outcome = Booked | InsufficientCredits
GrantResult = (
    Booked | ValidationFailed | AccountNotFound | OrganizationNotFound | IdempotencyConflict
)
DeductResult = (
    Booked | InsufficientCredits | ValidationFailed | AccountNotFound | IdempotencyConflict
)
RefundResult = Booked | ValidationFailed | AccountNotFound | IdempotencyConflict
TransferResult = DeductResult


def utcnow() -> datetime:
    return datetime.now(UTC)


def _balance_json(b: Balance | None) -> list[int] | None:
    return None if b is None else [b.total, b.reserved, b.pool]


def _to_response(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, InsufficientCredits):
        return {"insufficient": [outcome.available, outcome.requested]}
    return {
        "tx": str(outcome.transaction_id),
        "balance": _balance_json(outcome.balance),
        "counterparty": _balance_json(outcome.counterparty_balance),
    }


def _from_response(response: dict[str, Any]) -> Outcome:
    if "insufficient" in response:
        available, requested = response["insufficient"]
        return InsufficientCredits(available=available, requested=requested)
    other = response.get("counterparty")
    return Booked(
        transaction_id=uuid.UUID(response["tx"]),
        balance=Balance(*response["balance"]),
        counterparty_balance=Balance(*other) if other else None,
        replayed=True,
    )


async def _once(
    session: AsyncSession,
    operation: str,
    request: LedgerRequest,
    work: Callable[[], Awaitable[Outcome]],
) -> Outcome | IdempotencyConflict:
    claim = await idempotency.claim(
        session, request.idempotency_key, operation, fingerprint_params(request)
    )
    if isinstance(claim, idempotency.Conflict):
        return IdempotencyConflict(request.idempotency_key)
    if isinstance(claim, idempotency.Replayed):
        return _from_response(claim.response)
    outcome = await work()
    await idempotency.store(session, claim.key, _to_response(outcome))
    return outcome


def _ledger_key(request: LedgerRequest) -> str:
    return "client:" + request.idempotency_key


async def grant_credits(session: AsyncSession, request: GrantRequest, *, actor: str) -> GrantResult:
    if (invalid := check_grant(request)) is not None:
        return invalid
    account: Account | None = None
    org: Organization | None = None
    if request.account_external_id is not None:
        account = await get_account(session, request.account_external_id)
        if account is None:
            return AccountNotFound(request.account_external_id)
        wallet_id = await wallets.account_wallet_id(session, account.id)
    else:
        assert request.organization_external_id is not None
        org = await get_organization(session, request.organization_external_id)
        if org is None:
            return OrganizationNotFound(request.organization_external_id)
        wallet_id = await wallets.organization_wallet_id(session, org.id)

    async def work() -> Outcome:
        now = utcnow()
        if (passed := expiry_passed(request, now)) is not None:
            raise Rejected(passed)
        wallet = await wallets.lock(session, wallet_id, now=now)
        tx_id = await booking.new_transaction(
            session,
            kind="GRANT",
            amount=request.amount,
            actor=actor,
            reason=request.reason,
            account_id=wallet.account_id,
            organization_id=wallet.organization_id,
            idempotency_key=_ledger_key(request),
            details={"source": request.source},
        )
        grant_id = await booking.create_grant(
            session,
            wallet_id=wallet.id,
            tx_id=tx_id,
            source=request.source,
            amount=request.amount,
            priority=request.priority,
            expires_at=request.expires_at,
        )
        await booking.add_entries(
            session,
            tx_id,
            [
                booking.Entry(booking.ISSUANCE_WALLET, -request.amount),
                booking.Entry(wallet.id, request.amount, grant_id),
            ],
        )
        await booking.change_wallet(session, wallet.id, request.amount)
        if account is not None:
            balance = await wallets.account_balance(session, account)
        else:
            assert org is not None
            balance = await wallets.organization_balance(session, org)
        return Booked(tx_id, balance)

    outcome = await _once(session, "grantCredits", request, work)
    assert not isinstance(outcome, InsufficientCredits), "a grant never lacks credits"
    return outcome


async def _pool_drawn(session: AsyncSession, account_id: int) -> int:
    drawn = await session.scalar(select(Account.pool_drawn).where(Account.id == account_id))
    return int(drawn or 0)


async def deduct_credits(
    session: AsyncSession, request: DeductRequest, *, actor: str
) -> DeductResult:
    if (invalid := check_common(request)) is not None:
        return invalid
    account = await get_account(session, request.account_external_id)
    if account is None:
        return AccountNotFound(request.account_external_id)
    wallet_id = await wallets.account_wallet_id(session, account.id)

    async def work() -> Outcome:
        now = utcnow()
        wallet = await wallets.lock(session, wallet_id, now=now)
        own = min(max(0, wallet.available), request.amount)
        pool: wallets.LockedWallet | None = None
        pool_take = request.amount - own
        headroom = 0
        if pool_take and account.organization_id is not None:
            # Member before pool: the lock order every operation follows.
            pool = await wallets.lock(
                session,
                await wallets.organization_wallet_id(session, account.organization_id),
                now=now,
            )
            cap = await session.scalar(
                select(Organization.member_cap).where(Organization.id == account.organization_id)
            )
            headroom = wallets.pool_headroom(pool, cap, await _pool_drawn(session, account.id))
        if own + headroom < request.amount:
            return InsufficientCredits(available=own + headroom, requested=request.amount)

        writer = LedgerWriter(actor)
        tx_id = writer.spend(
            account_id=account.id,
            wallet=wallet,
            own=own,
            pool=pool,
            pool_take=pool_take,
            reason=request.reason,
            idempotency_key=_ledger_key(request),
            details={"pool": pool_take} if pool_take else {},
        )
        await writer.flush(session)
        return Booked(tx_id, await wallets.account_balance(session, account))

    return await _once(session, "deductCredits", request, work)


async def _refunded_so_far(session: AsyncSession, deduction_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerTransaction.amount), 0)).where(
            LedgerTransaction.refund_of == deduction_id, LedgerTransaction.kind == "REFUND"
        )
    )
    return int(total or 0)


async def _live_grant_ids(session: AsyncSession, ids: set[int], now: datetime) -> set[int]:
    """Grants that may take credits back: not expired, whatever they hold now (a grant drawn
    down to zero is still live until its expiry)."""
    rows = await session.scalars(
        select(CreditGrant.id).where(
            CreditGrant.id.in_(ids),
            CreditGrant.expired_at.is_(None),
            (CreditGrant.expires_at.is_(None)) | (CreditGrant.expires_at > now),
        )
    )
    return set(rows.all())


def _over_refund(left: int) -> ValidationFailed:
    return ValidationFailed("amount", f"above what is left to refund of that deduction ({left})")


async def refund_credits(
    session: AsyncSession, request: RefundRequest, *, actor: str
) -> RefundResult:
    """Give back (part of) a deduction, to the grants it drew from, latest-drawn first.

    A grant that has expired since is not revived: its share comes back as a new ADJUSTMENT
    grant without expiry in the same wallet, so a refund never loses credits.
    """
    if (invalid := check_common(request)) is not None:
        return invalid
    account = await get_account(session, request.account_external_id)
    if account is None:
        return AccountNotFound(request.account_external_id)
    deduction = await session.get(LedgerTransaction, request.refund_of)
    if deduction is None or deduction.kind != "DEDUCT" or deduction.account_id != account.id:
        return ValidationFailed("refundOf", "not a deduction of this account")
    wallet_id = await wallets.account_wallet_id(session, account.id)

    async def work() -> Outcome:
        now = utcnow()
        locked = {wallet_id: await wallets.lock(session, wallet_id, now=now)}
        if deduction.organization_id is not None:
            pool_id = await wallets.organization_wallet_id(session, deduction.organization_id)
            locked[pool_id] = await wallets.lock(session, pool_id, now=now)
        already = await _refunded_so_far(session, deduction.id)
        if request.amount > deduction.amount - already:
            raise Rejected(_over_refund(deduction.amount - already))

        drawn = (
            await session.execute(
                select(LedgerEntry.wallet_id, LedgerEntry.grant_id, -LedgerEntry.amount)
                .where(LedgerEntry.transaction_id == deduction.id, LedgerEntry.amount < 0)
                .order_by(LedgerEntry.id.desc())
            )
        ).all()
        live = await _live_grant_ids(session, {g for _, g, _ in drawn if g is not None}, now)
        tx_id = await booking.new_transaction(
            session,
            kind="REFUND",
            amount=request.amount,
            actor=actor,
            reason=request.reason,
            account_id=account.id,
            organization_id=deduction.organization_id,
            refund_of=deduction.id,
            idempotency_key=_ledger_key(request),
        )
        entries = [booking.Entry(booking.CONSUMPTION_WALLET, -request.amount)]
        deltas: dict[int, int] = {}
        revived: dict[int, int] = defaultdict(int)  # wallet -> credits of expired grants
        per_wallet: dict[int, int] = defaultdict(int)
        skip, want = already, request.amount
        for wid, grant_id, amount in drawn:
            portion = min(max(0, amount - skip), want)
            skip = max(0, skip - amount)
            if portion == 0:
                continue
            want -= portion
            per_wallet[wid] += portion
            if grant_id in live:
                entries.append(booking.Entry(wid, portion, grant_id))
                deltas[grant_id] = deltas.get(grant_id, 0) + portion
            else:
                revived[wid] += portion
        for wid, amount in revived.items():
            grant_id = await booking.create_grant(
                session,
                wallet_id=wid,
                tx_id=tx_id,
                source="ADJUSTMENT",
                amount=amount,
                priority=100,
                expires_at=None,
            )
            entries.append(booking.Entry(wid, amount, grant_id))
        await booking.add_entries(session, tx_id, entries)
        await booking.change_grants(session, deltas)
        await booking.change_wallets(session, {w: (a, 0) for w, a in per_wallet.items()})
        from_pool = sum(a for w, a in per_wallet.items() if locked[w].kind == "ORGANIZATION")
        await booking.change_pool_drawn(session, {account.id: -from_pool})
        return Booked(tx_id, await wallets.account_balance(session, account))

    outcome = await _once(session, "refundCredits", request, work)
    assert not isinstance(outcome, InsufficientCredits)
    return outcome


async def transfer_credits(
    session: AsyncSession, request: TransferRequest, *, actor: str
) -> TransferResult:
    """Move credits between two accounts' own grants (never an organisation pool). Each drawn
    grant reappears on the receiver with its source, priority and expiry, so a transfer cannot
    extend the life of credits."""
    if (invalid := check_transfer(request)) is not None:
        return invalid
    sender = await get_account(session, request.from_account_external_id)
    if sender is None:
        return AccountNotFound(request.from_account_external_id)
    receiver = await get_account(session, request.to_account_external_id)
    if receiver is None:
        return AccountNotFound(request.to_account_external_id)
    ids = {
        sender.id: await wallets.account_wallet_id(session, sender.id),
        receiver.id: await wallets.account_wallet_id(session, receiver.id),
    }

    async def work() -> Outcome:
        now = utcnow()
        locked = {wid: await wallets.lock(session, wid, now=now) for wid in sorted(ids.values())}
        source, target = locked[ids[sender.id]], locked[ids[receiver.id]]
        if source.available < request.amount:
            return InsufficientCredits(available=max(0, source.available), requested=request.amount)
        tx_id = await booking.new_transaction(
            session,
            kind="TRANSFER",
            amount=request.amount,
            actor=actor,
            reason=request.reason,
            account_id=sender.id,
            counterparty_account_id=receiver.id,
            idempotency_key=_ledger_key(request),
        )
        entries: list[booking.Entry] = []
        deltas: dict[int, int] = {}
        for grant, portion in wallets.draw(source.grants, request.amount):
            copy_id = await booking.create_grant(
                session,
                wallet_id=target.id,
                tx_id=tx_id,
                source=grant.source,
                amount=portion,
                priority=grant.priority,
                expires_at=grant.expires_at,
            )
            entries += [
                booking.Entry(source.id, -portion, grant.id),
                booking.Entry(target.id, portion, copy_id),
            ]
            deltas[grant.id] = -portion
        await booking.add_entries(session, tx_id, entries)
        await booking.change_grants(session, deltas)
        await booking.change_wallets(
            session, {source.id: (-request.amount, 0), target.id: (request.amount, 0)}
        )
        return Booked(
            tx_id,
            await wallets.account_balance(session, sender),
            await wallets.account_balance(session, receiver),
        )

    return await _once(session, "transferCredits", request, work)


async def live_grants(session: AsyncSession, wallet_id: int) -> list[CreditGrant]:
    return list(
        (
            await session.scalars(
                select(CreditGrant)
                .where(
                    CreditGrant.wallet_id == wallet_id,
                    CreditGrant.remaining > 0,
                    (CreditGrant.expires_at.is_(None)) | (CreditGrant.expires_at > func.now()),
                )
                .order_by(*wallets.CONSUMPTION_ORDER)
            )
        ).all()
    )
