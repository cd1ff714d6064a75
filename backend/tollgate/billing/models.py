"""Tables of this domain: invoice lines (what an account owes or is owed) and payments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt

LINE_KINDS = ("SUBSCRIPTION", "PRORATION_CREDIT", "PRORATION_CHARGE", "TOKEN_PACKAGE")
LINE_STATUSES = ("OPEN", "PAID", "VOID")
PAYMENT_STATUSES = ("PENDING", "SUCCEEDED", "FAILED", "CANCELED")


class InvoiceLine(CreatedAt, Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (
        CheckConstraint(f"kind IN {LINE_KINDS}", name="kind"),
        CheckConstraint(f"status IN {LINE_STATUSES}", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(8), default="OPEN", server_default="OPEN")
    description: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    # Negative for a credit to the account.
    amount_minor: Mapped[int]
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    # One line per business fact: "renewal:<subscription>:<period start>" and the like.
    key: Mapped[str] = mapped_column(String(255), unique=True)


class Payment(CreatedAt, Base):
    """A payment to be captured by a payment provider; PENDING until one reports back."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"status IN {PAYMENT_STATUSES}", name="status"),
        CheckConstraint("amount_minor >= 0", name="amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    invoice_line_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_lines.id"))
    status: Mapped[str] = mapped_column(String(16), default="PENDING", server_default="PENDING")
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int]
    description: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    updated_at: Mapped[datetime | None]
