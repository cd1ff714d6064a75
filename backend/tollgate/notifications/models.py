"""Tables of this domain: one row per alert, written at most once per account, kind, subject
and window."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt

KINDS = ("WARNING", "BLOCK", "LOW_BALANCE", "EMERGENCY_STOP", "PLAN_PUBLISHED")


class Notification(CreatedAt, Base):
    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS}", name="kind"),
        # Two partial indexes instead of one: NULLs never collide in a unique index, and
        # alerts without an account must be written once too.
        Index(
            "uq_notifications_account_once",
            "account_id",
            "kind",
            "subject",
            "window_key",
            unique=True,
            postgresql_where=text("account_id IS NOT NULL"),
        ),
        Index(
            "uq_notifications_global_once",
            "kind",
            "subject",
            "window_key",
            unique=True,
            postgresql_where=text("account_id IS NULL"),
        ),
        Index("ix_notifications_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(32))
    # What crossed: a limit name, LOW_BALANCE, or the scope of an emergency stop.
    subject: Mapped[str] = mapped_column(Text)
    window_key: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
