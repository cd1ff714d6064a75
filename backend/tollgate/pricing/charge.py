"""What one call costs and what the account is charged for it. Pure: no I/O.

Provider cost (USD), from the catalog version in force when the call happened::

    cost = (input_tokens * input_per_million
            + cached_input_tokens * cached_input_per_million   (input price when unset)
            + output_tokens * output_per_million) / 1,000,000
           + images * per_image + per_request

or exactly `provider_cost_micros` / 1,000,000 when the caller knows the real cost.

Charge (USD), by the policy's kind::

    PASSTHROUGH     base = cost
    MULTIPLIER      base = cost * multiplier
    PER_MODEL       base = max(cost * rule.markup, rule.min_charge_usd) for the matching rule
                    (see `rules`), else cost * default_markup
    FIXED_PER_CALL  base = fixed_per_call_usd

    charge = base * (multiplier of the first matching time rule, else 1) + platform_fee_usd

A BYOK call is always charged `cost + platform_fee_usd` (kind PASSTHROUGH, no time rules),
whatever the policy's kind.

Rounding rules:

1. Everything above is computed exactly in `Decimal` (a context that raises on any inexact
   step, so no intermediate value is ever rounded).
2. Only then are cost and charge each rounded UP to whole micro-USD: `cost_micros` and
   `charge_micros`. Any fraction of a micro rounds up (0.0000001 USD → 1 micro), so a call is
   never charged below what it costs under a markup of at least 1.
3. The charge is computed from the exact cost, not from the rounded `cost_micros`, so rounding
   happens once per amount and never compounds.
4. `credits` = `charge_micros` / `credit_value_micros`, rounded UP to a whole credit
   (1,001 micros at 1,000 micros per credit → 2 credits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import (
    ROUND_CEILING,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

from tollgate.pricing.rules import ModelRule, TimeRule, match_model_rule, match_time_rule

PASSTHROUGH = "PASSTHROUGH"
MULTIPLIER = "MULTIPLIER"
PER_MODEL = "PER_MODEL"
FIXED_PER_CALL = "FIXED_PER_CALL"
KINDS = (PASSTHROUGH, MULTIPLIER, PER_MODEL, FIXED_PER_CALL)

ZERO = Decimal(0)
ONE = Decimal(1)
MICROS_PER_USD = 1_000_000
TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)

# Wide enough for any validated input; traps make an inexact step an error, never a rounding.
_EXACT = Context(prec=120, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


@dataclass(frozen=True)
class CallUsage:
    input_tokens: int  # uncached input tokens
    output_tokens: int
    cached_input_tokens: int = 0
    images: int = 0


@dataclass(frozen=True)
class ModelPriceVersion:
    id: int
    provider: str
    model: str
    aliases: tuple[str, ...]
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None
    per_image: Decimal
    per_request: Decimal
    effective_from: datetime


@dataclass(frozen=True)
class Policy:
    """How calls are charged. Fields a kind does not use keep their neutral defaults."""

    kind: str = PASSTHROUGH
    multiplier: Decimal = ONE
    fixed_per_call_usd: Decimal = ZERO
    default_markup: Decimal = ONE
    platform_fee_usd: Decimal = ZERO
    model_rules: tuple[ModelRule, ...] = field(default=())
    time_rules: tuple[TimeRule, ...] = field(default=())


@dataclass(frozen=True)
class Charge:
    cost_micros: int  # provider cost, rounded up to whole micro-USD
    charge_micros: int  # what the account is charged, rounded up
    credits: int  # charge_micros in credits, rounded up
    policy_kind: str


def provider_cost_usd(price: ModelPriceVersion, usage: CallUsage) -> Decimal:
    """The exact provider cost of `usage` at `price`, in USD."""
    cached = price.cached_input_per_million
    with localcontext(_EXACT):
        tokens = (
            usage.input_tokens * price.input_per_million
            + usage.cached_input_tokens * (price.input_per_million if cached is None else cached)
            + usage.output_tokens * price.output_per_million
        )
        return tokens / TOKENS_PER_PRICE_UNIT + usage.images * price.per_image + price.per_request


def price_call(
    price: ModelPriceVersion | None,
    usage: CallUsage,
    policy: Policy,
    *,
    at: datetime,
    byok: bool,
    credit_value_micros: int,
    provider_cost_micros: int | None = None,
    model: str | None = None,
) -> Charge:
    """Price one call. `provider_cost_micros`, when given, replaces the catalog cost, and
    `price` may then be None. `model` is the name the call used; per-model rules are matched
    against it as well as the catalog name and aliases."""
    _check(usage, at, credit_value_micros, provider_cost_micros)
    if provider_cost_micros is None and price is None:
        raise ValueError("a call without a catalog price needs provider_cost_micros")
    with localcontext(_EXACT):
        if provider_cost_micros is not None:
            cost = Decimal(provider_cost_micros) / MICROS_PER_USD
        else:
            assert price is not None
            cost = provider_cost_usd(price, usage)
        if byok:
            kind, charge = PASSTHROUGH, cost + policy.platform_fee_usd
        else:
            names = [model or "", *((price.model, *price.aliases) if price else ())]
            time_rule = match_time_rule(policy.time_rules, at)
            factor = time_rule.multiplier if time_rule else ONE
            kind = policy.kind
            charge = _base_charge(policy, cost, names) * factor + policy.platform_fee_usd
        cost_micros, charge_micros = _micros_up(cost), _micros_up(charge)
    credits = -(-charge_micros // credit_value_micros)
    return Charge(cost_micros, charge_micros, credits, kind)


def _base_charge(policy: Policy, cost: Decimal, names: list[str]) -> Decimal:
    if policy.kind == PASSTHROUGH:
        return cost
    if policy.kind == MULTIPLIER:
        return cost * policy.multiplier
    if policy.kind == FIXED_PER_CALL:
        return policy.fixed_per_call_usd
    if policy.kind == PER_MODEL:
        rule = match_model_rule(policy.model_rules, names)
        if rule is None:
            return cost * policy.default_markup
        return max(cost * rule.markup, rule.min_charge_usd)
    raise ValueError(f"unknown policy kind {policy.kind!r}")


def _micros_up(usd: Decimal) -> int:
    return int((usd * MICROS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def _check(
    usage: CallUsage, at: datetime, credit_value_micros: int, provider_cost_micros: int | None
) -> None:
    counts = (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.images)
    if any(count < 0 for count in counts):
        raise ValueError(f"usage counts must not be negative: {usage}")
    if provider_cost_micros is not None and provider_cost_micros < 0:
        raise ValueError("provider_cost_micros must not be negative")
    if credit_value_micros <= 0:
        raise ValueError("credit_value_micros must be above zero")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("`at` must be timezone-aware")
