"""Limit rules without a database: windows at their edges, model patterns, thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tollgate.limits import rules
from tollgate.limits.rules import Crossing, Denial, Limits, WindowUsage, evaluate, windows_for

US = timedelta(microseconds=1)


@pytest.fixture(autouse=True)
def clean() -> None:
    """Pure rules: no tables to empty, so no database to start."""


def _at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("at", "timezone", "day", "month", "day_start", "month_start"),
    [
        # UTC, the last second of a day and the first of the next.
        (_at(2026, 11, 21, 23, 59, 59), None, "day:2026-11-21", "month:2026-11",
         _at(2026, 11, 21), _at(2026, 11, 1)),
        (_at(2026, 11, 22, 0, 0, 0), None, "day:2026-11-22", "month:2026-11",
         _at(2026, 11, 22), _at(2026, 11, 1)),
        # New York is UTC-5 in November: its day ends at 05:00 UTC.
        (_at(2026, 11, 22, 4, 59, 59), "America/New_York", "day:2026-11-21", "month:2026-11",
         _at(2026, 11, 21, 5), _at(2026, 11, 1, 4)),
        (_at(2026, 11, 22, 5, 0, 0), "America/New_York", "day:2026-11-22", "month:2026-11",
         _at(2026, 11, 22, 5), _at(2026, 11, 1, 4)),
        # Kolkata is UTC+5:30: December starts there at 18:30 UTC on November 30.
        (_at(2026, 11, 30, 18, 29, 59), "Asia/Kolkata", "day:2026-11-30", "month:2026-11",
         _at(2026, 11, 29, 18, 30), _at(2026, 10, 31, 18, 30)),
        (_at(2026, 11, 30, 18, 30, 0), "Asia/Kolkata", "day:2026-12-01", "month:2026-12",
         _at(2026, 11, 30, 18, 30), _at(2026, 11, 30, 18, 30)),
        # Leap day, and the month after it.
        (_at(2028, 2, 28, 23, 59, 59), None, "day:2028-02-28", "month:2028-02",
         _at(2028, 2, 28), _at(2028, 2, 1)),
        (_at(2028, 2, 29, 23, 59, 59), None, "day:2028-02-29", "month:2028-02",
         _at(2028, 2, 29), _at(2028, 2, 1)),
        (_at(2028, 3, 1, 0, 0, 0), None, "day:2028-03-01", "month:2028-03",
         _at(2028, 3, 1), _at(2028, 3, 1)),
        # December into January, in UTC and where the new year comes first (UTC+13).
        (_at(2026, 12, 31, 23, 59, 59), None, "day:2026-12-31", "month:2026-12",
         _at(2026, 12, 31), _at(2026, 12, 1)),
        (_at(2027, 1, 1, 0, 0, 0), None, "day:2027-01-01", "month:2027-01",
         _at(2027, 1, 1), _at(2027, 1, 1)),
        (_at(2026, 12, 31, 10, 59, 59), "Pacific/Auckland", "day:2026-12-31", "month:2026-12",
         _at(2026, 12, 30, 11), _at(2026, 11, 30, 11)),
        (_at(2026, 12, 31, 11, 0, 0), "Pacific/Auckland", "day:2027-01-01", "month:2027-01",
         _at(2026, 12, 31, 11), _at(2026, 12, 31, 11)),
    ],
)  # fmt: skip
def test_windows_at_their_edges(
    at: datetime,
    timezone: str | None,
    day: str,
    month: str,
    day_start: datetime,
    month_start: datetime,
) -> None:
    assert windows_for(at, timezone) == (day, month, day_start, month_start)


@pytest.mark.parametrize(
    ("timezone", "at"),
    [
        ("America/Santiago", _at(2026, 9, 6, 12)),  # midnight skipped by DST
        ("America/Santiago", _at(2027, 4, 4, 12)),  # the hour before midnight repeated
        ("Asia/Beirut", _at(2026, 3, 29, 12)),
        ("Europe/Warsaw", _at(2026, 10, 25, 12)),
        ("Australia/Lord_Howe", _at(2026, 4, 5, 12)),  # half-hour DST
    ],
)
def test_a_window_starts_at_the_first_instant_of_its_local_date(
    timezone: str, at: datetime
) -> None:
    day, month, day_start, month_start = windows_for(at, timezone)
    assert day_start <= at and month_start <= day_start
    assert windows_for(day_start, timezone)[0] == day
    assert windows_for(day_start - US, timezone)[0] != day
    assert windows_for(month_start, timezone)[1] == month
    assert windows_for(month_start - US, timezone)[1] != month


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        windows_for(datetime(2026, 1, 1), None)


def test_model_patterns() -> None:
    limits = Limits(allowed_models=("gpt-4o*", "claude-*", "o1"))
    for model in ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "o1"):
        assert rules.model_allowed(limits, model), model
    for model in ("gpt-4", "o1-mini", "GPT-4o", "my-claude-3", ""):
        assert not rules.model_allowed(limits, model), model
    assert rules.model_allowed(Limits(), "anything")
    assert not rules.model_allowed(Limits(allowed_models=()), "gpt-4o")


WINDOWS = ("day:2026-11-21", "month:2026-11")


def _evaluate(
    limits: Limits,
    *,
    day: WindowUsage = WindowUsage(),
    month: WindowUsage = WindowUsage(),
    tokens: int = 0,
    cost: int = 0,
    model: str = "gpt-4o",
    exempt: bool = False,
) -> tuple[Denial | None, list[Crossing]]:
    return evaluate(
        limits,
        day=day,
        month=month,
        request_tokens=tokens,
        request_cost_micros=cost,
        model=model,
        windows=WINDOWS,
        exempt=exempt,
    )


def test_model_not_allowed_is_denied() -> None:
    denial, crossings = _evaluate(Limits(allowed_models=("claude-*",)), model="gpt-4o")
    assert denial is not None and denial.reason == "MODEL_NOT_ALLOWED" and denial.limit is None
    assert crossings == []
    # An exemption from limits does not widen the models allowed.
    denial, _ = _evaluate(Limits(allowed_models=("claude-*",)), model="gpt-4o", exempt=True)
    assert denial is not None and denial.reason == "MODEL_NOT_ALLOWED"


def test_max_tokens_per_request() -> None:
    limits = Limits(max_tokens_per_request=1_000)
    assert _evaluate(limits, tokens=1_000) == (None, [])
    denial, _ = _evaluate(limits, tokens=1_001)
    assert denial is not None
    assert (denial.reason, denial.limit) == ("LIMIT_EXCEEDED", "MAX_TOKENS_PER_REQUEST")
    assert "1001" in denial.message
    assert _evaluate(limits, tokens=1_001, exempt=True)[0] is None


def test_default_block_at_95_percent_and_warning_at_80() -> None:
    limits = Limits(tokens_per_day=1_000)
    assert _evaluate(limits, day=WindowUsage(tokens=700), tokens=99) == (None, [])
    denial, crossings = _evaluate(limits, day=WindowUsage(tokens=700), tokens=100)
    assert denial is None
    assert crossings == [Crossing("TOKENS_PER_DAY", "WARNING", 800, 1_000, WINDOWS[0])]
    # Reaching 95 % exactly is allowed; passing it is not.
    denial, crossings = _evaluate(limits, day=WindowUsage(tokens=900), tokens=50)
    assert denial is None and [c.level for c in crossings] == ["WARNING"]
    denial, crossings = _evaluate(limits, day=WindowUsage(tokens=900), tokens=51)
    assert denial is not None
    assert (denial.reason, denial.limit) == ("LIMIT_EXCEEDED", "TOKENS_PER_DAY")
    # Refused: the warning counts only what was recorded (900, past 80 %); the block, the request.
    assert crossings == [
        Crossing("TOKENS_PER_DAY", "WARNING", 900, 1_000, WINDOWS[0]),
        Crossing("TOKENS_PER_DAY", "BLOCK", 951, 1_000, WINDOWS[0]),
    ]


def test_custom_thresholds() -> None:
    limits = Limits(tokens_per_month=1_000, thresholds={"TOKENS_PER_MONTH": (50, 100)})
    _, crossings = _evaluate(limits, month=WindowUsage(tokens=499), tokens=1)
    assert crossings == [Crossing("TOKENS_PER_MONTH", "WARNING", 500, 1_000, WINDOWS[1])]
    assert _evaluate(limits, month=WindowUsage(tokens=999), tokens=1)[0] is None
    denial, _ = _evaluate(limits, month=WindowUsage(tokens=999), tokens=2)
    assert denial is not None and denial.limit == "TOKENS_PER_MONTH"
    # Other limits keep the defaults.
    assert limits.threshold("CALLS_PER_DAY") == (80, 95)


def test_calls_and_cost_caps() -> None:
    calls = Limits(calls_per_month=100)
    assert _evaluate(calls, month=WindowUsage(calls=94))[0] is None  # the 95th call
    denial, _ = _evaluate(calls, month=WindowUsage(calls=95))
    assert denial is not None and denial.limit == "CALLS_PER_MONTH"

    cost = Limits(cost_per_day_micros=2_000_000)  # $2
    assert _evaluate(cost, day=WindowUsage(cost_micros=1_000_000), cost=900_000)[0] is None
    denial, _ = _evaluate(cost, day=WindowUsage(cost_micros=1_000_000), cost=900_001)
    assert denial is not None and denial.limit == "COST_CAP_PER_DAY"


def test_a_zero_limit_allows_nothing() -> None:
    denial, _ = _evaluate(Limits(calls_per_day=0))
    assert denial is not None and denial.limit == "CALLS_PER_DAY"


def test_first_limit_passed_is_the_reason() -> None:
    limits = Limits(tokens_per_day=100, calls_per_month=1)
    denial, crossings = _evaluate(limits, day=WindowUsage(tokens=100), month=WindowUsage(calls=1))
    assert denial is not None and denial.limit == "TOKENS_PER_DAY"
    blocks = {c.limit for c in crossings if c.level == "BLOCK"}
    assert blocks == {"TOKENS_PER_DAY", "CALLS_PER_MONTH"}


def test_exempt_accounts_are_not_blocked_but_still_reported() -> None:
    limits = Limits(tokens_per_day=100)
    denial, crossings = _evaluate(limits, day=WindowUsage(tokens=100), tokens=10, exempt=True)
    assert denial is None
    assert [(c.level, c.used) for c in crossings] == [("WARNING", 110), ("BLOCK", 110)]


def test_reached_reports_recorded_usage_without_a_request() -> None:
    limits = Limits(tokens_per_day=1_000, calls_per_month=100, allowed_models=("claude-*",))
    assert (
        rules.reached(
            limits, day=WindowUsage(tokens=799), month=WindowUsage(calls=79), windows=WINDOWS
        )
        == []
    )
    assert rules.reached(
        limits, day=WindowUsage(tokens=950), month=WindowUsage(calls=80), windows=WINDOWS
    ) == [
        Crossing("TOKENS_PER_DAY", "WARNING", 950, 1_000, WINDOWS[0]),
        Crossing("TOKENS_PER_DAY", "BLOCK", 950, 1_000, WINDOWS[0]),
        Crossing("CALLS_PER_MONTH", "WARNING", 80, 100, WINDOWS[1]),
    ]


def test_low_balance() -> None:
    limits = Limits(low_balance_credits=100)
    assert rules.low_balance(limits, 101, WINDOWS[0]) is None
    assert rules.low_balance(limits, 100, WINDOWS[0]) == Crossing(
        "LOW_BALANCE", "LOW_BALANCE", 100, 100, WINDOWS[0]
    )
    assert rules.low_balance(Limits(), 0, WINDOWS[0]) is None


def test_status_levels() -> None:
    limits = Limits(tokens_per_day=1_000, calls_per_month=10)
    report = rules.status(
        limits, day=WindowUsage(tokens=950), month=WindowUsage(calls=3), windows=WINDOWS
    )
    assert [(s.limit, s.level, s.percent_used) for s in report] == [
        ("TOKENS_PER_DAY", "BLOCK", 95),
        ("CALLS_PER_MONTH", "OK", 30),
    ]


def test_overlay_keeps_the_accounts_own_settings() -> None:
    plan = Limits(tokens_per_day=1_000, calls_per_day=10, thresholds={"CALLS_PER_DAY": (50, 90)})
    own = Limits(tokens_per_day=5_000, timezone="Europe/Warsaw")
    merged = rules.overlay(plan, own)
    assert (merged.tokens_per_day, merged.calls_per_day) == (5_000, 10)
    assert merged.timezone == "Europe/Warsaw"
    assert merged.threshold("CALLS_PER_DAY") == (50, 90)


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (Limits(tokens_per_day=-1), "tokensPerDay"),
        (Limits(cost_per_month_micros=10**16), "costCapPerMonthMicros"),
        (Limits(max_tokens_per_request=0), "maxTokensPerRequest"),
        (Limits(requests_per_minute=0), "requestsPerMinute"),
        (Limits(requests_per_minute=1_000_000), "requestsPerMinute"),
        (Limits(allowed_models=("gpt-4o", " ")), "allowedModels"),
        (Limits(allowed_models=(" gpt-4o",)), "allowedModels"),
        (Limits(allowed_models=("gpt\x00",)), "allowedModels"),
        (Limits(allowed_models=("m",) * 201), "allowedModels"),
        (Limits(timezone="Mars/Olympus"), "timezone"),
        (Limits(timezone="localtime"), "timezone"),
        (Limits(thresholds={"TOKENS_PER_DAY": (90, 80)}), "thresholds"),
        (Limits(thresholds={"TOKENS_PER_DAY": (0, 80)}), "thresholds"),
        (Limits(thresholds={"TOKENS_PER_DAY": (80, 101)}), "thresholds"),
        (Limits(thresholds={"MAX_TOKENS_PER_REQUEST": (80, 95)}), "thresholds"),
    ],
)
def test_invalid_limits(limits: Limits, field: str) -> None:
    invalid = rules.check(limits)
    assert invalid is not None and invalid.field == field


def test_valid_limits() -> None:
    limits = Limits(
        tokens_per_day=0,
        max_tokens_per_request=1,
        requests_per_minute=60,
        allowed_models=(),
        timezone="America/New_York",
        thresholds={"COST_CAP_PER_MONTH": (100, 100)},
    )
    assert rules.check(limits) is None
