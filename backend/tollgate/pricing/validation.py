"""Checks on pricing input that need no database: names, USD amounts, factors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from tollgate.errors import ValidationFailed

MAX_NAME = 200
# What the columns hold (NUMERIC(20, 10) for USD, NUMERIC(12, 6) for factors).
USD_PLACES, MAX_USD = 10, Decimal(1_000_000)
FACTOR_PLACES, MAX_FACTOR = 6, Decimal(1_000)
T = TypeVar("T")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def check_name(field: str, value: str) -> ValidationFailed | None:
    if not value.strip():
        return ValidationFailed(field, "must not be empty")
    if len(value.strip()) > MAX_NAME:
        return ValidationFailed(field, f"at most {MAX_NAME} characters")
    if any(not c.isprintable() for c in value):
        return ValidationFailed(field, "must not contain control characters")
    return None


def _check_decimal(
    field: str, value: Decimal, *, places: int, maximum: Decimal, what: str
) -> ValidationFailed | None:
    if not value.is_finite():
        return ValidationFailed(field, f"must be a finite {what}")
    if value < 0:
        return ValidationFailed(field, "must not be negative")
    if value > maximum:
        return ValidationFailed(field, f"must be at most {maximum}")
    if value != value.quantize(Decimal(1).scaleb(-places)):
        return ValidationFailed(field, f"at most {places} decimal places")
    return None


def check_usd(field: str, value: Decimal) -> ValidationFailed | None:
    return _check_decimal(field, value, places=USD_PLACES, maximum=MAX_USD, what="USD amount")


def check_factor(field: str, value: Decimal) -> ValidationFailed | None:
    return _check_decimal(field, value, places=FACTOR_PLACES, maximum=MAX_FACTOR, what="factor")


def check_aware(field: str, value: datetime) -> ValidationFailed | None:
    if value.tzinfo is None or value.utcoffset() is None:
        return ValidationFailed(field, "needs a UTC offset, e.g. 2025-01-01T00:00:00Z")
    # Far from datetime's own limits, so converting to any time zone cannot overflow.
    if not EARLIEST <= value <= LATEST:
        return ValidationFailed(field, f"must be between {EARLIEST:%Y} and {LATEST:%Y}")
    return None


def storable(text: str) -> bool:
    """PostgreSQL text cannot hold NUL: a value with one can match no stored name."""
    return "\x00" not in text


def check_optional(
    check: Callable[[str, T], ValidationFailed | None], field: str, value: T | None
) -> ValidationFailed | None:
    return None if value is None else check(field, value)


def first_failure(*checks: ValidationFailed | None) -> ValidationFailed | None:
    return next((check for check in checks if check is not None), None)


def plain(value: Decimal) -> Decimal:
    """Without trailing zeros or an exponent: 2.5000000000 → 2.5, 1E+1 → 10."""
    return Decimal(format(value.normalize(), "f")) if value else Decimal(0)
