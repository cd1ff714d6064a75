"""GraphQL adapter of metering: authorizeUsage, recordUsage, releaseReservation."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from tollgate import errors
from tollgate.api.context import Info
from tollgate.api.errors import (
    AccountNotFound,
    ClientError,
    IdempotencyConflict,
    NotFound,
    UnknownModel,
    ValidationFailed,
    is_domain_error,
    to_graphql,
)
from tollgate.api.pagination import Connection, connection, page_args
from tollgate.api.permissions import METER, READ
from tollgate.api.scalars import BigInt
from tollgate.metering import models, queries, requests, results


@strawberry.enum
class DenialReason(Enum):
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    MODEL_NOT_ALLOWED = "MODEL_NOT_ALLOWED"
    EMERGENCY_STOP = "EMERGENCY_STOP"
    ACCOUNT_SUSPENDED = "ACCOUNT_SUSPENDED"
    RATE_LIMITED = "RATE_LIMITED"


@strawberry.type(description="A limit passed its warning (or block) threshold.")
class UsageWarning:
    limit: str
    level: str
    used: BigInt
    limit_value: BigInt


@strawberry.type(description="The call may go ahead; its worst-case charge is held.")
class Authorized:
    reservation_id: strawberry.ID
    credits_held: BigInt
    expires_at: datetime
    warnings: list[UsageWarning]


@strawberry.type(description="The call must not go ahead.")
class Denied:
    reason: DenialReason
    message: str
    limit: str | None
    retry_after_seconds: int | None


@strawberry.type(description="A usage event booked (or the first booking of a replayed eventId).")
class Recorded:
    event_id: str
    cost_micros: BigInt
    charge_micros: BigInt
    credits: BigInt
    uncollected_credits: BigInt
    flags: list[str]
    transaction_id: strawberry.ID | None


@strawberry.type
class Released:
    reservation_id: strawberry.ID
    credits_released: BigInt


@strawberry.input
class AuthorizeUsageInput:
    account_external_id: str
    model: str
    estimated_input_tokens: int
    max_output_tokens: int
    feature: str | None = None
    byok: bool = False
    provider: str | None = None


@strawberry.input
class UsageEventInput:
    event_id: str = strawberry.field(description="Idempotency key of this event.")
    account_external_id: str
    model: str
    input_tokens: int = strawberry.field(
        default=0, description="Input tokens not served from cache."
    )
    output_tokens: int = 0
    cached_input_tokens: int = 0
    images: int = 0
    provider_cost_micros: BigInt | None = strawberry.field(
        default=None, description="The provider's cost, when known; else priced from the catalog."
    )
    reservation_id: strawberry.ID | None = None
    occurred_at: datetime | None = None
    feature: str | None = None
    byok: bool = False
    provider: str | None = None
    metadata: JSON | None = None


AuthorizeUsageResult = Annotated[
    Authorized | Denied | ValidationFailed | AccountNotFound | UnknownModel,
    strawberry.union("AuthorizeUsageResult"),
]
RecordUsageResult = Annotated[
    Recorded | ValidationFailed | AccountNotFound | UnknownModel | IdempotencyConflict,
    strawberry.union("RecordUsageResult"),
]
ReleaseReservationResult = Annotated[
    Released | NotFound, strawberry.union("ReleaseReservationResult")
]


def parse_uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def adapt(result: object) -> object:
    """Service result → GraphQL object (also used to shape the JSON routes' answers)."""
    if is_domain_error(result):
        return to_graphql(result)
    match result:
        case results.Authorized():
            return Authorized(
                reservation_id=strawberry.ID(str(result.reservation_id)),
                credits_held=BigInt(result.credits_held),
                expires_at=result.expires_at,
                warnings=[
                    UsageWarning(
                        limit=w.limit,
                        level=w.level,
                        used=BigInt(w.used),
                        limit_value=BigInt(w.limit_value),
                    )
                    for w in result.warnings
                ],
            )
        case results.Denied():
            return Denied(
                reason=DenialReason(result.reason),
                message=result.message,
                limit=result.limit,
                retry_after_seconds=result.retry_after_seconds,
            )
        case results.Recorded():
            return Recorded(
                event_id=result.event_id,
                cost_micros=BigInt(result.cost_micros),
                charge_micros=BigInt(result.charge_micros),
                credits=BigInt(result.credits),
                uncollected_credits=BigInt(result.uncollected_credits),
                flags=list(result.flags),
                transaction_id=strawberry.ID(str(result.transaction_id))
                if result.transaction_id
                else None,
            )
        case results.Released():
            return Released(
                reservation_id=strawberry.ID(str(result.reservation_id)),
                credits_released=BigInt(result.credits_released),
            )
    raise TypeError(f"no GraphQL shape for {type(result).__name__}")


def authorize_request(value: AuthorizeUsageInput) -> requests.AuthorizeRequest:
    return requests.AuthorizeRequest(
        account_external_id=value.account_external_id,
        model=value.model,
        estimated_input_tokens=value.estimated_input_tokens,
        max_output_tokens=value.max_output_tokens,
        feature=value.feature,
        byok=value.byok,
        provider=value.provider,
    )


def usage_event(value: UsageEventInput) -> requests.UsageEventInput | errors.ValidationFailed:
    reservation = None
    if value.reservation_id is not None:
        reservation = parse_uuid(value.reservation_id)
        if reservation is None:
            return errors.ValidationFailed("reservationId", "not a reservation id")
    metadata: object = value.metadata if value.metadata is not None else {}
    if not isinstance(metadata, dict):
        return errors.ValidationFailed("metadata", "must be a JSON object")
    return requests.UsageEventInput(
        event_id=value.event_id,
        account_external_id=value.account_external_id,
        model=value.model,
        input_tokens=value.input_tokens,
        output_tokens=value.output_tokens,
        cached_input_tokens=value.cached_input_tokens,
        images=value.images,
        provider_cost_micros=value.provider_cost_micros,
        reservation_id=reservation,
        occurred_at=value.occurred_at,
        feature=value.feature,
        byok=value.byok,
        provider=value.provider,
        metadata=metadata,
    )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=METER,
        description="May this account make this call? Holds its worst case.",
    )
    async def authorize_usage(self, info: Info, input: AuthorizeUsageInput) -> AuthorizeUsageResult:
        result = await info.context.metering.authorize(authorize_request(input))
        return adapt(result)  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=METER,
        description=f"Book up to {requests.MAX_BATCH} usage events; a result per event, in order.",
    )
    async def record_usage(
        self, info: Info, events: list[UsageEventInput]
    ) -> list[RecordUsageResult]:
        if len(events) > requests.MAX_BATCH:
            raise ClientError(f"at most {requests.MAX_BATCH} events per call")
        parsed = [usage_event(e) for e in events]
        valid = [p for p in parsed if isinstance(p, requests.UsageEventInput)]
        booked = iter(await info.context.metering.record(valid))
        return [
            adapt(next(booked) if isinstance(p, requests.UsageEventInput) else p)  # type: ignore[misc]
            for p in parsed
        ]

    @strawberry.mutation(
        permission_classes=METER, description="Let go of a hold before it expires."
    )
    async def release_reservation(
        self, info: Info, reservation_id: strawberry.ID
    ) -> ReleaseReservationResult:
        parsed = parse_uuid(reservation_id)
        if parsed is None:
            return NotFound(id=str(reservation_id), message="no reservation with this id")
        return adapt(await info.context.metering.release(parsed))  # type: ignore[return-value]


@strawberry.enum
class UsageGrouping(Enum):
    ACCOUNT = "ACCOUNT"
    MODEL = "MODEL"
    FEATURE = "FEATURE"
    DAY = "DAY"
    HOUR = "HOUR"


@strawberry.type
class UsageEvent:
    id: strawberry.ID
    event_id: str
    account_external_id: str
    model: str
    provider: str | None
    feature: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    images: int
    cost_micros: BigInt
    charge_micros: BigInt
    credits: BigInt
    uncollected_credits: BigInt
    byok: bool
    flags: list[str]
    metadata: JSON
    occurred_at: datetime
    recorded_at: datetime

    @classmethod
    def of(cls, e: models.UsageEvent, account: str) -> UsageEvent:
        return cls(
            id=strawberry.ID(str(e.id)),
            event_id=e.event_id,
            account_external_id=account,
            model=e.model,
            provider=e.provider,
            feature=e.feature,
            input_tokens=e.input_tokens,
            output_tokens=e.output_tokens,
            cached_input_tokens=e.cached_input_tokens,
            images=e.images,
            cost_micros=BigInt(e.cost_micros),
            charge_micros=BigInt(e.charge_micros),
            credits=BigInt(e.credits),
            uncollected_credits=BigInt(e.uncollected_credits),
            byok=e.byok,
            flags=list(e.flags),
            metadata=JSON(e.details),
            occurred_at=e.occurred_at,
            recorded_at=e.recorded_at,
        )


@strawberry.type(description="Totals of a group; keys not grouped by are null.")
class UsageSummaryRow:
    account_external_id: str | None
    model: str | None
    feature: str | None
    period: datetime | None = strawberry.field(description="Start of the DAY or HOUR.")
    calls: BigInt
    input_tokens: BigInt
    output_tokens: BigInt
    cached_input_tokens: BigInt
    cost_micros: BigInt = strawberry.field(description="Provider cost, micro-USD.")
    charge_micros: BigInt = strawberry.field(description="Charged to accounts, micro-USD.")
    credits: BigInt
    uncollected_credits: BigInt = strawberry.field(
        description="Part of `credits` the balances could not cover: billed, not collected."
    )
    margin_micros: BigInt = strawberry.field(description="charge - cost, micro-USD.")


@strawberry.type
class UsageSummary:
    rows: list[UsageSummaryRow]


UsageSummaryResult = Annotated[
    UsageSummary | ValidationFailed, strawberry.union("UsageSummaryResult")
]


@strawberry.input
class UsageEventFilter:
    account_external_id: str | None = None
    model: str | None = None
    feature: str | None = None
    since: datetime | None = strawberry.field(default=None, name="from")
    until: datetime | None = strawberry.field(default=None, name="to")


@strawberry.type
class Query:
    @strawberry.field(permission_classes=READ, description="Newest first.")
    async def usage_events(
        self,
        info: Info,
        filter: UsageEventFilter | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> Connection[UsageEvent]:
        before = page_args(first, after)
        where = queries.EventFilter(
            account_external_id=filter.account_external_id if filter else None,
            model=filter.model if filter else None,
            feature=filter.feature if filter else None,
            since=filter.since if filter else None,
            until=filter.until if filter else None,
        )
        async with info.context.db.transaction() as session:
            rows = await queries.list_events(session, where, first=first, before_id=before)
        return connection(rows, first, key=lambda r: r[0].id, node=lambda r: UsageEvent.of(*r))

    @strawberry.field(
        permission_classes=READ,
        description="Calls, tokens, cost, charge, credits and margin over [from, to).",
    )
    async def usage_summary(
        self,
        info: Info,
        since: Annotated[datetime, strawberry.argument(name="from")],
        until: Annotated[datetime, strawberry.argument(name="to")],
        group_by: list[UsageGrouping],
        timezone: str = "UTC",
        account_external_id: str | None = None,
    ) -> UsageSummaryResult:
        async with info.context.db.transaction() as session:
            rows = await queries.summarize(
                session,
                since=since,
                until=until,
                group_by=[g.value for g in group_by],
                timezone=timezone,
                account_external_id=account_external_id,
            )
        if isinstance(rows, errors.ValidationFailed):
            return to_graphql(rows)  # type: ignore[no-any-return]
        return UsageSummary(
            rows=[
                UsageSummaryRow(
                    account_external_id=r.account_external_id,
                    model=r.model,
                    feature=r.feature,
                    period=r.period,
                    calls=BigInt(r.calls),
                    input_tokens=BigInt(r.input_tokens),
                    output_tokens=BigInt(r.output_tokens),
                    cached_input_tokens=BigInt(r.cached_input_tokens),
                    cost_micros=BigInt(r.cost_micros),
                    charge_micros=BigInt(r.charge_micros),
                    credits=BigInt(r.credits),
                    uncollected_credits=BigInt(r.uncollected_credits),
                    margin_micros=BigInt(r.margin_micros),
                )
                for r in rows
            ]
        )
