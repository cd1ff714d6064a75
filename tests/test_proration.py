"""Proration of plan changes and billing periods: exact integers, as documented in
subscriptions/proration.py and periods.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tollgate.subscriptions.periods import DAY, MONTH, Interval, add_months, period_containing
from tollgate.subscriptions.proration import prorate, share

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)  # 30 days = 2,592,000 s
YEAR_END = datetime(2027, 11, 1, tzinfo=UTC)  # 365 days
DAY_1 = START
MID = START + timedelta(days=15)
LAST_DAY = END - timedelta(days=1)


# (case, at, old price, new price, old credits, new credits, new period?,
#  expected credit, charge, clawback, grant)
TABLE = [
    # Starter $19 -> Professional $49, monthly, USD cents.
    ("upgrade day 1", DAY_1, 1900, 4900, 1000, 5000, False, 1900, 4900, 1000, 5000),
    ("upgrade mid-period", MID, 1900, 4900, 1000, 5000, False, 950, 2450, 500, 2500),
    # 1/30 of the period left: 1900/30 = 63.33 -> 63; 4900/30 = 163.33 -> 163.
    ("upgrade last day", LAST_DAY, 1900, 4900, 1000, 5000, False, 63, 163, 33, 167),
    ("downgrade day 1", DAY_1, 4900, 1900, 5000, 1000, False, 4900, 1900, 5000, 1000),
    ("downgrade mid-period", MID, 4900, 1900, 5000, 1000, False, 2450, 950, 2500, 500),
    ("downgrade last day", LAST_DAY, 4900, 1900, 5000, 1000, False, 163, 63, 167, 33),
    # EUR 45.00 -> EUR 139.00 with 10 days of 30 left: 1500 and 4633.33 -> 4633.
    ("upgrade EUR", START + timedelta(days=20), 4500, 13900, 5000, 20000, False,
     1500, 4633, 1667, 6667),
    # JPY has no minor units: 2980 yen for 7 of 30 days = 695.33 -> 695.
    ("downgrade JPY", START + timedelta(days=23), 7980, 2980, 5000, 1000, False,
     1862, 695, 1167, 233),
    # Monthly -> annual mid-period: a new annual period starts now, charged in full.
    ("monthly to annual", MID, 4900, 49000, 5000, 60000, True, 2450, 49000, 2500, 60000),
]  # fmt: skip


@pytest.mark.parametrize("case", TABLE, ids=[row[0] for row in TABLE])
def test_proration_table(case: tuple) -> None:  # type: ignore[type-arg]
    _, at, old, new, old_credits, new_credits, new_period, credit, charge, back, grant = case
    p = prorate(
        period_start=START, period_end=END, at=at, old_amount=old, new_amount=new,
        old_credits=old_credits, new_credits=new_credits, new_period=new_period,
    )  # fmt: skip
    assert (p.credit_minor, p.charge_minor, p.clawback_credits, p.grant_credits) == (
        credit, charge, back, grant,
    )  # fmt: skip
    assert all(isinstance(v, int) for v in vars(p).values())


def test_annual_to_monthly_credits_the_unused_year() -> None:
    # 73 of 365 days used: 292/365 of $490.00 = $392.00 exactly.
    at = START + timedelta(days=73)
    p = prorate(
        period_start=START, period_end=YEAR_END, at=at, old_amount=49000, new_amount=4900,
        old_credits=60000, new_credits=5000, new_period=True,
    )  # fmt: skip
    assert (p.credit_minor, p.charge_minor, p.clawback_credits, p.grant_credits) == (
        39200, 4900, 48000, 5000,
    )  # fmt: skip


def test_half_rounds_up_and_a_change_after_the_end_prorates_nothing() -> None:
    assert share(1, 1, 2) == 1  # 0.5 -> 1
    assert share(3, 1, 2) == 2  # 1.5 -> 2
    assert share(1, 1, 3) == 0  # 0.33 -> 0
    late = prorate(
        period_start=START, period_end=END, at=END + timedelta(hours=1), old_amount=1900,
        new_amount=4900, old_credits=1000, new_credits=5000, new_period=False,
    )  # fmt: skip
    assert (late.credit_minor, late.charge_minor, late.remaining_seconds) == (0, 0, 0)


def test_months_clamp_to_shorter_months_without_drifting() -> None:
    anchor = datetime(2027, 1, 31, 12, tzinfo=UTC)
    monthly = Interval(MONTH, 1)
    ends = [monthly.after(anchor, n) for n in range(1, 4)]
    assert [e.date().isoformat() for e in ends] == ["2027-02-28", "2027-03-31", "2027-04-30"]
    assert add_months(datetime(2028, 1, 31, tzinfo=UTC), 1).day == 29  # leap year
    assert add_months(anchor, -2).date().isoformat() == "2026-11-30"


def test_the_period_containing_an_instant() -> None:
    anchor = datetime(2026, 1, 15, tzinfo=UTC)
    at = datetime(2026, 11, 21, tzinfo=UTC)
    assert period_containing(anchor, Interval(MONTH, 1), at) == (
        datetime(2026, 11, 15, tzinfo=UTC), datetime(2026, 12, 15, tzinfo=UTC),
    )  # fmt: skip
    assert period_containing(anchor, Interval(MONTH, 12), at) == (
        anchor, datetime(2027, 1, 15, tzinfo=UTC),
    )  # fmt: skip
    start, end = period_containing(anchor, Interval(DAY, 7), at)
    assert start <= at < end and end - start == timedelta(days=7)
    assert period_containing(anchor, Interval(MONTH, 1), anchor)[0] == anchor
