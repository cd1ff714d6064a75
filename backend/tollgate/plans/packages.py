"""Token packages (top-ups): credits sold at a price per currency, optionally only to some
plans' subscribers. A purchase books a PURCHASE grant at once and records what is owed as an
open invoice line with a pending payment, which the payment providers capture later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate import idempotency
from tollgate.accounts.service import get_account
from tollgate.billing import service as billing
from tollgate.billing.models import Payment
from tollgate.errors import (
    AccountNotFound,
    IdempotencyConflict,
    IllegalTransition,
    NotFound,
    Rejected,
    ValidationFailed,
)
from tollgate.ledger.requests import GrantRequest
from tollgate.ledger.service import Booked, grant_credits
from tollgate.plans.content import CURRENCY, MAX_AMOUNT, MAX_CREDITS
from tollgate.plans.models import Plan, PlanVersion, TokenPackage
from tollgate.plans.service import check_code
from tollgate.subscriptions.service import live_subscription


@dataclass(frozen=True)
class PackageInput:
    code: str
    credits: int
    prices: dict[str, int]
    name: str = ""
    validity_days: int | None = None
    available_to_plans: tuple[str, ...] = ()
    active: bool = True


def _check(given: PackageInput) -> ValidationFailed | None:
    if (invalid := check_code("code", given.code)) is not None:
        return invalid
    if len(given.name) > 200:
        return ValidationFailed("name", "at most 200 characters")
    if not 0 < given.credits <= MAX_CREDITS:
        return ValidationFailed("credits", f"between 1 and {MAX_CREDITS}")
    if not given.prices:
        return ValidationFailed("prices", "at least one price")
    for currency, amount in given.prices.items():
        if not CURRENCY.fullmatch(currency):
            return ValidationFailed("prices", f"{currency!r} is not an ISO 4217 code such as USD")
        if not 0 <= amount <= MAX_AMOUNT:
            return ValidationFailed("prices", f"amounts are minor units between 0 and {MAX_AMOUNT}")
    if given.validity_days is not None and not 1 <= given.validity_days <= 3660:
        return ValidationFailed("validityDays", "between 1 and 3660, or null for no expiry")
    return None


async def upsert(session: AsyncSession, given: PackageInput) -> TokenPackage | ValidationFailed:
    if (invalid := _check(given)) is not None:
        return invalid
    codes = set(given.available_to_plans)
    known = set(await session.scalars(select(Plan.code).where(Plan.code.in_(codes))))
    if unknown := sorted(codes - known):
        return ValidationFailed("availableToPlans", f"no plan {unknown[0]!r}")
    values = {
        "name": given.name,
        "credits": given.credits,
        "prices": given.prices,
        "validity_days": given.validity_days,
        "available_to_plans": sorted(codes),
        "active": given.active,
        "updated_at": func.now(),
    }
    package: TokenPackage | None = await session.scalar(
        insert(TokenPackage)
        .values(code=given.code, **values)
        .on_conflict_do_update(index_elements=["code"], set_=values)
        .returning(TokenPackage)
    )
    assert package is not None
    return package


async def all_packages(session: AsyncSession, *, include_inactive: bool) -> list[TokenPackage]:
    query = select(TokenPackage).order_by(TokenPackage.credits, TokenPackage.code)
    if not include_inactive:
        query = query.where(TokenPackage.active)
    return list(await session.scalars(query))


@dataclass(frozen=True)
class Purchase:
    transaction_id: str
    credits: int
    payment: Payment


async def purchase(
    session: AsyncSession,
    account_external_id: str,
    code: str,
    idempotency_key: str,
    *,
    currency: str | None,
    actor: str,
    now: datetime,
) -> (
    Purchase
    | AccountNotFound
    | NotFound
    | ValidationFailed
    | IllegalTransition
    | IdempotencyConflict
):
    account = await get_account(session, account_external_id)
    if account is None:
        return AccountNotFound(account_external_id)
    package = await session.scalar(select(TokenPackage).where(TokenPackage.code == code))
    if package is None or not package.active:
        return NotFound(code, "no token package with this code on sale")
    sub = await live_subscription(session, account.id)
    if package.available_to_plans:
        plan_code = None
        if sub is not None:
            plan_code = await session.scalar(
                select(Plan.code)
                .join(PlanVersion, PlanVersion.plan_id == Plan.id)
                .where(PlanVersion.id == sub.plan_version_id)
            )
        if plan_code not in package.available_to_plans:
            return IllegalTransition(
                code,
                "NOT_AVAILABLE",
                "purchaseTokenPackage",
                "this package is only for subscribers of " + ", ".join(package.available_to_plans),
            )
    wanted = currency or (
        sub.currency if sub is not None and sub.currency in package.prices else None
    )
    wanted = wanted or ("USD" if "USD" in package.prices else sorted(package.prices)[0])
    if wanted not in package.prices:
        return ValidationFailed(
            "currency", f"the package is sold in {', '.join(sorted(package.prices))}"
        )
    claim = await idempotency.claim(
        session,
        f"package:{idempotency_key}",
        "purchaseTokenPackage",
        {"account": account_external_id, "code": code, "currency": wanted},
    )
    if isinstance(claim, idempotency.Conflict):
        return IdempotencyConflict(idempotency_key)
    if isinstance(claim, idempotency.Replayed):
        payment = await session.get(Payment, claim.response["paymentId"])
        assert payment is not None
        return Purchase(claim.response["transactionId"], claim.response["credits"], payment)
    expires = now + timedelta(days=package.validity_days) if package.validity_days else None
    booked = await grant_credits(
        session,
        GrantRequest(
            amount=package.credits,
            source="PURCHASE",
            idempotency_key=f"package-grant:{idempotency_key}",
            account_external_id=account.external_id,
            reason=f"token package {code}",
            expires_at=expires,
        ),
        actor=actor,
    )
    if not isinstance(booked, Booked):
        raise Rejected(booked)
    amount = package.prices[wanted]
    line_id = await billing.open_line(
        session,
        key=f"package:{booked.transaction_id}",
        account_id=account.id,
        kind="TOKEN_PACKAGE",
        description=f"{package.credits} credits ({code})",
        currency=wanted,
        amount_minor=amount,
    )
    payment = await billing.pending_payment(
        session,
        account_id=account.id,
        invoice_line_id=line_id,
        currency=wanted,
        amount_minor=amount,
        description=f"token package {code}",
        details={"packageCode": code, "ledgerTransactionId": str(booked.transaction_id)},
    )
    await idempotency.store(
        session,
        claim.key,
        {
            "paymentId": payment.id,
            "transactionId": str(booked.transaction_id),
            "credits": package.credits,
        },
    )
    return Purchase(str(booked.transaction_id), package.credits, payment)
