"""Idempotency keys, as Stripe has them.

The key row is inserted inside the business transaction before anything is booked. A concurrent
request with the same key blocks on the unique index until the first commits, then finds the
stored response; if the first rolled back, the second proceeds as if it were first. So one key
books once, and the stored response is committed atomically with what it describes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Index, String, Text, delete, func, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt


class IdempotencyKey(CreatedAt, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


def request_fingerprint(operation: str, params: dict[str, Any]) -> str:
    canonical = json.dumps([operation, params], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Claimed:
    """The key is ours: do the work, then `store` the response in the same transaction."""

    key: str


@dataclass(frozen=True)
class Replayed:
    response: dict[str, Any]


@dataclass(frozen=True)
class Conflict:
    key: str


async def claim(
    session: AsyncSession, key: str, operation: str, params: dict[str, Any]
) -> Claimed | Replayed | Conflict:
    fingerprint = request_fingerprint(operation, params)
    inserted = await session.scalar(
        insert(IdempotencyKey)
        .values(key=key, operation=operation, request_hash=fingerprint)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(IdempotencyKey.key)
    )
    if inserted is not None:
        return Claimed(key)
    row = (
        await session.execute(
            select(IdempotencyKey.request_hash, IdempotencyKey.response).where(
                IdempotencyKey.key == key
            )
        )
    ).one()
    if row.request_hash != fingerprint or row.response is None:
        return Conflict(key)
    return Replayed(row.response)


async def store(session: AsyncSession, key: str, response: dict[str, Any]) -> None:
    await session.execute(
        update(IdempotencyKey).where(IdempotencyKey.key == key).values(response=response)
    )


async def purge_expired(session: AsyncSession, retention: timedelta) -> int:
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < func.now() - retention)
    )
    return int(getattr(result, "rowcount", 0) or 0)
