"""GraphQL shapes of features, plans, plan versions and token packages, and their inputs."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from tollgate.api.scalars import BigInt
from tollgate.errors import ValidationFailed
from tollgate.limits import rules as limit_rules
from tollgate.limits.graphql import LimitsInput, limits_of
from tollgate.plans import content as rules
from tollgate.plans import models
from tollgate.pricing import policies
from tollgate.pricing.graphql import PricingPolicy, PricingPolicyInput, policy_input_of
from tollgate.pricing.policy_input import build_policy
from tollgate.subscriptions.periods import Interval


@strawberry.enum
class FeatureKind(Enum):
    BOOLEAN = "BOOLEAN"
    LIMIT = "LIMIT"
    METERED = "METERED"


@strawberry.enum
class BillingCycle(Enum):
    MONTHLY = "MONTHLY"
    ANNUAL = "ANNUAL"
    CUSTOM = "CUSTOM"


@strawberry.enum
class IntervalUnit(Enum):
    DAY = "DAY"
    MONTH = "MONTH"


@strawberry.enum(description="What is left of a period's plan credits at its end.")
class RolloverRule(Enum):
    NONE = "NONE"
    CAP = "CAP"
    UNLIMITED = "UNLIMITED"


@strawberry.enum
class PlanVersionStatus(Enum):
    DRAFT = "DRAFT"
    PUBLISHED = "PUBLISHED"


@strawberry.type
class Feature:
    key: str
    name: str
    description: str
    kind: FeatureKind
    unit: str | None
    updated_at: datetime

    @classmethod
    def of(cls, f: models.Feature) -> Feature:
        return cls(
            key=f.key,
            name=f.name,
            description=f.description,
            kind=FeatureKind(f.kind),
            unit=f.unit,
            updated_at=f.updated_at,
        )


@strawberry.type(description="An amount in integer minor units of an ISO 4217 currency.")
class Price:
    cycle: BillingCycle
    currency: str
    amount_minor: BigInt


@strawberry.type
class RegionalPrice:
    countries: list[str]
    cycle: BillingCycle
    currency: str
    amount_minor: BigInt


@strawberry.type
class CustomInterval:
    unit: IntervalUnit
    count: int


@strawberry.type
class FeatureValue:
    feature_key: str
    enabled: bool | None
    limit: BigInt | None


@strawberry.type
class StripePriceId:
    cycle: BillingCycle
    currency: str
    price_id: str


@strawberry.type(description="Limits a plan gives its subscribers; null: no limit.")
class PlanLimits:
    tokens_per_day: BigInt | None
    tokens_per_month: BigInt | None
    calls_per_day: BigInt | None
    calls_per_month: BigInt | None
    cost_cap_per_day_micros: BigInt | None
    cost_cap_per_month_micros: BigInt | None
    max_tokens_per_request: BigInt | None
    requests_per_minute: int | None
    allowed_models: list[str] | None
    low_balance_credits: BigInt | None

    @classmethod
    def of(cls, limits: limit_rules.Limits) -> PlanLimits:
        return cls(
            tokens_per_day=limits.tokens_per_day,  # type: ignore[arg-type]
            tokens_per_month=limits.tokens_per_month,  # type: ignore[arg-type]
            calls_per_day=limits.calls_per_day,  # type: ignore[arg-type]
            calls_per_month=limits.calls_per_month,  # type: ignore[arg-type]
            cost_cap_per_day_micros=limits.cost_per_day_micros,  # type: ignore[arg-type]
            cost_cap_per_month_micros=limits.cost_per_month_micros,  # type: ignore[arg-type]
            max_tokens_per_request=limits.max_tokens_per_request,  # type: ignore[arg-type]
            requests_per_minute=limits.requests_per_minute,
            allowed_models=None if limits.allowed_models is None else list(limits.allowed_models),
            low_balance_credits=limits.low_balance_credits,  # type: ignore[arg-type]
        )


@strawberry.type
class PlanVersion:
    id: strawberry.ID
    plan_code: str
    version: int
    status: PlanVersionStatus
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime
    default_currency: str
    prices: list[Price]
    regional_prices: list[RegionalPrice]
    custom_interval: CustomInterval | None
    included_credits: BigInt = strawberry.field(description="Credits allocated each period.")
    rollover: RolloverRule
    rollover_cap_percent: int | None
    limits: PlanLimits
    feature_values: list[FeatureValue]
    trial_days: int
    seats: int | None
    pricing_policy: PricingPolicy | None
    badge: str | None = strawberry.field(description='Shown on the pricing page ("Most popular").')
    lago_plan_code: str | None
    stripe_price_ids: list[StripePriceId]

    @classmethod
    def of(cls, v: models.PlanVersion, plan_code: str) -> PlanVersion:
        c = rules.from_json(v.content)
        interval = c.custom_interval
        return cls(
            id=strawberry.ID(str(v.id)),
            plan_code=plan_code,
            version=v.version,
            status=PlanVersionStatus(v.status),
            published_at=v.published_at,
            created_at=v.created_at,
            updated_at=v.updated_at,
            default_currency=c.default_currency,
            prices=[
                Price(
                    cycle=BillingCycle(p.cycle),
                    currency=p.currency,
                    amount_minor=BigInt(p.amount_minor),
                )
                for p in c.prices
            ],
            regional_prices=[
                RegionalPrice(
                    countries=list(r.countries),
                    cycle=BillingCycle(r.cycle),
                    currency=r.currency,
                    amount_minor=BigInt(r.amount_minor),
                )
                for r in c.regional_prices
            ],
            custom_interval=None
            if interval is None
            else CustomInterval(unit=IntervalUnit(interval.unit), count=interval.count),
            included_credits=BigInt(c.included_credits),
            rollover=RolloverRule(c.rollover),
            rollover_cap_percent=c.rollover_cap_percent,
            limits=PlanLimits.of(c.limits),
            feature_values=[
                FeatureValue(
                    feature_key=f.key,
                    enabled=f.enabled,
                    limit=None if f.limit is None else BigInt(f.limit),
                )
                for f in c.feature_values
            ],
            trial_days=c.trial_days,
            seats=c.seats,
            pricing_policy=None
            if c.policy is None
            else PricingPolicy.of(policies.EffectivePolicy(c.policy, policies.PLAN)),
            badge=c.badge,
            lago_plan_code=c.lago_plan_code,
            stripe_price_ids=[
                StripePriceId(cycle=BillingCycle(s.cycle), currency=s.currency, price_id=s.price_id)
                for s in c.stripe_prices
            ],
        )


@strawberry.input
class PriceInput:
    cycle: BillingCycle
    currency: str = strawberry.field(description="ISO 4217, e.g. USD.")
    amount_minor: BigInt = strawberry.field(description="Minor units: 1900 is $19.00.")


@strawberry.input
class RegionalPriceInput:
    countries: list[str] = strawberry.field(description="ISO 3166 alpha-2 codes, e.g. PL, DE.")
    cycle: BillingCycle
    currency: str
    amount_minor: BigInt


@strawberry.input
class CustomIntervalInput:
    unit: IntervalUnit
    count: int


@strawberry.input
class FeatureValueInput:
    feature_key: str
    enabled: bool | None = strawberry.field(default=None, description="BOOLEAN features.")
    limit: BigInt | None = strawberry.field(default=None, description="LIMIT and METERED.")


@strawberry.input
class StripePriceIdInput:
    cycle: BillingCycle
    currency: str
    price_id: str


@strawberry.input(description="Everything a plan version holds.")
class PlanVersionInput:
    prices: list[PriceInput]
    default_currency: str = "USD"
    regional_prices: list[RegionalPriceInput] = strawberry.field(default_factory=list)
    custom_interval: CustomIntervalInput | None = None
    included_credits: BigInt = BigInt(0)
    rollover: RolloverRule = RolloverRule.NONE
    rollover_cap_percent: int | None = strawberry.field(
        default=None, description="CAP only: the most that rolls over, in % of the allocation."
    )
    limits: LimitsInput | None = None
    feature_values: list[FeatureValueInput] = strawberry.field(default_factory=list)
    trial_days: int = 0
    seats: int | None = None
    pricing_policy: PricingPolicyInput | None = strawberry.field(
        default=None, description="null: the global default applies to subscribers."
    )
    badge: str | None = None
    lago_plan_code: str | None = None
    stripe_price_ids: list[StripePriceIdInput] = strawberry.field(default_factory=list)


def content_of(input: PlanVersionInput) -> rules.VersionContent | ValidationFailed:
    policy = None
    if input.pricing_policy is not None:
        built = build_policy(policy_input_of(input.pricing_policy))
        if isinstance(built, ValidationFailed):
            return ValidationFailed("pricingPolicy." + built.field, built.message)
        policy = built
    interval = input.custom_interval
    return rules.VersionContent(
        default_currency=input.default_currency,
        prices=tuple(rules.Price(p.cycle.value, p.currency, p.amount_minor) for p in input.prices),
        regional_prices=tuple(
            rules.RegionalPrice(
                tuple(c.upper() for c in r.countries), r.cycle.value, r.currency, r.amount_minor
            )
            for r in input.regional_prices
        ),
        custom_interval=None if interval is None else Interval(interval.unit.value, interval.count),
        included_credits=input.included_credits,
        rollover=input.rollover.value,
        rollover_cap_percent=input.rollover_cap_percent,
        limits=limit_rules.Limits() if input.limits is None else limits_of(input.limits),
        feature_values=tuple(
            rules.FeatureValue(f.feature_key, f.enabled, f.limit) for f in input.feature_values
        ),
        trial_days=input.trial_days,
        seats=input.seats,
        policy=policy,
        badge=input.badge,
        lago_plan_code=input.lago_plan_code,
        stripe_prices=tuple(
            rules.StripePrice(s.cycle.value, s.currency, s.price_id) for s in input.stripe_price_ids
        ),
    )


@strawberry.type
class Plan:
    id: strawberry.ID
    code: str
    name: str
    description: str
    archived_at: datetime | None
    created_at: datetime
    versions: list[PlanVersion] = strawberry.field(description="Oldest first.")
    current_version: PlanVersion | None = strawberry.field(
        description="The latest published version: what new subscribers get."
    )
    draft: PlanVersion | None = strawberry.field(description="The version being edited, if any.")

    @classmethod
    def of(cls, p: models.Plan, versions: list[models.PlanVersion]) -> Plan:
        views = [PlanVersion.of(v, p.code) for v in versions]
        published = [v for v in views if v.status == PlanVersionStatus.PUBLISHED]
        return cls(
            id=strawberry.ID(str(p.id)),
            code=p.code,
            name=p.name,
            description=p.description,
            archived_at=p.archived_at,
            created_at=p.created_at,
            versions=views,
            current_version=published[-1] if published else None,
            draft=next((v for v in views if v.status == PlanVersionStatus.DRAFT), None),
        )


@strawberry.type
class ResolvedPrice:
    plan_code: str
    cycle: BillingCycle
    currency: str
    amount_minor: BigInt
    country: str | None
    regional: bool = strawberry.field(description="False: the default currency's price.")


@strawberry.type
class PackagePrice:
    currency: str
    amount_minor: BigInt


@strawberry.type
class TokenPackage:
    code: str
    name: str
    credits: BigInt
    prices: list[PackagePrice]
    validity_days: int | None = strawberry.field(description="null: the credits never expire.")
    available_to_plans: list[str] = strawberry.field(description="Plan codes; empty: everyone.")
    active: bool

    @classmethod
    def of(cls, p: models.TokenPackage) -> TokenPackage:
        return cls(
            code=p.code,
            name=p.name,
            credits=BigInt(p.credits),
            prices=[
                PackagePrice(currency=c, amount_minor=BigInt(a))
                for c, a in sorted(p.prices.items())
            ],
            validity_days=p.validity_days,
            available_to_plans=list(p.available_to_plans),
            active=p.active,
        )


@strawberry.input
class PackagePriceInput:
    currency: str
    amount_minor: BigInt


@strawberry.input
class UpsertTokenPackageInput:
    code: str
    credits: BigInt
    prices: list[PackagePriceInput]
    name: str = ""
    validity_days: int | None = None
    available_to_plans: list[str] = strawberry.field(default_factory=list)
    active: bool = True


@strawberry.input
class UpsertFeatureInput:
    key: str
    name: str
    kind: FeatureKind
    description: str = ""
    unit: str | None = None


@strawberry.input
class CreatePlanInput:
    code: str
    name: str
    version: PlanVersionInput
    description: str = ""
