"""GraphQL adapter of live updates: the Subscription root's fields.

Each field needs at least the analyst role, checked when it starts; the connection's
credentials are checked again every RECHECK_SECONDS, so a revoked key stops streaming.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from tollgate.api.context import Context, Info
from tollgate.api.permissions import READ
from tollgate.api.scalars import BigInt
from tollgate.auth.service import Role
from tollgate.ledger import wallets
from tollgate.ledger.graphql import Balance
from tollgate.live import ticker
from tollgate.live.auth import reauthenticate
from tollgate.live.channels import (
    ALERTS_CHANNEL,
    BALANCE_CHANNEL,
    PRICING_PUBLISHED_CHANNEL,
    USAGE_CHANNEL,
)
from tollgate.notifications.graphql import Notification, NotificationKind

RECHECK_SECONDS = 15.0


@strawberry.type(description="A usage event, as it was booked.")
class UsageRecorded:
    event_id: str
    account_external_id: str
    model: str
    provider: str | None
    feature: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    provider_cost_micros: BigInt
    charge_micros: BigInt
    credits: BigInt
    uncollected_credits: BigInt
    flags: list[str]
    flagged: bool = strawberry.field(description="Any flag set, e.g. UNCOLLECTED.")
    occurred_at: datetime

    @classmethod
    def of(cls, e: dict[str, Any]) -> UsageRecorded:
        return cls(
            event_id=e["eventId"],
            account_external_id=e["accountExternalId"],
            model=e["model"],
            provider=e["provider"],
            feature=e["feature"],
            input_tokens=e["inputTokens"],
            output_tokens=e["outputTokens"],
            cached_input_tokens=e["cachedInputTokens"],
            provider_cost_micros=BigInt(e["providerCostMicros"]),
            charge_micros=BigInt(e["chargeMicros"]),
            credits=BigInt(e["credits"]),
            uncollected_credits=BigInt(e["uncollectedCredits"]),
            flags=e["flags"],
            flagged=bool(e["flags"]),
            occurred_at=datetime.fromisoformat(e["occurredAt"]),
        )


@strawberry.enum
class BalanceChangeReason(Enum):
    GRANT = "GRANT"
    DEDUCT = "DEDUCT"
    REFUND = "REFUND"
    TRANSFER = "TRANSFER"
    EXPIRY = "EXPIRY"
    BOOST = "BOOST"
    USAGE = "USAGE"
    PLAN = "PLAN"


@strawberry.type(description="An account's balance after a committed ledger change.")
class BalanceChanged:
    account_external_id: str
    balance: Balance
    reason: BalanceChangeReason
    at: datetime

    @classmethod
    def of(cls, e: dict[str, Any]) -> BalanceChanged:
        return cls(
            account_external_id=e["accountExternalId"],
            balance=Balance.of(wallets.Balance(e["total"], e["reserved"], e["pool"])),
            reason=BalanceChangeReason(e["reason"]),
            at=datetime.fromisoformat(e["at"]),
        )


@strawberry.type(description="Usage booked in [from, to), on every replica.")
class UsageTick:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    calls: BigInt
    tokens: BigInt
    provider_cost_micros: BigInt
    charge_micros: BigInt
    credits: BigInt

    @classmethod
    def of(cls, t: ticker.Totals) -> UsageTick:
        return cls(
            from_=t.start,
            to=t.end,
            calls=BigInt(t.calls),
            tokens=BigInt(t.tokens),
            provider_cost_micros=BigInt(t.cost_micros),
            charge_micros=BigInt(t.charge_micros),
            credits=BigInt(t.credits),
        )


@strawberry.enum
class PlanMigration(Enum):
    NONE = "NONE"
    NEXT_RENEWAL = "NEXT_RENEWAL"
    IMMEDIATELY = "IMMEDIATELY"


@strawberry.type(description="A new pricing version of a plan went live.")
class PricingPublished:
    plan_code: str
    version_id: strawberry.ID
    version: int
    published_at: datetime
    migrate: PlanMigration = strawberry.field(
        description="How existing subscribers of the plan move to the new version."
    )

    @classmethod
    def of(cls, e: dict[str, Any]) -> PricingPublished:
        return cls(
            plan_code=e["planCode"],
            version_id=strawberry.ID(e["versionId"]),
            version=e["version"],
            published_at=datetime.fromisoformat(e["publishedAt"]),
            migrate=PlanMigration(e["migrate"]),
        )


class _Guard:
    """Re-authenticates the connection at most every RECHECK_SECONDS."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.checked = time.monotonic()

    async def check(self) -> None:
        if time.monotonic() - self.checked < RECHECK_SECONDS:
            return
        principal = await reauthenticate(self.context)
        if principal is None or principal.role < Role.ANALYST:
            raise GraphQLError(
                "the connection's key is no longer valid", extensions={"code": "UNAUTHENTICATED"}
            )
        self.checked = time.monotonic()


async def _events(
    info: Info, channel: str, account: str | None = None
) -> AsyncGenerator[dict[str, Any], None]:
    ctx = info.context
    assert ctx.live is not None, "the app's lifespan starts the hub"
    guard = _Guard(ctx)
    with ctx.live.subscribe(channel, account) as subscription:
        while True:
            event = await subscription.next(within=RECHECK_SECONDS)
            await guard.check()
            if event is not None:
                yield event


def _notification(event: dict[str, Any]) -> Notification:
    return Notification(
        id=strawberry.ID(event["id"]),
        kind=NotificationKind(event["kind"]),
        account_external_id=event["accountExternalId"],
        subject=event["subject"],
        window=event["window"],
        payload=JSON(event["payload"]),
        created_at=datetime.fromisoformat(event["createdAt"]),
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=READ,
        description="Each usage event once booked; without accountExternalId, every account's.",
    )
    async def usage_recorded(
        self, info: Info, account_external_id: str | None = None
    ) -> AsyncGenerator[UsageRecorded, None]:
        async with aclosing(_events(info, USAGE_CHANNEL, account_external_id)) as events:
            async for event in events:
                yield UsageRecorded.of(event)

    @strawberry.subscription(
        permission_classes=READ,
        description="An account's balance after each committed change (grant, deduct, refund, "
        "transfer, expiry, boost, usage); one per account per transaction.",
    )
    async def balance_changed(
        self, info: Info, account_external_id: str | None = None
    ) -> AsyncGenerator[BalanceChanged, None]:
        async with aclosing(_events(info, BALANCE_CHANNEL, account_external_id)) as events:
            async for event in events:
                yield BalanceChanged.of(event)

    @strawberry.subscription(
        permission_classes=READ,
        description="Alerts as they are written: limit warnings and blocks, low balances, "
        "emergency stops switched on or off.",
    )
    async def alert_raised(self, info: Info) -> AsyncGenerator[Notification, None]:
        async with aclosing(_events(info, ALERTS_CHANNEL)) as events:
            async for event in events:
                yield _notification(event)

    @strawberry.subscription(
        permission_classes=READ,
        description="Totals of usage booked on every replica, one tick per `interval` seconds "
        "(1 to 60), zero when idle. Windows are aligned to the clock.",
    )
    async def usage_ticker(self, info: Info, interval: int = 1) -> AsyncGenerator[UsageTick, None]:
        if not ticker.MIN_INTERVAL <= interval <= ticker.MAX_INTERVAL:
            raise GraphQLError(
                f"interval must be {ticker.MIN_INTERVAL} to {ticker.MAX_INTERVAL} seconds",
                extensions={"code": "BAD_USER_INPUT"},
            )
        ctx = info.context
        assert ctx.ticker is not None, "the app's lifespan starts the ticker"
        guard = _Guard(ctx)
        async with aclosing(ctx.ticker.ticks(interval)) as ticks:
            async for totals in ticks:
                await guard.check()
                yield UsageTick.of(totals)

    @strawberry.subscription(
        permission_classes=READ, description="Each pricing version of a plan once published."
    )
    async def pricing_published(self, info: Info) -> AsyncGenerator[PricingPublished, None]:
        async with aclosing(_events(info, PRICING_PUBLISHED_CHANNEL)) as events:
            async for event in events:
                yield PricingPublished.of(event)
