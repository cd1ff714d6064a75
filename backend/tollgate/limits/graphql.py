"""GraphQL adapter of limits: setting an account's limits and reading them with current usage."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate import errors
from tollgate.accounts.service import get_account
from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import AccountNotFound, ValidationFailed, is_domain_error, to_graphql
from tollgate.api.permissions import READ, WRITE
from tollgate.api.scalars import BigInt
from tollgate.limits import rules, service


@strawberry.enum(description="Limits counted over a calendar day or month window.")
class WindowLimit(Enum):
    TOKENS_PER_DAY = rules.TOKENS_PER_DAY
    TOKENS_PER_MONTH = rules.TOKENS_PER_MONTH
    CALLS_PER_DAY = rules.CALLS_PER_DAY
    CALLS_PER_MONTH = rules.CALLS_PER_MONTH
    COST_CAP_PER_DAY = rules.COST_CAP_PER_DAY
    COST_CAP_PER_MONTH = rules.COST_CAP_PER_MONTH


@strawberry.enum
class LimitLevel(Enum):
    OK = "OK"
    WARNING = "WARNING"
    BLOCK = "BLOCK"


@strawberry.type
class LimitThreshold:
    limit: WindowLimit
    warn_at_percent: int
    block_at_percent: int


@strawberry.type(description="Usage recorded in one window of the account's calendar.")
class WindowUsage:
    window: str = strawberry.field(description='"day:2026-11-21" or "month:2026-11".')
    starts_at: datetime
    tokens: BigInt
    calls: BigInt
    cost_micros: BigInt = strawberry.field(description="Provider cost, in micro-USD.")

    @classmethod
    def of(cls, w: service.Window) -> WindowUsage:
        return cls(
            window=w.key,
            starts_at=w.starts_at,
            tokens=BigInt(w.usage.tokens),
            calls=BigInt(w.usage.calls),
            cost_micros=BigInt(w.usage.cost_micros),
        )


@strawberry.type(description="Where one window limit stands now.")
class LimitUsage:
    limit: WindowLimit
    window: str
    used: BigInt
    limit_value: BigInt
    percent_used: int = strawberry.field(description="Rounded down.")
    warn_at_percent: int
    block_at_percent: int
    level: LimitLevel

    @classmethod
    def of(cls, s: rules.LimitStatus) -> LimitUsage:
        return cls(
            limit=WindowLimit(s.limit),
            window=s.window,
            used=BigInt(s.used),
            limit_value=BigInt(s.limit_value),
            percent_used=s.percent_used,
            warn_at_percent=s.warn_percent,
            block_at_percent=s.block_percent,
            level=LimitLevel(s.level),
        )


def _big(value: int | None) -> BigInt | None:
    return None if value is None else BigInt(value)


@strawberry.type(description="An account's limits (null: no limit) and its current usage.")
class AccountLimits:
    account_external_id: str
    tokens_per_day: BigInt | None
    tokens_per_month: BigInt | None
    calls_per_day: BigInt | None
    calls_per_month: BigInt | None
    cost_cap_per_day_micros: BigInt | None
    cost_cap_per_month_micros: BigInt | None
    max_tokens_per_request: BigInt | None
    requests_per_minute: int | None
    allowed_models: list[str] | None = strawberry.field(
        description="Exact names and glob patterns (gpt-4o*); null allows every model."
    )
    timezone: str | None = strawberry.field(description="The windows' calendar; null is UTC.")
    low_balance_credits: BigInt | None
    thresholds: list[LimitThreshold] = strawberry.field(
        description="Warning and block thresholds of every window limit, defaults included."
    )
    updated_at: datetime | None = strawberry.field(description="Null when never set.")
    day: WindowUsage
    month: WindowUsage
    usage: list[LimitUsage] = strawberry.field(description="The window limits that are set.")

    @classmethod
    def of(cls, r: service.LimitsReport) -> AccountLimits:
        limits = r.limits
        return cls(
            account_external_id=r.external_id,
            tokens_per_day=_big(limits.tokens_per_day),
            tokens_per_month=_big(limits.tokens_per_month),
            calls_per_day=_big(limits.calls_per_day),
            calls_per_month=_big(limits.calls_per_month),
            cost_cap_per_day_micros=_big(limits.cost_per_day_micros),
            cost_cap_per_month_micros=_big(limits.cost_per_month_micros),
            max_tokens_per_request=_big(limits.max_tokens_per_request),
            requests_per_minute=limits.requests_per_minute,
            allowed_models=None if limits.allowed_models is None else list(limits.allowed_models),
            timezone=limits.timezone,
            low_balance_credits=_big(limits.low_balance_credits),
            thresholds=[
                LimitThreshold(
                    limit=WindowLimit(name),
                    warn_at_percent=limits.threshold(name)[0],
                    block_at_percent=limits.threshold(name)[1],
                )
                for name in rules.WINDOW_LIMIT_NAMES
            ],
            updated_at=r.updated_at,
            day=WindowUsage.of(r.day),
            month=WindowUsage.of(r.month),
            usage=[LimitUsage.of(s) for s in r.status],
        )


@strawberry.input
class LimitThresholdInput:
    limit: WindowLimit
    warn_at_percent: int
    block_at_percent: int


@strawberry.input(description="Limits: a limit left out or null is no limit.")
class LimitsInput:
    tokens_per_day: BigInt | None = None
    tokens_per_month: BigInt | None = None
    calls_per_day: BigInt | None = None
    calls_per_month: BigInt | None = None
    cost_cap_per_day_micros: BigInt | None = strawberry.field(
        default=None, description="Provider cost per day, in micro-USD."
    )
    cost_cap_per_month_micros: BigInt | None = strawberry.field(
        default=None, description="Provider cost per month, in micro-USD."
    )
    max_tokens_per_request: BigInt | None = None
    requests_per_minute: int | None = None
    allowed_models: list[str] | None = strawberry.field(
        default=None,
        description="Exact names and glob patterns (gpt-4o*, claude-*); null allows every "
        "model, an empty list none.",
    )
    timezone: str | None = strawberry.field(
        default=None, description="IANA name (Europe/Warsaw) of the windows' calendar; null: UTC."
    )
    low_balance_credits: BigInt | None = strawberry.field(
        default=None, description="Alert when spendable credits fall to this or below."
    )
    thresholds: list[LimitThresholdInput] = strawberry.field(
        default_factory=list,
        description="Per window limit; the others warn at 80 % and block at 95 %.",
    )


@strawberry.input(
    description="Replaces all of the account's limits: a limit left out or null is no limit."
)
class SetAccountLimitsInput(LimitsInput):
    account_external_id: str


SetAccountLimitsResult = Annotated[
    AccountLimits | ValidationFailed | AccountNotFound,
    strawberry.union("SetAccountLimitsResult"),
]


def limits_of(input: LimitsInput) -> rules.Limits:
    return rules.Limits(
        tokens_per_day=input.tokens_per_day,
        tokens_per_month=input.tokens_per_month,
        calls_per_day=input.calls_per_day,
        calls_per_month=input.calls_per_month,
        cost_per_day_micros=input.cost_cap_per_day_micros,
        cost_per_month_micros=input.cost_cap_per_month_micros,
        max_tokens_per_request=input.max_tokens_per_request,
        requests_per_minute=input.requests_per_minute,
        allowed_models=None if input.allowed_models is None else tuple(input.allowed_models),
        timezone=input.timezone,
        low_balance_credits=input.low_balance_credits,
        thresholds={
            t.limit.value: (t.warn_at_percent, t.block_at_percent) for t in input.thresholds
        },
    )


@strawberry.type
class Query:
    @strawberry.field(permission_classes=READ, description="Null when there is no such account.")
    async def account_limits(self, info: Info, account_external_id: str) -> AccountLimits | None:
        async with info.context.db.transaction() as session:
            account = await get_account(session, account_external_id)
            if account is None:
                return None
            return AccountLimits.of(await service.report(session, account, datetime.now(UTC)))


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=WRITE, description="Set all of an account's limits.")
    async def set_account_limits(
        self, info: Info, input: SetAccountLimitsInput
    ) -> SetAccountLimitsResult:
        request = service.SetLimitsRequest(input.account_external_id, limits_of(input))
        repeated = [n for n, c in Counter(t.limit.value for t in input.thresholds).items() if c > 1]
        principal = info.context.principal
        assert principal is not None
        actor = principal.actor

        async def work(
            session: AsyncSession,
        ) -> service.LimitsReport | errors.ValidationFailed | errors.AccountNotFound:
            if repeated:
                return errors.ValidationFailed("thresholds", f"{repeated[0]} given more than once")
            return await service.set_account_limits(
                session, request, actor=actor, now=datetime.now(UTC)
            )

        result = await audited(info, "setAccountLimits", request, work)
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, service.LimitsReport)
        return AccountLimits.of(result)
