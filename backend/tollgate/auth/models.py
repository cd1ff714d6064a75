from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, func
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


# People sign in with these roles; "service" is for machines and stays with keys.
USER_ROLES = ("owner", "admin", "analyst")


class AdminUser(CreatedAt, Base):
    """A person who signs in to the admin app with an email and a password."""

    __tablename__ = "admin_users"
    __table_args__ = (
        CheckConstraint(f"role IN {USER_ROLES}", name="role"),
        # Stored lower-cased, so the unique constraint makes addresses unique whatever the case.
        CheckConstraint("email = lower(email)", name="email_lower"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    # argon2id, in its encoded form (parameters and salt included).
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(Text, default="")
    disabled_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]


class AdminSession(CreatedAt, Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("admin_users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Echoed by the admin app in x-csrf-token on every state-changing request.
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
