"""Holds and usage events.

Usage events are the high-volume table. They are not partitioned: `event_id` must be unique
across all time (it is the idempotency key of a booking), and PostgreSQL can only enforce a
unique index on a partitioned table when it includes the partition key. Instead, B-tree
indexes serve the per-account and per-model queries, and a BRIN index on `occurred_at`
(rows arrive roughly in time order) serves time-range scans and summaries at a tiny size.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt

RESERVATION_STATUSES = ("HELD", "SETTLED", "RELEASED", "EXPIRED")


class Reservation(CreatedAt, Base):
    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint(f"status IN {RESERVATION_STATUSES}", name="status"),
        CheckConstraint("credits >= 0 AND pool_credits >= 0", name="credits_not_negative"),
        Index("ix_reservations_held", "account_id", postgresql_where=text("status = 'HELD'")),
        Index("ix_reservations_expiring", "expires_at", postgresql_where=text("status = 'HELD'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    # Credits held on the account's own wallet and on its organisation's pool.
    credits: Mapped[int]
    pool_wallet_id: Mapped[int | None] = mapped_column(ForeignKey("wallets.id"))
    pool_credits: Mapped[int] = mapped_column(default=0, server_default="0")
    # The estimate behind the hold, counted against limits while the call is in flight.
    estimated_tokens: Mapped[int]
    estimated_cost_micros: Mapped[int]
    model: Mapped[str] = mapped_column(Text)
    feature: Mapped[str | None] = mapped_column(Text)
    byok: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="HELD")
    expires_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class UsageEvent(Base):
    __tablename__ = "usage_events"
    __table_args__ = (
        Index("ix_usage_events_account_time", "account_id", "occurred_at"),
        Index("ix_usage_events_model_time", "model", "occurred_at"),
        Index("ix_usage_events_occurred_brin", "occurred_at", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    model: Mapped[str] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(Text)
    feature: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int]
    output_tokens: Mapped[int]
    cached_input_tokens: Mapped[int]
    images: Mapped[int]
    # Integer micro-USD: what the provider charges us, what the account is charged.
    cost_micros: Mapped[int]
    charge_micros: Mapped[int]
    credits: Mapped[int]
    # Credits the balance could not cover (the call had already happened): recorded here and
    # flagged, never booked below zero.
    uncollected_credits: Mapped[int] = mapped_column(default=0, server_default="0")
    byok: Mapped[bool] = mapped_column(Boolean, default=False)
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    reservation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    transaction_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
