"""The api_keys table: end users' gateway keys, each belonging to one account."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt


class ApiKey(CreatedAt, Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("rpm_limit IS NULL OR rpm_limit > 0", name="rpm_limit"),
        CheckConstraint("spend_credits >= 0", name="spend_not_negative"),
        CheckConstraint("(byok_provider IS NULL) = (byok_secret IS NULL)", name="byok_pair"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    # SHA-256 of the secret, as for admin keys: the secret is long and random, so a fast hash
    # suffices and a request finds its key by an index lookup. The secret is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(Text, default="", server_default="")
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    # Exact model names and glob patterns; NULL allows every model.
    allowed_models: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    rpm_limit: Mapped[int | None]
    # The end user's own key for the provider of this name (BYOK), as a Fernet token.
    byok_provider: Mapped[str | None] = mapped_column(String(64))
    byok_secret: Mapped[str | None] = mapped_column(Text)
    # Credits charged for calls made with this key, kept by metering with each booking.
    spend_credits: Mapped[int] = mapped_column(default=0, server_default="0")
