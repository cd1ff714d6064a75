"""The Redis channels of live updates and the JSON their messages carry.

Usage and balance messages are JSON arrays: one message per committed batch, however many
events it booked. Alert and pricing messages are one JSON object each.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tollgate.ledger.wallets import Balance
from tollgate.notifications.service import ALERTS_CHANNEL

USAGE_CHANNEL = "tollgate:usage"
BALANCE_CHANNEL = "tollgate:balance"
PRICING_PUBLISHED_CHANNEL = "tollgate:pricing_published"
__all__ = ["ALERTS_CHANNEL", "BALANCE_CHANNEL", "PRICING_PUBLISHED_CHANNEL", "USAGE_CHANNEL"]

# Why an account's balance changed: the ledger operation that changed it.
REASONS = ("GRANT", "DEDUCT", "REFUND", "TRANSFER", "EXPIRY", "BOOST", "USAGE", "PLAN")
MIGRATIONS = ("NONE", "NEXT_RENEWAL", "IMMEDIATELY")


def encode(payload: object) -> str:
    return json.dumps(payload, separators=(",", ":"), default=str)


def usage_event(row: dict[str, Any], account_external_id: str) -> dict[str, Any]:
    """A booked usage event, from the row metering inserted."""
    return {
        "eventId": row["event_id"],
        "accountExternalId": account_external_id,
        "model": row["model"],
        "provider": row["provider"],
        "feature": row["feature"],
        "inputTokens": row["input_tokens"],
        "outputTokens": row["output_tokens"],
        "cachedInputTokens": row["cached_input_tokens"],
        "providerCostMicros": row["cost_micros"],
        "chargeMicros": row["charge_micros"],
        "credits": row["credits"],
        "uncollectedCredits": row["uncollected_credits"],
        "flags": list(row["flags"]),
        "occurredAt": row["occurred_at"].isoformat(),
    }


def balance_change(
    account_external_id: str, balance: Balance, reason: str, at: datetime
) -> dict[str, Any]:
    assert reason in REASONS, reason
    return {
        "accountExternalId": account_external_id,
        "total": balance.total,
        "reserved": balance.reserved,
        "pool": balance.pool,
        "reason": reason,
        "at": at.isoformat(),
    }


def check_pricing_published(payload: dict[str, Any]) -> None:
    """The plans domain's message shape; a wrong one is a bug of the publisher."""
    if not (
        isinstance(payload.get("planCode"), str)
        and isinstance(payload.get("versionId"), str)
        and isinstance(payload.get("version"), int)
        and isinstance(payload.get("publishedAt"), str)
        and payload.get("migrate") in MIGRATIONS
    ):
        raise ValueError(f"not a pricing-published message: {payload!r}")
    datetime.fromisoformat(payload["publishedAt"])
