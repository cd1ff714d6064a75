"""Tables of this domain: subscriptions, their event history, and one row per renewed period."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt

STATUSES = ("TRIALING", "ACTIVE", "PAST_DUE", "CANCELED", "EXPIRED")
LIVE_STATUSES = ("TRIALING", "ACTIVE", "PAST_DUE")
CYCLES = ("MONTHLY", "ANNUAL", "CUSTOM")
INTERVAL_UNITS = ("DAY", "MONTH")
EVENT_KINDS = (
    "SUBSCRIBED",
    "RENEWED",
    "TRIAL_ENDED",
    "PLAN_CHANGED",
    "MIGRATED",
    "MIGRATION_SCHEDULED",
    "CANCEL_SCHEDULED",
    "CANCELED",
    "PAST_DUE",
    "REACTIVATED",
    "EXPIRED",
)


class Subscription(CreatedAt, Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        CheckConstraint(f"cycle IN {CYCLES}", name="cycle"),
        CheckConstraint(f"interval_unit IN {INTERVAL_UNITS}", name="interval_unit"),
        CheckConstraint("interval_count > 0 AND amount_minor >= 0", name="price"),
        CheckConstraint("current_period_end > current_period_start", name="period"),
        # One live subscription per account: its plan is the account's plan.
        Index(
            "uq_subscriptions_live_account",
            "account_id",
            unique=True,
            postgresql_where=sql(f"status IN {LIVE_STATUSES}"),
        ),
        Index(
            "ix_subscriptions_due",
            "current_period_end",
            postgresql_where=sql(f"status IN {LIVE_STATUSES}"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    plan_version_id: Mapped[int] = mapped_column(ForeignKey("plan_versions.id"), index=True)
    # A migration chosen to take effect at the next renewal.
    next_plan_version_id: Mapped[int | None] = mapped_column(ForeignKey("plan_versions.id"))
    status: Mapped[str] = mapped_column(String(16))
    cycle: Mapped[str] = mapped_column(String(16))
    interval_unit: Mapped[str] = mapped_column(String(8))
    interval_count: Mapped[int]
    country: Mapped[str | None] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3))
    # The price per period this subscriber pays, in minor units of `currency`.
    amount_minor: Mapped[int]
    trial_ends_at: Mapped[datetime | None]
    # Periods are counted from here (see periods.py): the start, the trial's end, or the
    # moment the billing interval last changed.
    anchor_at: Mapped[datetime]
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False, server_default=sql("false"))
    canceled_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=sql("now()"))


class SubscriptionEvent(CreatedAt, Base):
    """Every change of a subscription, for its history and for revenue analytics."""

    __tablename__ = "subscription_events"
    __table_args__ = (CheckConstraint(f"kind IN {EVENT_KINDS}", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    from_plan_version_id: Mapped[int | None] = mapped_column(ForeignKey("plan_versions.id"))
    to_plan_version_id: Mapped[int] = mapped_column(ForeignKey("plan_versions.id"))
    currency: Mapped[str | None] = mapped_column(String(3))
    # Recurring amount per period after the change (MRR is derived from it), minor units.
    amount_minor: Mapped[int | None]
    actor: Mapped[str] = mapped_column(String(200), default="", server_default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    occurred_at: Mapped[datetime]


class SubscriptionPeriod(CreatedAt, Base):
    """One row per subscription and period whose credits were allocated: the unique key that
    makes a renewal happen once however often, or however concurrently, the job runs."""

    __tablename__ = "subscription_periods"
    __table_args__ = (UniqueConstraint("subscription_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    plan_version_id: Mapped[int] = mapped_column(ForeignKey("plan_versions.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    allocated: Mapped[int]
    rolled_over: Mapped[int] = mapped_column(default=0, server_default="0")
    # The plan's grants for this period (allocation, rollover, prorated top-ups): what a
    # downgrade takes back from and what rolls over at the period's end.
    grant_ids: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), default=list, server_default="{}"
    )
