"""Tables of this domain: the global emergency stop, and per-account controls."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base

GLOBAL_ROW = 1


class GlobalControls(Base):
    """A single row (id 1), created the first time the stop is set."""

    __tablename__ = "global_controls"
    __table_args__ = (CheckConstraint(f"id = {GLOBAL_ROW}", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    stopped: Mapped[bool] = mapped_column(default=False, server_default="false")
    stop_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    updated_by: Mapped[str] = mapped_column(Text, default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AccountControls(Base):
    """An account's emergency stop and overrides; accounts without a row have none."""

    __tablename__ = "account_controls"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    stopped: Mapped[bool] = mapped_column(default=False, server_default="false")
    stop_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Limit blocks do not apply (the model allow-list still does).
    exempt_from_limits: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Every request is refused with ACCOUNT_SUSPENDED.
    suspended: Mapped[bool] = mapped_column(default=False, server_default="false")
    updated_by: Mapped[str] = mapped_column(Text, default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
