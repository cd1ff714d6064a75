"""GraphQL adapter of notifications (read-only; they are written by metering and controls)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from tollgate.accounts.service import get_account
from tollgate.api.context import Info
from tollgate.api.pagination import Connection, connection, page_args
from tollgate.api.permissions import READ
from tollgate.notifications import models, service


@strawberry.enum
class NotificationKind(Enum):
    WARNING = "WARNING"
    BLOCK = "BLOCK"
    LOW_BALANCE = "LOW_BALANCE"
    EMERGENCY_STOP = "EMERGENCY_STOP"
    PLAN_PUBLISHED = "PLAN_PUBLISHED"


@strawberry.type(description="An alert, written once per account, kind, subject and window.")
class Notification:
    id: strawberry.ID
    kind: NotificationKind
    account_external_id: str | None = strawberry.field(
        description="None for alerts about every account (a global emergency stop)."
    )
    subject: str = strawberry.field(
        description="The limit that was crossed, LOW_BALANCE, or the emergency stop's scope."
    )
    window: str = strawberry.field(description='e.g. "day:2026-11-21" or "month:2026-11".')
    payload: JSON
    created_at: datetime

    @classmethod
    def of(cls, n: models.Notification, account_external_id: str | None) -> Notification:
        return cls(
            id=strawberry.ID(str(n.id)),
            kind=NotificationKind(n.kind),
            account_external_id=account_external_id,
            subject=n.subject,
            window=n.window_key,
            payload=JSON(n.payload),
            created_at=n.created_at,
        )


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=READ,
        description="Newest first; without accountExternalId, every account's and global ones.",
    )
    async def notifications(
        self,
        info: Info,
        account_external_id: str | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> Connection[Notification]:
        before_id = page_args(first, after)
        rows: Sequence[tuple[models.Notification, str | None]] = []
        async with info.context.db.transaction() as session:
            account = None
            if account_external_id is not None:
                account = await get_account(session, account_external_id)
            # An unknown account simply has no notifications.
            if account_external_id is None or account is not None:
                rows = await service.page(
                    session,
                    account_id=None if account is None else account.id,
                    first=first,
                    before_id=before_id,
                )
        return connection(
            rows, first, key=lambda r: r[0].id, node=lambda r: Notification.of(r[0], r[1])
        )
