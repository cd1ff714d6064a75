"""Tables of the price catalog and of pricing policies.

A catalog model (provider, name, aliases) has price versions, each in force from its
`effective_from` until the next one's. Names and aliases are matched case-insensitively through
`name_key` / `alias_keys` (lowercase), and no identifier names two models: the service checks
that under a catalog-wide lock, the unique `name_key` backs it up.

A pricing policy belongs to the whole installation (scope GLOBAL, at most one), to one account,
or later to one plan (`plan_id` is reserved for that; the plans table does not exist yet).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt

# USD amounts: up to 10 integer and 10 fractional digits (prices per 1M tokens go below $0.01).
USD = Numeric(20, 10)
# Multipliers and markups: up to 6 integer and 6 fractional digits.
FACTOR = Numeric(12, 6)

POLICY_SCOPES = ("GLOBAL", "ACCOUNT", "PLAN")
POLICY_KINDS = ("PASSTHROUGH", "MULTIPLIER", "PER_MODEL", "FIXED_PER_CALL")


class CatalogModel(CreatedAt, Base):
    __tablename__ = "catalog_models"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    aliases: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    alias_keys: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")


class CatalogPrice(CreatedAt, Base):
    __tablename__ = "catalog_prices"
    __table_args__ = (
        UniqueConstraint("model_id", "effective_from"),
        CheckConstraint(
            "input_per_million >= 0 AND output_per_million >= 0"
            " AND (cached_input_per_million IS NULL OR cached_input_per_million >= 0)"
            " AND per_image >= 0 AND per_request >= 0",
            name="prices_not_negative",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("catalog_models.id"))
    effective_from: Mapped[datetime]
    input_per_million: Mapped[Decimal] = mapped_column(USD)
    output_per_million: Mapped[Decimal] = mapped_column(USD)
    # NULL: cached input tokens cost as much as uncached ones.
    cached_input_per_million: Mapped[Decimal | None] = mapped_column(USD)
    per_image: Mapped[Decimal] = mapped_column(USD, default=Decimal(0), server_default="0")
    per_request: Mapped[Decimal] = mapped_column(USD, default=Decimal(0), server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PricingPolicy(CreatedAt, Base):
    __tablename__ = "pricing_policies"
    __table_args__ = (
        CheckConstraint(f"scope IN {POLICY_SCOPES}", name="scope"),
        CheckConstraint(f"kind IN {POLICY_KINDS}", name="kind"),
        CheckConstraint(
            "(scope = 'ACCOUNT') = (account_id IS NOT NULL)"
            " AND (scope = 'PLAN') = (plan_id IS NOT NULL)",
            name="owner",
        ),
        CheckConstraint("platform_fee_usd >= 0", name="platform_fee_not_negative"),
        # At most one global default.
        Index(
            "ix_pricing_policies_global",
            "scope",
            unique=True,
            postgresql_where=text("scope = 'GLOBAL'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), unique=True)
    plan_id: Mapped[int | None] = mapped_column(unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Only the fields the kind uses are set; the others stay NULL.
    multiplier: Mapped[Decimal | None] = mapped_column(FACTOR)
    fixed_per_call_usd: Mapped[Decimal | None] = mapped_column(USD)
    default_markup: Mapped[Decimal | None] = mapped_column(FACTOR)
    platform_fee_usd: Mapped[Decimal] = mapped_column(USD, default=Decimal(0), server_default="0")
    # Decimals are kept as strings so no JSON float ever touches a price.
    model_rules: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default="[]"
    )
    time_rules: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default="[]"
    )
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
