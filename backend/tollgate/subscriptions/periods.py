"""Billing periods: adding whole months or days to an instant. Pure.

A month later is the same day of the month at the same time of day, clamped to the last day of a
shorter month. Periods are counted from the subscription's anchor, never from the previous
period's end, so a Jan 31 anchor gives Feb 28, Mar 31, Apr 30 … rather than drifting to the 28th.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY, MONTH = "DAY", "MONTH"
MAX_INTERVAL = {DAY: 3660, MONTH: 120}


@dataclass(frozen=True)
class Interval:
    unit: str  # DAY | MONTH
    count: int

    def after(self, start: datetime, periods: int = 1) -> datetime:
        if self.unit == DAY:
            return start + timedelta(days=self.count * periods)
        return add_months(start, self.count * periods)


def add_months(at: datetime, months: int) -> datetime:
    index = at.year * 12 + (at.month - 1) + months
    year, month = divmod(index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def period_containing(
    anchor: datetime, interval: Interval, at: datetime
) -> tuple[datetime, datetime]:
    """The period, counted from `anchor`, that `at` falls in (at ≥ anchor)."""
    n = 0
    # Months differ in length: start from an estimate and step, never skipping a boundary.
    if interval.unit == MONTH:
        months = (at.year - anchor.year) * 12 + at.month - anchor.month
        n = max(0, months // interval.count - 1)
    else:
        n = max(0, (at - anchor).days // interval.count - 1)
    while interval.after(anchor, n + 1) <= at:
        n += 1
    return interval.after(anchor, n), interval.after(anchor, n + 1)
