from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.audit.models import AuditEntry

# Never written to the audit log, whatever operation carries them.
SECRET_FIELDS = frozenset({"secret", "key", "password", "apiKey", "api_key"})


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if k in SECRET_FIELDS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


async def record(
    session: AsyncSession,
    *,
    actor: str,
    actor_role: str,
    operation: str,
    input: dict[str, Any],
    result: dict[str, Any],
) -> None:
    session.add(
        AuditEntry(
            actor=actor,
            actor_role=actor_role,
            operation=operation,
            input=redact(input),
            result=redact(result),
        )
    )
    await session.flush()


async def page(session: AsyncSession, *, first: int, after: int | None) -> Sequence[AuditEntry]:
    """Newest first; `after` is the id of the last entry of the previous page."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(first + 1)
    if after is not None:
        query = query.where(AuditEntry.id < after)
    return (await session.scalars(query)).all()
