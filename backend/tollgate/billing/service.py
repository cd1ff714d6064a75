"""Writing what is owed: one invoice line per business fact (its key makes a second write a
no-op), and pending payments for the payment providers to capture."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.models import InvoiceLine, Payment


async def open_line(
    session: AsyncSession,
    *,
    key: str,
    account_id: int,
    kind: str,
    description: str,
    currency: str,
    amount_minor: int,
    subscription_id: int | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> int:
    """The id of the line with this key, written now unless it already was."""
    line_id = await session.scalar(
        insert(InvoiceLine)
        .values(
            key=key,
            account_id=account_id,
            subscription_id=subscription_id,
            kind=kind,
            description=description,
            currency=currency,
            amount_minor=amount_minor,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(InvoiceLine.id)
    )
    if line_id is None:
        line_id = await session.scalar(select(InvoiceLine.id).where(InvoiceLine.key == key))
    assert line_id is not None
    return int(line_id)


async def pending_payment(
    session: AsyncSession,
    *,
    account_id: int,
    invoice_line_id: int,
    currency: str,
    amount_minor: int,
    description: str,
    details: dict[str, Any],
) -> Payment:
    payment = Payment(
        account_id=account_id,
        invoice_line_id=invoice_line_id,
        currency=currency,
        amount_minor=amount_minor,
        description=description,
        details=details,
    )
    session.add(payment)
    await session.flush()
    return payment


async def lines_of(
    session: AsyncSession, *, account_id: int | None = None, subscription_id: int | None = None
) -> list[InvoiceLine]:
    query = select(InvoiceLine).order_by(InvoiceLine.id)
    if account_id is not None:
        query = query.where(InvoiceLine.account_id == account_id)
    if subscription_id is not None:
        query = query.where(InvoiceLine.subscription_id == subscription_id)
    return list(await session.scalars(query))
