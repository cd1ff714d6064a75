from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt


class Organization(CreatedAt, Base):
    __tablename__ = "organizations"
    __table_args__ = (CheckConstraint("member_cap IS NULL OR member_cap >= 0", name="member_cap"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(Text, default="")
    # Most credits one member may draw from the shared pool, net of refunds; NULL: no cap.
    member_cap: Mapped[int | None]


class Account(CreatedAt, Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("pool_drawn >= 0", name="pool_drawn"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str | None] = mapped_column(Text)
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), index=True)
    # Credits this member has drawn from its organisation's pool, net of refunds (checked
    # against Organization.member_cap under the pool's row lock).
    pool_drawn: Mapped[int] = mapped_column(default=0, server_default="0")
