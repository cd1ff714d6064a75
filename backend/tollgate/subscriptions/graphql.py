"""GraphQL adapter of subscriptions: subscribe, preview and change plan, cancel, list."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from tollgate.accounts.models import Account
from tollgate.accounts.service import get_account
from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import (
    AccountNotFound,
    AlreadyExists,
    IdempotencyConflict,
    IllegalTransition,
    NotFound,
    ValidationFailed,
    is_domain_error,
    to_graphql,
)
from tollgate.api.pagination import Connection, connection, page_args
from tollgate.api.permissions import READ, WRITE
from tollgate.api.scalars import BigInt
from tollgate.billing import service as billing
from tollgate.billing.models import InvoiceLine as InvoiceLineRow
from tollgate.live import publish as live
from tollgate.plans.graphql_types import BillingCycle, PlanVersion
from tollgate.plans.models import Plan
from tollgate.plans.models import PlanVersion as PlanVersionRow
from tollgate.pricing.cache import TOPIC as PRICING_TOPIC
from tollgate.subscriptions import models, service
from tollgate.subscriptions.models import Subscription as SubscriptionRow


@strawberry.enum
class SubscriptionStatus(Enum):
    TRIALING = "TRIALING"
    ACTIVE = "ACTIVE"
    PAST_DUE = "PAST_DUE"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


@strawberry.type
class SubscriptionEvent:
    kind: str
    from_status: SubscriptionStatus | None
    to_status: SubscriptionStatus
    from_plan_version_id: strawberry.ID | None
    to_plan_version_id: strawberry.ID
    currency: str | None
    amount_minor: BigInt | None = strawberry.field(description="Recurring amount after it.")
    actor: str
    details: JSON
    occurred_at: datetime

    @classmethod
    def of(cls, e: models.SubscriptionEvent) -> SubscriptionEvent:
        return cls(
            kind=e.kind,
            from_status=None if e.from_status is None else SubscriptionStatus(e.from_status),
            to_status=SubscriptionStatus(e.to_status),
            from_plan_version_id=None
            if e.from_plan_version_id is None
            else strawberry.ID(str(e.from_plan_version_id)),
            to_plan_version_id=strawberry.ID(str(e.to_plan_version_id)),
            currency=e.currency,
            amount_minor=None if e.amount_minor is None else BigInt(e.amount_minor),
            actor=e.actor,
            details=JSON(e.details),
            occurred_at=e.occurred_at,
        )


@strawberry.type(description="What an account owes (positive) or is owed (negative).")
class InvoiceLine:
    id: strawberry.ID
    kind: str
    status: str
    description: str
    currency: str
    amount_minor: BigInt
    period_start: datetime | None
    period_end: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, line: InvoiceLineRow) -> InvoiceLine:
        return cls(
            id=strawberry.ID(str(line.id)), kind=line.kind, status=line.status,
            description=line.description, currency=line.currency,
            amount_minor=BigInt(line.amount_minor), period_start=line.period_start,
            period_end=line.period_end, created_at=line.created_at,
        )  # fmt: skip


@strawberry.type
class PlanSubscription:
    id: strawberry.ID
    account_external_id: str
    status: SubscriptionStatus
    plan_code: str
    plan_name: str
    plan_version: PlanVersion
    next_plan_version_id: strawberry.ID | None = strawberry.field(
        description="A migration that takes effect at the next renewal."
    )
    cycle: BillingCycle
    currency: str
    amount_minor: BigInt = strawberry.field(description="The price per period.")
    country: str | None
    trial_ends_at: datetime | None
    current_period_start: datetime
    current_period_end: datetime
    cancel_at_period_end: bool
    canceled_at: datetime | None
    ended_at: datetime | None
    created_at: datetime

    @strawberry.field
    async def events(self, info: Info) -> list[SubscriptionEvent]:
        async with info.context.db.transaction() as session:
            return [SubscriptionEvent.of(e) for e in await service.history(session, int(self.id))]

    @strawberry.field
    async def invoice_lines(self, info: Info) -> list[InvoiceLine]:
        async with info.context.db.transaction() as session:
            lines = await billing.lines_of(session, subscription_id=int(self.id))
            return [InvoiceLine.of(line) for line in lines]


async def subscription_view(session: AsyncSession, sub: SubscriptionRow) -> PlanSubscription:
    version = await session.get(PlanVersionRow, sub.plan_version_id)
    assert version is not None
    plan = await session.get(Plan, version.plan_id)
    account = await session.get(Account, sub.account_id)
    assert plan is not None and account is not None
    return PlanSubscription(
        id=strawberry.ID(str(sub.id)), account_external_id=account.external_id,
        status=SubscriptionStatus(sub.status), plan_code=plan.code, plan_name=plan.name,
        plan_version=PlanVersion.of(version, plan.code),
        next_plan_version_id=None
        if sub.next_plan_version_id is None
        else strawberry.ID(str(sub.next_plan_version_id)),
        cycle=BillingCycle(sub.cycle), currency=sub.currency,
        amount_minor=BigInt(sub.amount_minor), country=sub.country,
        trial_ends_at=sub.trial_ends_at, current_period_start=sub.current_period_start,
        current_period_end=sub.current_period_end, cancel_at_period_end=sub.cancel_at_period_end,
        canceled_at=sub.canceled_at, ended_at=sub.ended_at, created_at=sub.created_at,
    )  # fmt: skip


@strawberry.type(description="What changing plan now would book; nothing is changed.")
class PlanChangePreview:
    plan_code: str
    cycle: BillingCycle
    credit_minor: BigInt = strawberry.field(description="Unused time of the current plan.")
    credit_currency: str
    charge_minor: BigInt = strawberry.field(description="The new plan until the period's end.")
    charge_currency: str
    credits_taken_back: BigInt = strawberry.field(
        description="At most: never more than is left of this period's plan credits."
    )
    credits_granted: BigInt
    new_period_start: datetime
    new_period_end: datetime
    remaining_seconds: BigInt
    period_seconds: BigInt


@strawberry.input
class SubscribeInput:
    account_external_id: str
    plan_code: str
    cycle: BillingCycle
    idempotency_key: str
    country: str | None = strawberry.field(
        default=None, description="ISO 3166; picks the regional price."
    )
    start_at: datetime | None = strawberry.field(default=None, description="Now or earlier.")


@strawberry.input
class ChangePlanInput:
    account_external_id: str
    plan_code: str
    idempotency_key: str
    cycle: BillingCycle | None = strawberry.field(default=None, description="null: keep it.")


SubscriptionResult = Annotated[
    PlanSubscription
    | ValidationFailed
    | AccountNotFound
    | NotFound
    | AlreadyExists
    | IllegalTransition
    | IdempotencyConflict,
    strawberry.union("SubscriptionResult"),
]
PreviewResult = Annotated[
    PlanChangePreview | ValidationFailed | AccountNotFound | NotFound | IllegalTransition,
    strawberry.union("PlanChangePreviewResult"),
]


def _change_request(input: ChangePlanInput) -> service.ChangeRequest:
    return service.ChangeRequest(
        account_external_id=input.account_external_id,
        plan_code=input.plan_code,
        idempotency_key=input.idempotency_key,
        cycle=None if input.cycle is None else input.cycle.value,
    )


async def _write(info: Info, operation: str, params: object, work: object) -> SubscriptionResult:
    """Audited; subscribers' cached pricing policies reload once the change is committed."""

    async def run(session: AsyncSession) -> object:
        result = await work(session)  # type: ignore[operator]
        return result if is_domain_error(result) else await subscription_view(session, result)

    result = await audited(info, operation, params, run)
    if is_domain_error(result):
        return to_graphql(result)  # type: ignore[no-any-return]
    assert isinstance(result, PlanSubscription)
    await info.context.bus.publish(PRICING_TOPIC)
    ctx = info.context
    await live.publish_account_balance(ctx.db, ctx.redis, result.account_external_id, "PLAN")
    return result


def _actor(info: Info) -> str:
    return info.context.principal.actor if info.context.principal else ""


@strawberry.type
class Query:
    @strawberry.field(permission_classes=READ, description="The account's live subscription, "
                      "else its latest one; null when it never had one.")  # fmt: skip
    async def subscription(self, info: Info, account_external_id: str) -> PlanSubscription | None:
        async with info.context.db.transaction() as session:
            account = await get_account(session, account_external_id)
            if account is None:
                return None
            sub = await service.latest_subscription(session, account.id)
            return None if sub is None else await subscription_view(session, sub)

    @strawberry.field(permission_classes=READ, description="Newest first.")
    async def subscriptions(
        self, info: Info, first: int = 50, after: str | None = None,
        status: SubscriptionStatus | None = None, plan_code: str | None = None,
    ) -> Connection[PlanSubscription]:  # fmt: skip
        before = page_args(first, after)
        async with info.context.db.transaction() as session:
            query = select(SubscriptionRow).order_by(SubscriptionRow.id.desc()).limit(first + 1)
            if before is not None:
                query = query.where(SubscriptionRow.id < before)
            if status is not None:
                query = query.where(SubscriptionRow.status == status.value)
            if plan_code is not None:
                query = (
                    query.join(PlanVersionRow, PlanVersionRow.id == SubscriptionRow.plan_version_id)
                    .join(Plan, Plan.id == PlanVersionRow.plan_id)
                    .where(Plan.code == plan_code)
                )
            rows = list(await session.scalars(query))
            views = {r.id: await subscription_view(session, r) for r in rows}
        return connection(rows, first, lambda r: r.id, lambda r: views[r.id])

    @strawberry.field(permission_classes=READ)
    async def preview_plan_change(self, info: Info, input: ChangePlanInput) -> PreviewResult:
        now = datetime.now(UTC)
        async with info.context.db.transaction() as session:
            quote = await service.quote_change(session, _change_request(input), now, lock=False)
        if not isinstance(quote, service.ChangeQuote):
            return to_graphql(quote)  # type: ignore[no-any-return]
        p, sub = quote.proration, quote.sub
        start, end = quote.new_period or (sub.current_period_start, sub.current_period_end)
        return PlanChangePreview(
            plan_code=quote.plan.code, cycle=BillingCycle(quote.cycle),
            credit_minor=BigInt(p.credit_minor), credit_currency=sub.currency,
            charge_minor=BigInt(p.charge_minor), charge_currency=quote.currency,
            credits_taken_back=BigInt(p.clawback_credits),
            credits_granted=BigInt(p.grant_credits), new_period_start=start, new_period_end=end,
            remaining_seconds=BigInt(p.remaining_seconds), period_seconds=BigInt(p.period_seconds),
        )  # fmt: skip

    @strawberry.field(permission_classes=READ, description="Oldest first.")
    async def invoice_lines(self, info: Info, account_external_id: str) -> list[InvoiceLine]:
        async with info.context.db.transaction() as session:
            account = await get_account(session, account_external_id)
            if account is None:
                return []
            return [
                InvoiceLine.of(x) for x in await billing.lines_of(session, account_id=account.id)
            ]


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=WRITE)
    async def subscribe(self, info: Info, input: SubscribeInput) -> SubscriptionResult:
        request = service.SubscribeRequest(
            account_external_id=input.account_external_id, plan_code=input.plan_code,
            cycle=input.cycle.value, idempotency_key=input.idempotency_key,
            country=input.country, start_at=input.start_at,
        )  # fmt: skip
        actor = _actor(info)
        return await _write(
            info, "subscribe", request,
            lambda s: service.subscribe(s, request, actor=actor, now=datetime.now(UTC)),
        )  # fmt: skip

    @strawberry.mutation(
        permission_classes=WRITE,
        description="Move to another plan (or cycle) now, with proration; see previewPlanChange.",
    )
    async def change_plan(self, info: Info, input: ChangePlanInput) -> SubscriptionResult:
        request, actor = _change_request(input), _actor(info)
        return await _write(
            info, "changePlan", request,
            lambda s: service.change_plan(s, request, actor=actor, now=datetime.now(UTC)),
        )  # fmt: skip

    @strawberry.mutation(permission_classes=WRITE)
    async def cancel_subscription(
        self, info: Info, account_external_id: str, at_period_end: bool = True
    ) -> SubscriptionResult:
        actor = _actor(info)
        params = {"account": account_external_id, "atPeriodEnd": at_period_end}
        return await _write(
            info, "cancelSubscription", params,
            lambda s: service.cancel(
                s, account_external_id, at_period_end=at_period_end, actor=actor,
                now=datetime.now(UTC),
            ),
        )  # fmt: skip
