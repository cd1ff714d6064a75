"""What callers ask the ledger to do, and the checks that need no database."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from tollgate.errors import ValidationFailed
from tollgate.ledger.models import GRANT_SOURCES

# Far below 2^63 so that sums of many amounts can never overflow a bigint.
MAX_AMOUNT = 10**15
MAX_KEY_LENGTH = 255
MAX_REASON_LENGTH = 2_000
PRIORITY_RANGE = (0, 10_000)


@dataclass(frozen=True)
class GrantRequest:
    amount: int
    source: str
    idempotency_key: str
    account_external_id: str | None = None
    organization_external_id: str | None = None
    reason: str = ""
    expires_at: datetime | None = None
    priority: int = 100


@dataclass(frozen=True)
class DeductRequest:
    account_external_id: str
    amount: int
    idempotency_key: str
    reason: str = ""


@dataclass(frozen=True)
class RefundRequest:
    account_external_id: str
    amount: int
    refund_of: uuid.UUID
    idempotency_key: str
    reason: str = ""


@dataclass(frozen=True)
class TransferRequest:
    from_account_external_id: str
    to_account_external_id: str
    amount: int
    idempotency_key: str
    reason: str = ""


LedgerRequest = GrantRequest | DeductRequest | RefundRequest | TransferRequest


def fingerprint_params(request: LedgerRequest) -> dict[str, Any]:
    """Everything but the key itself: what must match for a replay to be a replay."""
    params = asdict(request)
    params.pop("idempotency_key")
    return params


def check_common(request: LedgerRequest) -> ValidationFailed | None:
    if not isinstance(request.amount, int) or request.amount <= 0:
        return ValidationFailed("amount", "must be a whole number of credits above zero")
    if request.amount > MAX_AMOUNT:
        return ValidationFailed("amount", f"must be at most {MAX_AMOUNT}")
    key = request.idempotency_key
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        return ValidationFailed("idempotencyKey", f"1 to {MAX_KEY_LENGTH} characters")
    if len(request.reason) > MAX_REASON_LENGTH:
        return ValidationFailed("reason", f"at most {MAX_REASON_LENGTH} characters")
    return None


def check_grant(request: GrantRequest) -> ValidationFailed | None:
    """Checks that hold at any time. Whether `expires_at` is still ahead is asked only of a
    new request (`expiry_passed`): a replay after that moment must still get its first result."""
    if (invalid := check_common(request)) is not None:
        return invalid
    if (request.account_external_id is None) == (request.organization_external_id is None):
        return ValidationFailed(
            "accountExternalId", "give exactly one of accountExternalId, organizationExternalId"
        )
    if request.source not in GRANT_SOURCES:
        return ValidationFailed("source", f"one of {', '.join(GRANT_SOURCES)}")
    if request.expires_at is not None and request.expires_at.tzinfo is None:
        return ValidationFailed("expiresAt", "must carry a timezone")
    low, high = PRIORITY_RANGE
    if not low <= request.priority <= high:
        return ValidationFailed("priority", f"between {low} and {high}")
    return None


def expiry_passed(request: GrantRequest, now: datetime) -> ValidationFailed | None:
    if request.expires_at is not None and request.expires_at <= now:
        return ValidationFailed("expiresAt", "must be in the future")
    return None


def check_transfer(request: TransferRequest) -> ValidationFailed | None:
    if (invalid := check_common(request)) is not None:
        return invalid
    if request.from_account_external_id == request.to_account_external_id:
        return ValidationFailed("toAccountExternalId", "cannot transfer to the same account")
    return None
