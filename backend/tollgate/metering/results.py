"""What authorize and record answer. Failures a caller can act on are values, not exceptions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

R = TypeVar("R")

DENIAL_REASONS = (
    "INSUFFICIENT_CREDITS",
    "LIMIT_EXCEEDED",
    "MODEL_NOT_ALLOWED",
    "EMERGENCY_STOP",
    "ACCOUNT_SUSPENDED",
    "RATE_LIMITED",
)


@dataclass(frozen=True)
class UsageWarning:
    limit: str
    level: str
    used: int
    limit_value: int


@dataclass(frozen=True)
class Authorized:
    reservation_id: uuid.UUID
    credits_held: int
    expires_at: datetime
    warnings: tuple[UsageWarning, ...] = ()
    # What the account may still spend with this hold in place (for in-process callers such as
    # the gateway's x-tollgate-credits-remaining; not part of the API's answer).
    available_credits: int | None = None


@dataclass(frozen=True)
class Denied:
    reason: str
    message: str
    limit: str | None = None
    retry_after_seconds: int | None = None


@dataclass(frozen=True)
class Recorded:
    event_id: str
    cost_micros: int
    charge_micros: int
    credits: int
    # Part of `credits` the balance could not cover; flagged UNCOLLECTED.
    uncollected_credits: int
    flags: tuple[str, ...]
    transaction_id: uuid.UUID | None
    # What the account may still spend once its batch is booked; None for a replayed event.
    available_credits: int | None = None


@dataclass(frozen=True)
class Released:
    reservation_id: uuid.UUID
    credits_released: int


@dataclass
class BatchOutcome(Generic[R]):
    """One result per request, in order, and what to publish once the batch commits: alerts,
    booked usage events and balance changes (payloads of tollgate.live.channels)."""

    results: list[R]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    usage: list[dict[str, Any]] = field(default_factory=list)
    balances: list[dict[str, Any]] = field(default_factory=list)
