"""Tables of this domain: the feature catalog, plans, their versions, and token packages.

A version's content (prices, limits, feature values, policy) is one JSONB document: a published
version never changes, so it is kept as the snapshot it was published as.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt

FEATURE_KINDS = ("BOOLEAN", "LIMIT", "METERED")
VERSION_STATUSES = ("DRAFT", "PUBLISHED")


class Feature(CreatedAt, Base):
    __tablename__ = "features"
    __table_args__ = (CheckConstraint(f"kind IN {FEATURE_KINDS}", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    kind: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str | None] = mapped_column(String(50))
    updated_at: Mapped[datetime] = mapped_column(server_default=sql("now()"))


class Plan(CreatedAt, Base):
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    archived_at: Mapped[datetime | None]


class PlanVersion(CreatedAt, Base):
    __tablename__ = "plan_versions"
    __table_args__ = (
        CheckConstraint(f"status IN {VERSION_STATUSES}", name="status"),
        CheckConstraint("(status = 'PUBLISHED') = (published_at IS NOT NULL)", name="published"),
        UniqueConstraint("plan_id", "version"),
        # At most one draft per plan: "edit" always means that one.
        Index(
            "uq_plan_versions_one_draft",
            "plan_id",
            unique=True,
            postgresql_where=sql("status = 'DRAFT'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    version: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default="DRAFT")
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    published_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=sql("now()"))


class TokenPackage(CreatedAt, Base):
    __tablename__ = "token_packages"
    __table_args__ = (
        CheckConstraint("credits > 0", name="credits_positive"),
        CheckConstraint("validity_days IS NULL OR validity_days > 0", name="validity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(Text, default="", server_default="")
    credits: Mapped[int]
    # Currency (ISO 4217) -> amount in minor units.
    prices: Mapped[dict[str, int]] = mapped_column(JSONB)
    # NULL: the credits never expire.
    validity_days: Mapped[int | None]
    # Plan codes whose subscribers may buy it; empty: everyone.
    available_to_plans: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, server_default="{}"
    )
    active: Mapped[bool] = mapped_column(default=True, server_default=sql("true"))
    updated_at: Mapped[datetime] = mapped_column(server_default=sql("now()"))
