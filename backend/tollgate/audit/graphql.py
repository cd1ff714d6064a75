"""GraphQL adapter of the audit log (read-only)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from tollgate.api.context import Info
from tollgate.api.pagination import Connection, connection, page_args
from tollgate.api.permissions import READ
from tollgate.audit import models, service


@strawberry.type
class AuditEntry:
    id: strawberry.ID
    actor: str
    actor_role: str
    operation: str
    input: JSON
    result: JSON
    created_at: datetime

    @classmethod
    def of(cls, e: models.AuditEntry) -> AuditEntry:
        return cls(
            id=strawberry.ID(str(e.id)),
            actor=e.actor,
            actor_role=e.actor_role,
            operation=e.operation,
            input=JSON(e.input),
            result=JSON(e.result),
            created_at=e.created_at,
        )


@strawberry.type
class Query:
    @strawberry.field(permission_classes=READ, description="Newest first.")
    async def audit_log(
        self, info: Info, first: int = 50, after: str | None = None
    ) -> Connection[AuditEntry]:
        before_id = page_args(first, after)
        async with info.context.db.transaction() as session:
            rows = await service.page(session, first=first, after=before_id)
        return connection(rows, first, key=lambda e: e.id, node=AuditEntry.of)
