"""Proration of a plan change within a period. Pure, exact integers.

For a change at instant t within the period [start, end), with the period's length L = end -
start and the time left R = end - t, both in whole seconds:

    credit   = round(old_amount * R / L)          unused time of the old plan, given back
    charge   = round(new_amount * R / L)          the new plan for the rest of the period
    clawback = round(old_credits * R / L)         the old allocation's unused share, taken back
                                                  (never more than is left of it)
    grant    = round(new_credits * R / L)         the new plan's allocation for the rest

`round` is half up, to whole minor units of the amount's own currency and whole credits. When
the change also changes the billing interval (monthly ↔ annual), a new period starts at t: the
new plan is charged in full for it (charge = new_amount, grant = new_credits) and the old plan's
unused time is still credited. Amounts in different currencies are never netted: each becomes
its own invoice line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


def share(amount: int, numerator: int, denominator: int) -> int:
    """amount * numerator / denominator, rounded half up, for non-negative integers."""
    if denominator <= 0:
        raise ValueError("empty period")
    return (2 * amount * numerator + denominator) // (2 * denominator)


def _seconds(a: datetime, b: datetime) -> int:
    delta = b - a
    return delta.days * 86_400 + delta.seconds


@dataclass(frozen=True)
class Proration:
    credit_minor: int  # old currency
    charge_minor: int  # new currency
    clawback_credits: int
    grant_credits: int
    remaining_seconds: int
    period_seconds: int


def prorate(
    *,
    period_start: datetime,
    period_end: datetime,
    at: datetime,
    old_amount: int,
    new_amount: int,
    old_credits: int,
    new_credits: int,
    new_period: bool,
) -> Proration:
    length = _seconds(period_start, period_end)
    left = min(max(_seconds(at, period_end), 0), length)
    return Proration(
        credit_minor=share(old_amount, left, length),
        charge_minor=new_amount if new_period else share(new_amount, left, length),
        clawback_credits=share(old_credits, left, length),
        grant_credits=new_credits if new_period else share(new_credits, left, length),
        remaining_seconds=left,
        period_seconds=length,
    )
