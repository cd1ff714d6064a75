"""Tables of this domain: each account's limits, and its usage counted per calendar window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, CheckConstraint, ForeignKey, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base

PERIODS = ("DAY", "MONTH")
_LIMIT_COLUMNS = (
    "tokens_per_day",
    "tokens_per_month",
    "calls_per_day",
    "calls_per_month",
    "cost_per_day_micros",
    "cost_per_month_micros",
    "max_tokens_per_request",
    "requests_per_minute",
    "low_balance_credits",
)


class AccountLimits(Base):
    """One row per account that has limits set; NULL in a limit column means no limit."""

    __tablename__ = "account_limits"
    __table_args__ = (
        CheckConstraint(
            " AND ".join(f"({c} IS NULL OR {c} >= 0)" for c in _LIMIT_COLUMNS),
            name="not_negative",
        ),
    )

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    tokens_per_day: Mapped[int | None]
    tokens_per_month: Mapped[int | None]
    calls_per_day: Mapped[int | None]
    calls_per_month: Mapped[int | None]
    cost_per_day_micros: Mapped[int | None]
    cost_per_month_micros: Mapped[int | None]
    max_tokens_per_request: Mapped[int | None]
    requests_per_minute: Mapped[int | None]
    # Exact model names and glob patterns; NULL allows every model.
    allowed_models: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # IANA name; the day and month windows follow this account's local calendar. NULL: UTC.
    timezone: Mapped[str | None] = mapped_column(String(64))
    low_balance_credits: Mapped[int | None]
    # Window limit name -> [warn %, block %], only where they differ from the defaults.
    thresholds: Mapped[dict[str, list[int]]] = mapped_column(
        JSONB, default=dict, server_default="{}"
    )
    updated_by: Mapped[str] = mapped_column(Text, default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class UsageWindow(Base):
    """Recorded usage of one account in one day or month window.

    Keyed by the UTC instant the window starts: when an account changes timezone its windows
    simply start elsewhere, and old counters are never mixed into new windows.
    """

    __tablename__ = "usage_windows"
    __table_args__ = (
        CheckConstraint(f"period IN {PERIODS}", name="period"),
        CheckConstraint("tokens >= 0 AND calls >= 0 AND cost_micros >= 0", name="not_negative"),
    )

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)
    # "day:2026-11-21" / "month:2026-11" in the account's timezone, for people reading it.
    window_key: Mapped[str] = mapped_column(String(32))
    tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    calls: Mapped[int] = mapped_column(default=0, server_default="0")
    cost_micros: Mapped[int] = mapped_column(default=0, server_default="0")
