"""A price preview for one call, from the database (the admin UI's calculator)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.errors import AccountNotFound, UnknownModel, ValidationFailed
from tollgate.pricing import catalog, policies
from tollgate.pricing.charge import CallUsage, Charge, ModelPriceVersion, price_call
from tollgate.pricing.validation import check_aware, check_name, first_failure

MAX_COUNT = 10**12


@dataclass(frozen=True)
class QuoteRequest:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    images: int = 0
    byok: bool = False
    account_external_id: str | None = None
    provider: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class Quote:
    charge: Charge
    price: ModelPriceVersion
    policy_scope: str


def _check(request: QuoteRequest) -> ValidationFailed | None:
    counts = {
        "inputTokens": request.input_tokens,
        "outputTokens": request.output_tokens,
        "cachedInputTokens": request.cached_input_tokens,
        "images": request.images,
    }
    for field, count in counts.items():
        if not 0 <= count <= MAX_COUNT:
            return ValidationFailed(field, f"must be between 0 and {MAX_COUNT}")
    return first_failure(
        check_name("model", request.model),
        None if request.at is None else check_aware("at", request.at),
    )


async def quote_call(
    session: AsyncSession, request: QuoteRequest, *, credit_value_micros: int
) -> Quote | UnknownModel | AccountNotFound | ValidationFailed:
    if (invalid := _check(request)) is not None:
        return invalid
    effective = await policies.effective_policy(session, request.account_external_id)
    if isinstance(effective, AccountNotFound):
        return effective
    at = request.at or datetime.now(UTC)
    price = await catalog.find_price(session, request.model, at, request.provider)
    if price is None:
        return UnknownModel(request.model, request.provider)
    usage = CallUsage(
        input_tokens=request.input_tokens,
        output_tokens=request.output_tokens,
        cached_input_tokens=request.cached_input_tokens,
        images=request.images,
    )
    charge = price_call(
        price,
        usage,
        effective.policy,
        at=at,
        byok=request.byok,
        credit_value_micros=credit_value_micros,
        model=request.model,
    )
    return Quote(charge=charge, price=price, policy_scope=effective.scope)
