"""Which status may follow which. Pure: the one table every change goes through.

    TRIALING ──trial ends──▶ ACTIVE ──payment fails──▶ PAST_DUE ──paid──▶ ACTIVE
        │                      │                          │
        └──────cancel──────────┴────────cancel────────────┴──▶ CANCELED
    ACTIVE / TRIALING ──scheduled cancel reaches period end──▶ CANCELED
    PAST_DUE ──grace period over──▶ EXPIRED

CANCELED and EXPIRED are final: a returning customer subscribes anew.
"""

from __future__ import annotations

TRIALING, ACTIVE, PAST_DUE, CANCELED, EXPIRED = (
    "TRIALING",
    "ACTIVE",
    "PAST_DUE",
    "CANCELED",
    "EXPIRED",
)
LIVE = (TRIALING, ACTIVE, PAST_DUE)

TRANSITIONS: dict[str, frozenset[str]] = {
    TRIALING: frozenset({ACTIVE, CANCELED, PAST_DUE}),
    ACTIVE: frozenset({PAST_DUE, CANCELED}),
    PAST_DUE: frozenset({ACTIVE, CANCELED, EXPIRED}),
    CANCELED: frozenset(),
    EXPIRED: frozenset(),
}


def can_move(current: str, to: str) -> bool:
    return to in TRANSITIONS[current]
