"""The rules of usage limits, with no I/O: which windows a moment falls in, whether a model is
allowed, and whether a request stays under an account's limits.

Usage limits are counted per calendar window (day and month) in the account's timezone, UTC by
default. Each window limit has a warning and a block threshold in whole percent: a request is
refused when the usage it would bring passes the block threshold, and a crossing is reported for
every threshold the usage has reached, so the caller can notify (once per window).
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, tzinfo
from fnmatch import fnmatchcase
from typing import Any

from tollgate.errors import ValidationFailed

DEFAULT_WARN_PERCENT = 80
DEFAULT_BLOCK_PERCENT = 95

TOKENS_PER_DAY = "TOKENS_PER_DAY"
TOKENS_PER_MONTH = "TOKENS_PER_MONTH"
CALLS_PER_DAY = "CALLS_PER_DAY"
CALLS_PER_MONTH = "CALLS_PER_MONTH"
COST_CAP_PER_DAY = "COST_CAP_PER_DAY"
COST_CAP_PER_MONTH = "COST_CAP_PER_MONTH"
MAX_TOKENS_PER_REQUEST = "MAX_TOKENS_PER_REQUEST"
REQUESTS_PER_MINUTE = "REQUESTS_PER_MINUTE"
LOW_BALANCE = "LOW_BALANCE"

LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
MODEL_NOT_ALLOWED = "MODEL_NOT_ALLOWED"
WARNING = "WARNING"
BLOCK = "BLOCK"

# Far below 2^63, like ledger amounts, so counters plus a request can never overflow a bigint.
MAX_LIMIT = 10**15
# Each request in the last minute is one member of a Redis sorted set; keep that set small.
MAX_REQUESTS_PER_MINUTE = 100_000
MAX_MODELS = 200
MAX_MODEL_PATTERN = 200


@dataclass(frozen=True)
class WindowLimit:
    """A limit counted over a calendar window: which window, which counter, which setting."""

    name: str
    period: str  # "day" | "month"
    measure: str  # the WindowUsage counter it limits
    setting: str  # the Limits field holding its value

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


WINDOW_LIMITS = (
    WindowLimit(TOKENS_PER_DAY, "day", "tokens", "tokens_per_day"),
    WindowLimit(TOKENS_PER_MONTH, "month", "tokens", "tokens_per_month"),
    WindowLimit(CALLS_PER_DAY, "day", "calls", "calls_per_day"),
    WindowLimit(CALLS_PER_MONTH, "month", "calls", "calls_per_month"),
    WindowLimit(COST_CAP_PER_DAY, "day", "cost_micros", "cost_per_day_micros"),
    WindowLimit(COST_CAP_PER_MONTH, "month", "cost_micros", "cost_per_month_micros"),
)
WINDOW_LIMIT_NAMES = tuple(w.name for w in WINDOW_LIMITS)


@dataclass(frozen=True)
class Limits:
    """An account's limits; None means no limit. `allowed_models` holds exact names and glob
    patterns (`gpt-4o*`); None allows every model, an empty tuple none. `thresholds` overrides
    the default (warn %, block %) of a window limit, by its name."""

    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    calls_per_day: int | None = None
    calls_per_month: int | None = None
    cost_per_day_micros: int | None = None
    cost_per_month_micros: int | None = None
    max_tokens_per_request: int | None = None
    requests_per_minute: int | None = None
    allowed_models: tuple[str, ...] | None = None
    timezone: str | None = None
    low_balance_credits: int | None = None
    thresholds: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def threshold(self, limit: str) -> tuple[int, int]:
        return self.thresholds.get(limit, (DEFAULT_WARN_PERCENT, DEFAULT_BLOCK_PERCENT))


@dataclass(frozen=True)
class WindowUsage:
    tokens: int = 0
    calls: int = 0
    cost_micros: int = 0


@dataclass(frozen=True)
class Crossing:
    """A threshold the usage has reached. `used` counts the request being decided; `window` is
    the window key ("day:2026-11-21", "month:2026-11") the notification is deduplicated on."""

    limit: str
    level: str  # WARNING | BLOCK | LOW_BALANCE
    used: int
    limit_value: int
    window: str


@dataclass(frozen=True)
class Denial:
    reason: str  # LIMIT_EXCEEDED | MODEL_NOT_ALLOWED
    limit: str | None
    message: str


@dataclass(frozen=True)
class LimitStatus:
    """Where one window limit stands, for reporting."""

    limit: str
    window: str
    used: int
    limit_value: int
    warn_percent: int
    block_percent: int

    @property
    def percent_used(self) -> int:
        if self.limit_value == 0:
            return 100 if self.used > 0 else 0
        return self.used * 100 // self.limit_value

    @property
    def level(self) -> str:
        if _at_least(self.used, self.limit_value, self.block_percent):
            return BLOCK
        if _at_least(self.used, self.limit_value, self.warn_percent):
            return WARNING
        return "OK"


def _at_least(used: int, limit_value: int, percent: int) -> bool:
    # Integer arithmetic: "used >= limit * percent / 100" without rounding.
    return used * 100 >= limit_value * percent


def _passes(used: int, limit_value: int, percent: int) -> bool:
    return used * 100 > limit_value * percent


def model_allowed(limits: Limits, model: str) -> bool:
    if limits.allowed_models is None:
        return True
    return any(model == p or fnmatchcase(model, p) for p in limits.allowed_models)


def evaluate(
    limits: Limits,
    *,
    day: WindowUsage,
    month: WindowUsage,
    request_tokens: int,
    request_cost_micros: int,
    model: str,
    windows: tuple[str, str],
    exempt: bool = False,
) -> tuple[Denial | None, list[Crossing]]:
    """Decide one request (it counts as one call) against the recorded usage of its windows.

    Denied when the model is not allowed, the request asks for more tokens than one request
    may, or the usage it would bring passes a limit's block threshold. An account exempt from
    limits is never denied LIMIT_EXCEEDED (the model allow-list still applies), but still gets
    its crossings reported. Warnings count the request when it is allowed, and only the usage
    already recorded when it is not.
    """
    if not model_allowed(limits, model):
        refused = f"model {model!r} is not allowed for this account"
        return Denial(MODEL_NOT_ALLOWED, None, refused), []
    cap = limits.max_tokens_per_request
    if cap is not None and request_tokens > cap and not exempt:
        message = f"the request asks for {request_tokens} tokens; at most {cap} per request"
        return Denial(LIMIT_EXCEEDED, MAX_TOKENS_PER_REQUEST, message), []

    adds = {"tokens": request_tokens, "calls": 1, "cost_micros": request_cost_micros}
    denial: Denial | None = None
    blocks: list[Crossing] = []
    measured: list[tuple[WindowLimit, int, int, int, str]] = []
    for limit in WINDOW_LIMITS:
        value: int | None = getattr(limits, limit.setting)
        if value is None:
            continue
        usage, window = (day, windows[0]) if limit.period == "day" else (month, windows[1])
        before: int = getattr(usage, limit.measure)
        after = before + adds[limit.measure]
        measured.append((limit, before, after, value, window))
        _, block = limits.threshold(limit.name)
        if _passes(after, value, block):
            blocks.append(Crossing(limit.name, BLOCK, after, value, window))
            if denial is None and not exempt:
                denial = Denial(
                    LIMIT_EXCEEDED,
                    limit.name,
                    f"{limit.label} limit reached: {after} of {value} with this request"
                    f" (blocked above {block}%)",
                )

    crossings: list[Crossing] = []
    for limit, before, after, value, window in measured:
        used = before if denial is not None else after
        warn, _ = limits.threshold(limit.name)
        if _at_least(used, value, warn):
            crossings.append(Crossing(limit.name, WARNING, used, value, window))
    crossings.extend(blocks)
    return denial, crossings


def reached(
    limits: Limits, *, day: WindowUsage, month: WindowUsage, windows: tuple[str, str]
) -> list[Crossing]:
    """Thresholds the recorded usage itself has reached, with no request being decided (after
    usage is booked): WARNING from the warning threshold, BLOCK from the block threshold. Unlike
    `evaluate`, no model is checked and nothing is added for a call."""
    crossings: list[Crossing] = []
    for s in status(limits, day=day, month=month, windows=windows):
        for level, percent in ((WARNING, s.warn_percent), (BLOCK, s.block_percent)):
            if _at_least(s.used, s.limit_value, percent):
                crossings.append(Crossing(s.limit, level, s.used, s.limit_value, s.window))
    return crossings


def low_balance(limits: Limits, available: int, window: str) -> Crossing | None:
    """A crossing when the spendable credits are at or below the account's alert level."""
    alert = limits.low_balance_credits
    if alert is None or available > alert:
        return None
    return Crossing(LOW_BALANCE, LOW_BALANCE, available, alert, window)


def status(
    limits: Limits, *, day: WindowUsage, month: WindowUsage, windows: tuple[str, str]
) -> list[LimitStatus]:
    report = []
    for limit in WINDOW_LIMITS:
        value: int | None = getattr(limits, limit.setting)
        if value is None:
            continue
        usage, window = (day, windows[0]) if limit.period == "day" else (month, windows[1])
        warn, block = limits.threshold(limit.name)
        report.append(
            LimitStatus(limit.name, window, getattr(usage, limit.measure), value, warn, block)
        )
    return report


def zone(timezone: str | None) -> tzinfo:
    return UTC if timezone is None else zoneinfo.ZoneInfo(timezone)


def windows_for(at: datetime, timezone: str | None) -> tuple[str, str, datetime, datetime]:
    """(day key, month key, day start, month start) of the windows `at` falls in; the starts
    are UTC instants of local midnight. A midnight skipped by a DST change starts the day at
    the change, as the first instant of that local date."""
    if at.tzinfo is None:
        raise ValueError("`at` must carry a timezone")
    return _windows_of(at.astimezone(zone(timezone)).date(), timezone)


@functools.lru_cache(maxsize=4_096)
def _windows_of(local: date, timezone: str | None) -> tuple[str, str, datetime, datetime]:
    # Per local date and zone, once: a batch of usage falls in a handful of days.
    tz = zone(timezone)
    day_start = datetime(local.year, local.month, local.day, tzinfo=tz).astimezone(UTC)
    month_start = datetime(local.year, local.month, 1, tzinfo=tz).astimezone(UTC)
    return f"day:{local:%Y-%m-%d}", f"month:{local:%Y-%m}", day_start, month_start


def overlay(base: Limits, own: Limits) -> Limits:
    """Limits from a plan (`base`) with the account's own settings on top, field by field."""
    changes = {
        f.name: getattr(own, f.name)
        for f in fields(own)
        if f.name != "thresholds" and getattr(own, f.name) is not None
    }
    return replace(base, **changes, thresholds={**base.thresholds, **own.thresholds})


@functools.cache
def _known_zones() -> frozenset[str]:
    # "localtime" is whatever the server's clock is set to; "Factory" has no real offset.
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "Factory"}


# GraphQL names of the settings, for the field of a ValidationFailed.
FIELD_NAMES = {
    "tokens_per_day": "tokensPerDay",
    "tokens_per_month": "tokensPerMonth",
    "calls_per_day": "callsPerDay",
    "calls_per_month": "callsPerMonth",
    "cost_per_day_micros": "costCapPerDayMicros",
    "cost_per_month_micros": "costCapPerMonthMicros",
    "max_tokens_per_request": "maxTokensPerRequest",
    "requests_per_minute": "requestsPerMinute",
    "low_balance_credits": "lowBalanceCredits",
}


def check(limits: Limits) -> ValidationFailed | None:
    """Whether limits may be stored: first problem found, or None."""
    for name, api_name in FIELD_NAMES.items():
        value = getattr(limits, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            return ValidationFailed(api_name, "must be a whole number")
        low = 1 if name in ("max_tokens_per_request", "requests_per_minute") else 0
        high = MAX_REQUESTS_PER_MINUTE if name == "requests_per_minute" else MAX_LIMIT
        if not low <= value <= high:
            return ValidationFailed(api_name, f"between {low} and {high}, or null for no limit")
    if limits.allowed_models is not None:
        if len(limits.allowed_models) > MAX_MODELS:
            return ValidationFailed("allowedModels", f"at most {MAX_MODELS} entries")
        for pattern in limits.allowed_models:
            if (
                not 0 < len(pattern) <= MAX_MODEL_PATTERN
                or pattern != pattern.strip()
                or "\x00" in pattern  # PostgreSQL text cannot hold NUL
            ):
                return ValidationFailed(
                    "allowedModels",
                    f"each entry 1 to {MAX_MODEL_PATTERN} characters, no surrounding spaces",
                )
    if limits.timezone is not None and limits.timezone not in _known_zones():
        return ValidationFailed("timezone", "not an IANA timezone name (e.g. Europe/Warsaw)")
    for name, (warn, block) in limits.thresholds.items():
        if name not in WINDOW_LIMIT_NAMES:
            return ValidationFailed("thresholds", f"no window limit named {name}")
        if not 1 <= warn <= block <= 100:
            return ValidationFailed(
                "thresholds", f"{name}: need 1 <= warnAtPercent <= blockAtPercent <= 100"
            )
    return None


def limits_json(limits: Limits) -> dict[str, Any]:
    """Limits as JSON, e.g. inside a plan version; `limits_from_json` reads it back."""
    data: dict[str, Any] = {f.name: getattr(limits, f.name) for f in fields(limits)}
    data["allowed_models"] = None if limits.allowed_models is None else list(limits.allowed_models)
    data["thresholds"] = {name: list(pair) for name, pair in limits.thresholds.items()}
    return data


def limits_from_json(data: Mapping[str, Any]) -> Limits:
    values = dict(data)
    models = values.get("allowed_models")
    values["allowed_models"] = None if models is None else tuple(models)
    values["thresholds"] = {k: (v[0], v[1]) for k, v in values.get("thresholds", {}).items()}
    return Limits(**values)
