from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt

ROLES = ("owner", "admin", "analyst", "service")


class AdminApiKey(CreatedAt, Base):
    __tablename__ = "admin_api_keys"
    __table_args__ = (CheckConstraint(f"role IN {ROLES}", name="role"),)
    # "service" keys are for the SaaS backend: metering calls only, no admin reads or writes.

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the secret: keys are long random strings, so a fast hash is enough and lets
    # a request find its key by an index lookup; the secret itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(Text, default="")
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
