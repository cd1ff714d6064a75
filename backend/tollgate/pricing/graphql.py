"""GraphQL adapter of pricing: the model price catalog, pricing policies and call quotes.

Every mutation that changed something publishes the "pricing" topic after its transaction
commits, so each process's `PricingCache` reloads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import (
    AccountNotFound,
    UnknownModel,
    ValidationFailed,
    is_domain_error,
    to_graphql,
)
from tollgate.api.pagination import Connection, connection, page_args
from tollgate.api.permissions import READ, WRITE
from tollgate.api.scalars import BigInt
from tollgate.pricing import catalog, charge, policies, policy_input, quote
from tollgate.pricing.cache import TOPIC

R = TypeVar("R")


@strawberry.enum
class PricingPolicyKind(Enum):
    PASSTHROUGH = "PASSTHROUGH"
    MULTIPLIER = "MULTIPLIER"
    PER_MODEL = "PER_MODEL"
    FIXED_PER_CALL = "FIXED_PER_CALL"


@strawberry.enum(description="Where the policy in force comes from.")
class PricingPolicyScope(Enum):
    ACCOUNT = "ACCOUNT"
    GLOBAL = "GLOBAL"
    PLAN = "PLAN"
    BUILT_IN = "BUILT_IN"


@strawberry.type(description="A price version, in force from effectiveFrom to the next one.")
class ModelPrice:
    id: strawberry.ID
    provider: str
    model: str
    aliases: list[str]
    input_per_million: Decimal = strawberry.field(description="USD per 1M uncached input tokens.")
    output_per_million: Decimal = strawberry.field(description="USD per 1M output tokens.")
    cached_input_per_million: Decimal | None = strawberry.field(
        description="USD per 1M cached input tokens; null: the input price."
    )
    per_image: Decimal = strawberry.field(description="USD per image.")
    per_request: Decimal = strawberry.field(description="USD per call.")
    effective_from: datetime

    @classmethod
    def of(cls, v: charge.ModelPriceVersion) -> ModelPrice:
        return cls(
            id=strawberry.ID(str(v.id)),
            provider=v.provider,
            model=v.model,
            aliases=list(v.aliases),
            input_per_million=v.input_per_million,
            output_per_million=v.output_per_million,
            cached_input_per_million=v.cached_input_per_million,
            per_image=v.per_image,
            per_request=v.per_request,
            effective_from=v.effective_from,
        )


@strawberry.type(description="Markup and minimum charge for models matching `model`.")
class ModelRule:
    model: str = strawberry.field(description="An exact model name or a glob such as gpt-4o*.")
    markup: Decimal
    min_charge_usd: Decimal


@strawberry.type(description="A charge multiplier for a daily window (start in, end out).")
class TimeRule:
    start: str
    end: str
    timezone: str
    multiplier: Decimal
    weekdays: list[int] = strawberry.field(description="ISO days the window starts on; empty: all.")


@strawberry.type
class PricingPolicy:
    scope: PricingPolicyScope
    account_external_id: str | None
    kind: PricingPolicyKind
    multiplier: Decimal | None
    fixed_per_call_usd: Decimal | None
    default_markup: Decimal | None
    platform_fee_usd: Decimal
    model_rules: list[ModelRule]
    time_rules: list[TimeRule]
    updated_at: datetime | None

    @classmethod
    def of(cls, e: policies.EffectivePolicy) -> PricingPolicy:
        p = e.policy
        return cls(
            scope=PricingPolicyScope(e.scope),
            account_external_id=e.account_external_id,
            kind=PricingPolicyKind(p.kind),
            multiplier=p.multiplier if p.kind == charge.MULTIPLIER else None,
            fixed_per_call_usd=p.fixed_per_call_usd if p.kind == charge.FIXED_PER_CALL else None,
            default_markup=p.default_markup if p.kind == charge.PER_MODEL else None,
            platform_fee_usd=p.platform_fee_usd,
            model_rules=[
                ModelRule(model=r.model, markup=r.markup, min_charge_usd=r.min_charge_usd)
                for r in p.model_rules
            ],
            time_rules=[
                TimeRule(
                    start=r.start.strftime("%H:%M"),
                    end=r.end.strftime("%H:%M"),
                    timezone=r.timezone,
                    multiplier=r.multiplier,
                    weekdays=sorted(r.weekdays),
                )
                for r in p.time_rules
            ],
            updated_at=e.updated_at,
        )


@strawberry.type(description="What one call would cost and be charged.")
class Quote:
    cost_micros: BigInt = strawberry.field(description="Provider cost, micro-USD, rounded up.")
    charge_micros: BigInt = strawberry.field(description="Charge, micro-USD, rounded up.")
    credits: BigInt = strawberry.field(description="The charge in credits, rounded up.")
    policy_kind: PricingPolicyKind
    policy_scope: PricingPolicyScope
    price_effective_from: datetime
    price: ModelPrice = strawberry.field(description="The catalog price version used.")

    @classmethod
    def of(cls, q: quote.Quote) -> Quote:
        return cls(
            cost_micros=BigInt(q.charge.cost_micros),
            charge_micros=BigInt(q.charge.charge_micros),
            credits=BigInt(q.charge.credits),
            policy_kind=PricingPolicyKind(q.charge.policy_kind),
            policy_scope=PricingPolicyScope(q.policy_scope),
            price_effective_from=q.price.effective_from,
            price=ModelPrice.of(q.price),
        )


@strawberry.input
class UpsertModelPriceInput:
    provider: str
    model: str
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None
    per_image: Decimal | None = None
    per_request: Decimal | None = None
    aliases: list[str] | None = strawberry.field(
        default=None, description="Replaces the model's aliases; null keeps them."
    )
    effective_from: datetime | None = strawberry.field(
        default=None,
        description="When this version starts (null: now). An existing start is replaced.",
    )


@strawberry.input
class ModelRuleInput:
    model: str
    markup: Decimal
    min_charge_usd: Decimal | None = None


@strawberry.input
class TimeRuleInput:
    start: str = strawberry.field(description="HH:MM, inclusive.")
    end: str = strawberry.field(description="HH:MM, exclusive; before start: overnight.")
    timezone: str = strawberry.field(description="IANA zone, e.g. Europe/Warsaw.")
    multiplier: Decimal
    weekdays: list[int] | None = None


@strawberry.input
class PricingPolicyInput:
    kind: PricingPolicyKind
    multiplier: Decimal | None = None
    fixed_per_call_usd: Decimal | None = None
    platform_fee_usd: Decimal | None = None
    default_markup: Decimal | None = strawberry.field(
        default=None, description="PER_MODEL: markup of models no rule matches (default 1)."
    )
    model_rules: list[ModelRuleInput] | None = None
    time_rules: list[TimeRuleInput] | None = None


@strawberry.input
class SetPricingPolicyInput(PricingPolicyInput):
    account_external_id: str | None = strawberry.field(
        default=None, description="null: the global default."
    )


UpsertModelPriceResult = Annotated[
    ModelPrice | ValidationFailed, strawberry.union("UpsertModelPriceResult")
]
PricingPolicyResult = Annotated[
    PricingPolicy | ValidationFailed | AccountNotFound, strawberry.union("PricingPolicyResult")
]
QuoteCallResult = Annotated[
    Quote | UnknownModel | AccountNotFound | ValidationFailed, strawberry.union("QuoteCallResult")
]


def policy_input_of(
    input: PricingPolicyInput, account_external_id: str | None = None
) -> policy_input.PolicyInput:
    return policy_input.PolicyInput(
        account_external_id=account_external_id,
        kind=input.kind.value,
        multiplier=input.multiplier,
        fixed_per_call_usd=input.fixed_per_call_usd,
        platform_fee_usd=input.platform_fee_usd,
        default_markup=input.default_markup,
        model_rules=tuple(
            policy_input.ModelRuleInput(r.model, r.markup, r.min_charge_usd or Decimal(0))
            for r in input.model_rules or ()
        ),
        time_rules=tuple(
            policy_input.TimeRuleInput(
                r.start, r.end, r.timezone, r.multiplier, tuple(r.weekdays or ())
            )
            for r in input.time_rules or ()
        ),
    )


async def _write(
    info: Info, operation: str, params: object, work: Callable[[AsyncSession], Awaitable[R]]
) -> object:
    """Audited in the write's transaction; the caches are told only once it committed."""
    result = await audited(info, operation, params, work)
    if is_domain_error(result):
        return to_graphql(result)
    await info.context.bus.publish(TOPIC)
    return result


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=READ,
        description="By model name. Without history, one version per model: the one in force"
        " now (or, for a model not priced yet, the first to come). `model` is a name or alias.",
    )
    async def model_prices(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        model: str | None = None,
        include_history: bool = False,
    ) -> Connection[ModelPrice]:
        after_id = page_args(first, after)
        async with info.context.db.transaction() as session:
            rows = await catalog.list_prices(
                session,
                first=first,
                after_id=after_id,
                model=model,
                include_history=include_history,
            )
        return connection(rows, first, key=lambda v: v.id, node=ModelPrice.of)

    @strawberry.field(
        permission_classes=READ,
        description="The policy in force for an account: its own or the global default."
        " Without an account: the global default.",
    )
    async def pricing_policy(
        self, info: Info, account_external_id: str | None = None
    ) -> PricingPolicyResult:
        async with info.context.db.transaction() as session:
            result = await policies.effective_policy(session, account_external_id)
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        return PricingPolicy.of(result)  # type: ignore[arg-type]

    @strawberry.field(permission_classes=READ, description="Price a call without booking anything.")
    async def quote_call(
        self,
        info: Info,
        model: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        images: int = 0,
        byok: bool = False,
        account_external_id: str | None = None,
        provider: str | None = None,
        at: datetime | None = None,
    ) -> QuoteCallResult:
        request = quote.QuoteRequest(
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached_input_tokens,
            images=images,
            byok=byok,
            account_external_id=account_external_id,
            provider=provider,
            at=at,
        )
        async with info.context.db.transaction() as session:
            result = await quote.quote_call(
                session, request, credit_value_micros=info.context.settings.credit_value_micros
            )
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        return Quote.of(result)  # type: ignore[arg-type]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=WRITE,
        description="Add a price version, or replace the one with the same effectiveFrom.",
    )
    async def upsert_model_price(
        self, info: Info, input: UpsertModelPriceInput
    ) -> UpsertModelPriceResult:
        price = catalog.PriceInput(
            provider=input.provider,
            model=input.model,
            input_per_million=input.input_per_million,
            output_per_million=input.output_per_million,
            cached_input_per_million=input.cached_input_per_million,
            per_image=input.per_image or Decimal(0),
            per_request=input.per_request or Decimal(0),
            aliases=None if input.aliases is None else tuple(input.aliases),
            effective_from=input.effective_from,
        )
        result = await _write(
            info, "upsertModelPrice", price, lambda s: catalog.upsert_model_price(s, price)
        )
        if isinstance(result, charge.ModelPriceVersion):
            return ModelPrice.of(result)
        return result  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=WRITE,
        description="Set an account's own policy, or the global default (no account).",
    )
    async def set_pricing_policy(
        self, info: Info, input: SetPricingPolicyInput
    ) -> PricingPolicyResult:
        given = policy_input_of(input, input.account_external_id)
        result = await _write(
            info, "setPricingPolicy", given, lambda s: policies.set_policy(s, given)
        )
        if isinstance(result, policies.EffectivePolicy):
            return PricingPolicy.of(result)
        return result  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=WRITE,
        description="Remove an account's own policy (or the global default); returns the one"
        " in force afterwards.",
    )
    async def clear_pricing_policy(
        self, info: Info, account_external_id: str | None = None
    ) -> PricingPolicyResult:
        params = {"accountExternalId": account_external_id}
        result = await _write(
            info,
            "clearPricingPolicy",
            params,
            lambda s: policies.clear_policy(s, account_external_id),
        )
        if isinstance(result, policies.EffectivePolicy):
            return PricingPolicy.of(result)
        return result  # type: ignore[return-value]
