"""GraphQL adapter of the ledger: types, and the grant/deduct/refund/transfer mutations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate import errors
from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import (
    AccountNotFound,
    IdempotencyConflict,
    InsufficientCredits,
    OrganizationNotFound,
    ValidationFailed,
    is_domain_error,
    to_graphql,
)
from tollgate.api.permissions import WRITE
from tollgate.api.scalars import BigInt
from tollgate.ledger import history, models, service, wallets
from tollgate.ledger.requests import DeductRequest, GrantRequest, RefundRequest, TransferRequest
from tollgate.live import channels
from tollgate.live import publish as live


@strawberry.enum
class GrantSource(Enum):
    PLAN_ALLOCATION = "PLAN_ALLOCATION"
    PURCHASE = "PURCHASE"
    PROMOTION = "PROMOTION"
    BONUS = "BONUS"
    BOOST = "BOOST"
    ADJUSTMENT = "ADJUSTMENT"


@strawberry.enum
class TransactionKind(Enum):
    GRANT = "GRANT"
    DEDUCT = "DEDUCT"
    REFUND = "REFUND"
    TRANSFER = "TRANSFER"
    EXPIRY = "EXPIRY"


@strawberry.type(description="Credits of an account. available = total - reserved + pool.")
class Balance:
    available: BigInt
    reserved: BigInt = strawberry.field(description="Held for calls in flight.")
    total: BigInt = strawberry.field(description="What the account's own live grants hold.")
    pool: BigInt = strawberry.field(
        description="What the organisation's shared pool may still give this member."
    )

    @classmethod
    def of(cls, b: wallets.Balance) -> Balance:
        return cls(
            available=BigInt(b.available),
            reserved=BigInt(b.reserved),
            total=BigInt(b.total),
            pool=BigInt(b.pool),
        )


@strawberry.type
class CreditGrant:
    id: strawberry.ID
    source: GrantSource
    amount: BigInt
    remaining: BigInt
    priority: int
    expires_at: datetime | None
    expired_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, g: models.CreditGrant) -> CreditGrant:
        return cls(
            id=strawberry.ID(str(g.id)),
            source=GrantSource(g.source),
            amount=BigInt(g.amount),
            remaining=BigInt(g.remaining),
            priority=g.priority,
            expires_at=g.expires_at,
            expired_at=g.expired_at,
            created_at=g.created_at,
        )


@strawberry.type(description="One leg of a transaction. System wallets have no owner.")
class LedgerEntry:
    wallet_id: strawberry.ID
    grant_id: strawberry.ID | None
    amount: BigInt


@strawberry.type
class LedgerTransaction:
    id: strawberry.ID
    kind: TransactionKind
    amount: BigInt
    reason: str
    actor: str
    refund_of: strawberry.ID | None
    created_at: datetime

    @strawberry.field(description="The balanced legs: they always sum to zero.")
    async def entries(self, info: Info) -> list[LedgerEntry]:
        async with info.context.db.transaction() as session:
            rows = await history.transaction_entries(session, uuid.UUID(self.id))
        return [
            LedgerEntry(
                wallet_id=strawberry.ID(str(e.wallet_id)),
                grant_id=strawberry.ID(str(e.grant_id)) if e.grant_id else None,
                amount=BigInt(e.amount),
            )
            for e in rows
        ]

    @classmethod
    def of(cls, t: models.LedgerTransaction) -> LedgerTransaction:
        return cls(
            id=strawberry.ID(str(t.id)),
            kind=TransactionKind(t.kind),
            amount=BigInt(t.amount),
            reason=t.reason,
            actor=t.actor,
            refund_of=strawberry.ID(str(t.refund_of)) if t.refund_of else None,
            created_at=t.created_at,
        )


@strawberry.type(description="A transaction as seen from one account: `delta` is its effect.")
class AccountLedgerLine:
    delta: BigInt
    transaction: LedgerTransaction


@strawberry.type
class LedgerSuccess:
    balance: Balance
    transaction_id: strawberry.ID

    @strawberry.field
    async def transaction(self, info: Info) -> LedgerTransaction:
        async with info.context.db.transaction() as session:
            tx = await session.get(models.LedgerTransaction, uuid.UUID(self.transaction_id))
        assert tx is not None
        return LedgerTransaction.of(tx)


@strawberry.type
class TransferSuccess(LedgerSuccess):
    to_balance: Balance


def _success(outcome: service.Booked) -> LedgerSuccess:
    return LedgerSuccess(
        balance=Balance.of(outcome.balance),
        transaction_id=strawberry.ID(str(outcome.transaction_id)),
    )


GrantCreditsResult = Annotated[
    LedgerSuccess | ValidationFailed | AccountNotFound | OrganizationNotFound | IdempotencyConflict,
    strawberry.union("GrantCreditsResult"),
]
DeductCreditsResult = Annotated[
    LedgerSuccess | InsufficientCredits | ValidationFailed | AccountNotFound | IdempotencyConflict,
    strawberry.union("DeductCreditsResult"),
]
RefundCreditsResult = Annotated[
    LedgerSuccess | ValidationFailed | AccountNotFound | IdempotencyConflict,
    strawberry.union("RefundCreditsResult"),
]
TransferCreditsResult = Annotated[
    TransferSuccess
    | InsufficientCredits
    | ValidationFailed
    | AccountNotFound
    | IdempotencyConflict,
    strawberry.union("TransferCreditsResult"),
]


@strawberry.input
class GrantCreditsInput:
    amount: BigInt
    source: GrantSource
    idempotency_key: str
    account_external_id: str | None = strawberry.field(
        default=None, description="The account to credit; or give organizationExternalId."
    )
    organization_external_id: str | None = strawberry.field(
        default=None, description="Credit an organisation's shared pool instead of an account."
    )
    reason: str = ""
    expires_at: datetime | None = None
    priority: int = strawberry.field(
        default=100, description="Among grants expiring together, lower is consumed first."
    )


@strawberry.input
class DeductCreditsInput:
    account_external_id: str
    amount: BigInt
    idempotency_key: str
    reason: str = ""


@strawberry.input
class RefundCreditsInput:
    account_external_id: str
    amount: BigInt
    refund_of: strawberry.ID = strawberry.field(description="The DEDUCT transaction to refund.")
    idempotency_key: str
    reason: str = ""


@strawberry.input
class TransferCreditsInput:
    from_account_external_id: str
    to_account_external_id: str
    amount: BigInt
    idempotency_key: str
    reason: str = ""


def _adapt(result: object) -> object:
    if is_domain_error(result):
        return to_graphql(result)
    assert isinstance(result, service.Booked)
    if result.counterparty_balance is not None:
        return TransferSuccess(
            balance=Balance.of(result.balance),
            transaction_id=strawberry.ID(str(result.transaction_id)),
            to_balance=Balance.of(result.counterparty_balance),
        )
    return _success(result)


async def publish_booked(
    info: Info, result: object, reason: str, account: str | None, counterparty: str | None = None
) -> None:
    """After the commit, the balances a booking changed, for live subscribers. A replay or a
    refusal changed nothing; an organisation's pool has no account to tell."""
    if not isinstance(result, service.Booked) or result.replayed:
        return
    now = datetime.now(UTC)
    changes = []
    if account is not None:
        changes.append(channels.balance_change(account, result.balance, reason, now))
    if counterparty is not None and result.counterparty_balance is not None:
        changes.append(
            channels.balance_change(counterparty, result.counterparty_balance, reason, now)
        )
    await live.publish_balances(info.context.redis, changes)


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=WRITE, description="Add credits as a new grant.")
    async def grant_credits(self, info: Info, input: GrantCreditsInput) -> GrantCreditsResult:
        request = GrantRequest(
            amount=input.amount,
            source=input.source.value,
            idempotency_key=input.idempotency_key,
            account_external_id=input.account_external_id,
            organization_external_id=input.organization_external_id,
            reason=input.reason,
            expires_at=input.expires_at,
            priority=input.priority,
        )
        actor = _actor(info)
        result = await audited(
            info,
            "grantCredits",
            request,
            lambda s: service.grant_credits(s, request, actor=actor),
        )
        await publish_booked(info, result, "GRANT", request.account_external_id)
        return _adapt(result)  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=WRITE,
        description="Spend credits: the grant expiring first, then the organisation pool.",
    )
    async def deduct_credits(self, info: Info, input: DeductCreditsInput) -> DeductCreditsResult:
        request = DeductRequest(
            account_external_id=input.account_external_id,
            amount=input.amount,
            idempotency_key=input.idempotency_key,
            reason=input.reason,
        )
        actor = _actor(info)
        result = await audited(
            info,
            "deductCredits",
            request,
            lambda s: service.deduct_credits(s, request, actor=actor),
        )
        await publish_booked(info, result, "DEDUCT", request.account_external_id)
        return _adapt(result)  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=WRITE, description="Give back part of a deduction.")
    async def refund_credits(self, info: Info, input: RefundCreditsInput) -> RefundCreditsResult:
        refund_of = _parse_uuid(str(input.refund_of))
        request = RefundRequest(
            account_external_id=input.account_external_id,
            amount=input.amount,
            refund_of=refund_of or uuid.UUID(int=0),
            idempotency_key=input.idempotency_key,
            reason=input.reason,
        )
        actor = _actor(info)

        async def work(session: AsyncSession) -> service.RefundResult:
            if refund_of is None:
                return errors.ValidationFailed("refundOf", "not a transaction id")
            return await service.refund_credits(session, request, actor=actor)

        result = await audited(info, "refundCredits", request, work)
        await publish_booked(info, result, "REFUND", request.account_external_id)
        return _adapt(result)  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=WRITE, description="Move credits between accounts.")
    async def transfer_credits(
        self, info: Info, input: TransferCreditsInput
    ) -> TransferCreditsResult:
        request = TransferRequest(
            from_account_external_id=input.from_account_external_id,
            to_account_external_id=input.to_account_external_id,
            amount=input.amount,
            idempotency_key=input.idempotency_key,
            reason=input.reason,
        )
        actor = _actor(info)
        result = await audited(
            info,
            "transferCredits",
            request,
            lambda s: service.transfer_credits(s, request, actor=actor),
        )
        await publish_booked(
            info,
            result,
            "TRANSFER",
            request.from_account_external_id,
            request.to_account_external_id,
        )
        return _adapt(result)  # type: ignore[return-value]


def _parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _actor(info: Info) -> str:
    principal = info.context.principal
    assert principal is not None
    return principal.actor
