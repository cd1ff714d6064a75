"""What a plan version holds, its validation, and its JSON form. Pure: no I/O.

Prices are integer minor units of their ISO 4217 currency. A version has one price per billing
cycle in each of its currencies; the default currency must price every cycle the version
offers, so any country can be sold to. Regional prices map ISO 3166 country codes to a currency
and amount for one cycle. MONTHLY is one month, ANNUAL twelve, CUSTOM the version's own interval
(N days or months; one CUSTOM interval per version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tollgate.errors import ValidationFailed
from tollgate.limits import rules as limit_rules
from tollgate.limits.rules import Limits
from tollgate.pricing.charge import Policy
from tollgate.pricing.policy_input import policy_from_json, policy_json
from tollgate.subscriptions.periods import DAY, MAX_INTERVAL, MONTH, Interval

MONTHLY, ANNUAL, CUSTOM = "MONTHLY", "ANNUAL", "CUSTOM"
CYCLES = (MONTHLY, ANNUAL, CUSTOM)
NONE, CAP, UNLIMITED = "NONE", "CAP", "UNLIMITED"
ROLLOVERS = (NONE, CAP, UNLIMITED)
CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
COUNTRY = re.compile(r"[A-Z]{2}", re.ASCII)
MAX_AMOUNT = 10**12
MAX_CREDITS = 10**15
MAX_ENTRIES = 300


@dataclass(frozen=True)
class Price:
    cycle: str
    currency: str
    amount_minor: int


@dataclass(frozen=True)
class RegionalPrice:
    countries: tuple[str, ...]
    cycle: str
    currency: str
    amount_minor: int


@dataclass(frozen=True)
class FeatureValue:
    key: str
    enabled: bool | None = None
    limit: int | None = None


@dataclass(frozen=True)
class StripePrice:
    cycle: str
    currency: str
    price_id: str


@dataclass(frozen=True)
class VersionContent:
    default_currency: str = "USD"
    prices: tuple[Price, ...] = ()
    regional_prices: tuple[RegionalPrice, ...] = ()
    custom_interval: Interval | None = None
    included_credits: int = 0
    rollover: str = NONE
    rollover_cap_percent: int | None = None
    limits: Limits = field(default_factory=Limits)
    feature_values: tuple[FeatureValue, ...] = ()
    trial_days: int = 0
    seats: int | None = None
    policy: Policy | None = None
    badge: str | None = None
    lago_plan_code: str | None = None
    stripe_prices: tuple[StripePrice, ...] = ()

    def cycles(self) -> list[str]:
        return [c for c in CYCLES if any(p.cycle == c for p in self.prices)]

    def interval(self, cycle: str) -> Interval:
        if cycle == MONTHLY:
            return Interval(MONTH, 1)
        if cycle == ANNUAL:
            return Interval(MONTH, 12)
        assert self.custom_interval is not None
        return self.custom_interval

    def rollover_limit(self, allocated: int, left: int) -> int:
        """How much of `left` (credits unused at period end) carries into the next period."""
        if self.rollover == UNLIMITED:
            return left
        if self.rollover == CAP and self.rollover_cap_percent is not None:
            return min(left, allocated * self.rollover_cap_percent // 100)
        return 0


def _fail(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed(field_name, message)


def _check_money(field_name: str, currency: str, amount: int) -> ValidationFailed | None:
    if not CURRENCY.fullmatch(currency):
        return _fail(field_name, f"{currency!r} is not an ISO 4217 code such as USD")
    if not 0 <= amount <= MAX_AMOUNT:
        return _fail(field_name, f"amounts are minor units between 0 and {MAX_AMOUNT}")
    return None


def _check_prices(c: VersionContent) -> ValidationFailed | None:
    if not CURRENCY.fullmatch(c.default_currency):
        return _fail("defaultCurrency", "an ISO 4217 code such as USD")
    if not c.prices:
        return _fail("prices", "at least one price")
    if len(c.prices) + len(c.regional_prices) > MAX_ENTRIES:
        return _fail("prices", f"at most {MAX_ENTRIES} prices in all")
    seen: set[tuple[str, str]] = set()
    for p in c.prices:
        if (invalid := _check_money("prices", p.currency, p.amount_minor)) is not None:
            return invalid
        if (p.cycle, p.currency) in seen:
            return _fail("prices", f"{p.cycle} in {p.currency} is given twice")
        seen.add((p.cycle, p.currency))
    for cycle in {p.cycle for p in c.prices}:
        if (cycle, c.default_currency) not in seen:
            return _fail("prices", f"{cycle} needs a price in {c.default_currency}")
    if (CUSTOM in c.cycles()) != (c.custom_interval is not None):
        return _fail("customInterval", "needed exactly when a CUSTOM price is given")
    if c.custom_interval is not None:
        unit, count = c.custom_interval.unit, c.custom_interval.count
        if unit not in (DAY, MONTH) or not 1 <= count <= MAX_INTERVAL[unit]:
            return _fail("customInterval", "1 to 3660 days or 1 to 120 months")
    regional: set[tuple[str, str]] = set()
    for r in c.regional_prices:
        if (invalid := _check_money("regionalPrices", r.currency, r.amount_minor)) is not None:
            return invalid
        if r.cycle not in c.cycles():
            return _fail("regionalPrices", f"{r.cycle} has no default price")
        if not r.countries:
            return _fail("regionalPrices", "each regional price names at least one country")
        for country in r.countries:
            if not COUNTRY.fullmatch(country):
                return _fail("regionalPrices", f"{country!r} is not an ISO 3166 code such as PL")
            if (country, r.cycle) in regional:
                return _fail("regionalPrices", f"{country} has two {r.cycle} prices")
            regional.add((country, r.cycle))
    return None


def _check_rest(c: VersionContent) -> ValidationFailed | None:
    if not 0 <= c.included_credits <= MAX_CREDITS:
        return _fail("includedCredits", f"between 0 and {MAX_CREDITS}")
    if c.rollover not in ROLLOVERS:
        return _fail("rollover", f"one of {', '.join(ROLLOVERS)}")
    if (c.rollover == CAP) != (c.rollover_cap_percent is not None):
        return _fail("rolloverCapPercent", "given exactly when the rollover is CAP")
    if c.rollover_cap_percent is not None and not 1 <= c.rollover_cap_percent <= 1000:
        return _fail("rolloverCapPercent", "between 1 and 1000 (% of the allocation)")
    if not 0 <= c.trial_days <= 365:
        return _fail("trialDays", "between 0 and 365")
    if c.seats is not None and not 1 <= c.seats <= 1_000_000:
        return _fail("seats", "between 1 and 1000000, or null for unlimited")
    if c.badge is not None and not 0 < len(c.badge) <= 40:
        return _fail("badge", "1 to 40 characters")
    if (invalid := limit_rules.check(c.limits)) is not None:
        return ValidationFailed("limits." + invalid.field, invalid.message)
    keys = [f.key for f in c.feature_values]
    if len(keys) != len(set(keys)):
        return _fail("featureValues", "each feature once")
    for f in c.feature_values:
        if f.limit is not None and not 0 <= f.limit <= MAX_CREDITS:
            return _fail("featureValues", f"{f.key}: the limit must be between 0 and {MAX_CREDITS}")
    for s in c.stripe_prices:
        if not 0 < len(s.price_id) <= 255 or s.cycle not in CYCLES:
            return _fail("stripePriceIds", "a cycle, a currency and a price id of 1-255 chars")
    return None


def check(content: VersionContent) -> ValidationFailed | None:
    return _check_prices(content) or _check_rest(content)


def to_json(c: VersionContent) -> dict[str, Any]:
    return {
        "default_currency": c.default_currency,
        "prices": [vars(p) for p in c.prices],
        "regional_prices": [{**vars(r), "countries": list(r.countries)} for r in c.regional_prices],
        "custom_interval": None if c.custom_interval is None else vars(c.custom_interval),
        "included_credits": c.included_credits,
        "rollover": c.rollover,
        "rollover_cap_percent": c.rollover_cap_percent,
        "limits": limit_rules.limits_json(c.limits),
        "feature_values": [vars(f) for f in c.feature_values],
        "trial_days": c.trial_days,
        "seats": c.seats,
        "policy": None if c.policy is None else policy_json(c.policy),
        "badge": c.badge,
        "lago_plan_code": c.lago_plan_code,
        "stripe_prices": [vars(s) for s in c.stripe_prices],
    }


def from_json(d: dict[str, Any]) -> VersionContent:
    interval = d.get("custom_interval")
    return VersionContent(
        default_currency=d["default_currency"],
        prices=tuple(Price(**p) for p in d["prices"]),
        regional_prices=tuple(
            RegionalPrice(**{**r, "countries": tuple(r["countries"])}) for r in d["regional_prices"]
        ),
        custom_interval=None if interval is None else Interval(**interval),
        included_credits=d["included_credits"],
        rollover=d["rollover"],
        rollover_cap_percent=d["rollover_cap_percent"],
        limits=limit_rules.limits_from_json(d["limits"]),
        feature_values=tuple(FeatureValue(**f) for f in d["feature_values"]),
        trial_days=d["trial_days"],
        seats=d["seats"],
        policy=None if d.get("policy") is None else policy_from_json(d["policy"]),
        badge=d.get("badge"),
        lago_plan_code=d.get("lago_plan_code"),
        stripe_prices=tuple(StripePrice(**s) for s in d.get("stripe_prices", [])),
    )


@dataclass(frozen=True)
class ResolvedPrice:
    cycle: str
    currency: str
    amount_minor: int
    country: str | None
    regional: bool


def price_for(c: VersionContent, cycle: str, country: str | None) -> ResolvedPrice | None:
    """The country's regional price for the cycle, else the default currency's; None when the
    version does not offer the cycle. Unknown countries get the default currency."""
    wanted = country.upper() if country else None
    for r in c.regional_prices:
        if r.cycle == cycle and wanted in r.countries:
            return ResolvedPrice(cycle, r.currency, r.amount_minor, wanted, True)
    for p in c.prices:
        if p.cycle == cycle and p.currency == c.default_currency:
            return ResolvedPrice(cycle, p.currency, p.amount_minor, wanted, False)
    return None
