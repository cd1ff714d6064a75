"""Running an admin mutation: one transaction for the operation and its audit row."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.api.context import Info
from tollgate.api.errors import DOMAIN_ERRORS as DOMAIN_ERROR_TYPES
from tollgate.audit import service as audit
from tollgate.errors import DomainError, Rejected

R = TypeVar("R")


def summarize(result: object) -> dict[str, Any]:
    """What the audit log keeps of a result: its kind and identifiers, never secrets."""
    summary: dict[str, Any] = {"type": type(result).__name__}
    if isinstance(result, DOMAIN_ERROR_TYPES):
        summary.update(vars(result))
        return summary
    for name in ("id", "external_id", "transaction_id", "code"):
        value = getattr(result, name, None)
        if value is not None:
            summary[name] = str(value)
    return summary


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


async def audited(
    info: Info,
    operation: str,
    params: object,
    work: Callable[[AsyncSession], Awaitable[R]],
) -> R | DomainError:
    ctx = info.context
    principal = ctx.principal
    assert principal is not None, "permission classes run first"
    entry = {
        "actor": principal.actor,
        "actor_role": principal.role.label,
        "operation": operation,
        "input": _jsonable(params),
    }
    try:
        async with ctx.db.transaction() as session:
            result: R | DomainError = await work(session)
            await audit.record(session, **entry, result=summarize(result))
    except Rejected as rejected:
        result = rejected.error
        async with ctx.db.transaction() as session:
            await audit.record(session, **entry, result=summarize(result))
    return result
