"""What the SaaS backend sends before and after an LLM call; checks that need no database."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from tollgate.errors import ValidationFailed

MAX_TOKENS = 10**9
MAX_TEXT = 200
MAX_METADATA_BYTES = 8_192
MAX_BATCH = 1_000
# Clocks differ between services; an event from further ahead than this is a bug, not skew.
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class AuthorizeRequest:
    account_external_id: str
    model: str
    estimated_input_tokens: int
    max_output_tokens: int
    feature: str | None = None
    byok: bool = False
    provider: str | None = None


@dataclass(frozen=True)
class UsageEventInput:
    event_id: str
    account_external_id: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    images: int = 0
    provider_cost_micros: int | None = None
    reservation_id: uuid.UUID | None = None
    occurred_at: datetime | None = None
    feature: str | None = None
    byok: bool = False
    provider: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # The gateway's virtual key that made the call: its spend counter is kept with the booking.
    api_key_id: int | None = None

    @cached_property
    def fingerprint(self) -> str:
        # Same JSON as dataclasses.asdict would give (stored hashes must keep matching), without
        # its deep copy: this runs for every event booked. Kept once computed: the service
        # computes it before the event queues for a transaction, off the wallets' critical path.
        params = {name: getattr(self, name) for name in _EVENT_FIELD_NAMES}
        canonical = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cached_input_tokens


_EVENT_FIELD_NAMES = tuple(f.name for f in fields(UsageEventInput))


def hash_ahead(events: list[UsageEventInput]) -> None:
    """Compute the events' fingerprints now, in the caller's task: a batch's transaction then
    finds them ready instead of hashing while it holds its accounts' wallets."""
    for event in events:
        _ = event.fingerprint


def _text(field_name: str, value: str | None, *, required: bool) -> ValidationFailed | None:
    if value is None or not value.strip():
        return ValidationFailed(field_name, "must not be empty") if required else None
    if len(value) > MAX_TEXT:
        return ValidationFailed(field_name, f"at most {MAX_TEXT} characters")
    if "\x00" in value:
        return ValidationFailed(field_name, "must not contain NUL characters")
    return None


def _count(field_name: str, value: int) -> ValidationFailed | None:
    if not 0 <= value <= MAX_TOKENS:
        return ValidationFailed(field_name, f"a whole number from 0 to {MAX_TOKENS}")
    return None


def check_authorize(request: AuthorizeRequest) -> ValidationFailed | None:
    checks = (
        _text("accountExternalId", request.account_external_id, required=True),
        _text("model", request.model, required=True),
        _text("feature", request.feature, required=False),
        _text("provider", request.provider, required=False),
        _count("estimatedInputTokens", request.estimated_input_tokens),
        _count("maxOutputTokens", request.max_output_tokens),
    )
    return next((c for c in checks if c is not None), None)


def check_event(event: UsageEventInput, now: datetime) -> ValidationFailed | None:
    checks = (
        _text("eventId", event.event_id, required=True),
        _text("accountExternalId", event.account_external_id, required=True),
        _text("model", event.model, required=True),
        _text("feature", event.feature, required=False),
        _text("provider", event.provider, required=False),
        _count("inputTokens", event.input_tokens),
        _count("outputTokens", event.output_tokens),
        _count("cachedInputTokens", event.cached_input_tokens),
        _count("images", event.images),
    )
    if (failed := next((c for c in checks if c is not None), None)) is not None:
        return failed
    if event.provider_cost_micros is not None and not 0 <= event.provider_cost_micros <= 10**15:
        return ValidationFailed("providerCostMicros", "a whole number of micro-USD, 0 or more")
    if event.occurred_at is not None:
        if event.occurred_at.tzinfo is None:
            return ValidationFailed("occurredAt", "must carry a timezone")
        if event.occurred_at > now + FUTURE_TOLERANCE:
            return ValidationFailed("occurredAt", "is in the future")
    encoded = json.dumps(event.metadata, default=str)
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        return ValidationFailed("metadata", f"at most {MAX_METADATA_BYTES} bytes as JSON")
    if "\\u0000" in encoded:
        return ValidationFailed("metadata", "must not contain NUL characters")
    return None
