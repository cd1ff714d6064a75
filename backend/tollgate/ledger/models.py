"""Ledger tables.

A wallet is a ledger account: one per end-user account, one per organisation pool, and three
system wallets (issuance, consumption, expiry) on the other side of every booking. Entries are
append-only (database triggers refuse UPDATE, DELETE and TRUNCATE) and each transaction's entries
sum to zero (a deferred constraint trigger checks it at commit).

`wallets.balance` and `credit_grants.remaining` are caches kept in the same transaction as the
entries; they always equal the sum of the entries. System wallets keep no cached balance, so
bookings never contend on a shared row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Identity, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt

GRANT_SOURCES = ("PLAN_ALLOCATION", "PURCHASE", "PROMOTION", "BONUS", "BOOST", "ADJUSTMENT")
TRANSACTION_KINDS = ("GRANT", "DEDUCT", "REFUND", "TRANSFER", "EXPIRY")
WALLET_KINDS = ("ACCOUNT", "ORGANIZATION", "SYSTEM")


class Wallet(Base):
    __tablename__ = "wallets"
    __table_args__ = (
        CheckConstraint(f"kind IN {WALLET_KINDS}", name="kind"),
        CheckConstraint("kind = 'SYSTEM' OR balance >= 0", name="balance_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint(
            "(kind = 'ACCOUNT') = (account_id IS NOT NULL)"
            " AND (kind = 'ORGANIZATION') = (organization_id IS NOT NULL)"
            " AND (kind = 'SYSTEM') = (code IS NOT NULL)",
            name="owner",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), unique=True)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), unique=True)
    code: Mapped[str | None] = mapped_column(String(32), unique=True)
    balance: Mapped[int] = mapped_column(default=0, server_default="0")
    reserved: Mapped[int] = mapped_column(default=0, server_default="0")


class LedgerTransaction(CreatedAt, Base):
    __tablename__ = "ledger_transactions"
    __table_args__ = (
        CheckConstraint(f"kind IN {TRANSACTION_KINDS}", name="kind"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_ledger_transactions_account_id_seq", "account_id", "seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # Orders transactions for pagination; UUIDs alone do not.
    seq: Mapped[int] = mapped_column(Identity(), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int]
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    counterparty_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    refund_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ledger_transactions.id"), index=True
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(Text, default="")
    # Unique across the ledger: a second booking with the same key is refused by the database.
    idempotency_key: Mapped[str | None] = mapped_column(Text, unique=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")


class CreditGrant(CreatedAt, Base):
    __tablename__ = "credit_grants"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_in_range"),
        CheckConstraint(f"source IN {GRANT_SOURCES}", name="source"),
        # The consumption order: expiring first, then priority, then oldest.
        Index(
            "ix_credit_grants_spendable",
            "wallet_id",
            text("expires_at NULLS LAST"),
            "priority",
            "id",
            postgresql_where=text("remaining > 0"),
        ),
        Index(
            "ix_credit_grants_expiring",
            "expires_at",
            postgresql_where=text("remaining > 0 AND expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    transaction_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_transactions.id"))
    source: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int]
    remaining: Mapped[int]
    # Lower numbers are consumed first among grants with the same expiry.
    priority: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    expires_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]


class LedgerEntry(CreatedAt, Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_ledger_entries_wallet_id_id", "wallet_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    transaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ledger_transactions.id"), index=True
    )
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("credit_grants.id"), index=True)
    amount: Mapped[int]
