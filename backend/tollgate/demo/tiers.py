"""The demo's pricing: five tiers, their features, and two token packages.

Prices are in cents; annual prices give two months free (10 x monthly). One credit is $0.001 at
the default credit value, so Starter's 20,000 credits are $20 of usage at cost.
"""

from __future__ import annotations

from decimal import Decimal

from tollgate.limits.rules import Limits
from tollgate.plans.content import (
    ANNUAL,
    CAP,
    MONTHLY,
    NONE,
    UNLIMITED,
    FeatureValue,
    Price,
    RegionalPrice,
    VersionContent,
)
from tollgate.plans.packages import PackageInput
from tollgate.plans.service import FeatureInput
from tollgate.pricing.charge import MULTIPLIER, Policy

FEATURES = (
    FeatureInput("api_access", "API access", "BOOLEAN", "Call models through the API."),
    FeatureInput("priority_support", "Priority support", "BOOLEAN", "Answers within 4 hours."),
    FeatureInput("sso", "Single sign-on", "BOOLEAN", "SAML and OIDC login."),
    FeatureInput("seats", "Seats", "LIMIT", "Team members included.", "seats"),
    FeatureInput("monthly_tokens", "Tokens per month", "METERED", "", "tokens"),
)

SMALL = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-5-nano", "claude-3-5-haiku", "gemini-2.0-flash*")
MEDIUM = (*SMALL, "gpt-4o", "gpt-4.1", "gpt-5-mini", "claude-haiku-4-5", "gemini-2.5-flash*")
LARGE = (*MEDIUM, "gpt-5", "claude-sonnet-4*", "gemini-2.5-pro", "llama-*", "mistral-*")


def _prices(monthly: int) -> tuple[Price, ...]:
    return (Price(MONTHLY, "USD", monthly), Price(ANNUAL, "USD", monthly * 10))


def _regional(pln: int, eur: int) -> tuple[RegionalPrice, ...]:
    return (
        RegionalPrice(("PL",), MONTHLY, "PLN", pln),
        RegionalPrice(("PL",), ANNUAL, "PLN", pln * 10),
        RegionalPrice(("DE", "FR", "ES", "IT", "NL"), MONTHLY, "EUR", eur),
        RegionalPrice(("DE", "FR", "ES", "IT", "NL"), ANNUAL, "EUR", eur * 10),
    )


def _features(
    *, priority: bool, sso: bool, seats: int, tokens: int | None
) -> tuple[FeatureValue, ...]:
    return (
        FeatureValue("api_access", enabled=True),
        FeatureValue("priority_support", enabled=priority),
        FeatureValue("sso", enabled=sso),
        FeatureValue("seats", limit=seats),
        FeatureValue("monthly_tokens", limit=tokens),
    )


# (code, name, description, content)
TIERS: tuple[tuple[str, str, str, VersionContent], ...] = (
    ("free", "Free", "Try it out.", VersionContent(
        prices=(Price(MONTHLY, "USD", 0), Price(ANNUAL, "USD", 0)),
        included_credits=1_000, rollover=NONE,
        limits=Limits(tokens_per_day=50_000, requests_per_minute=10, allowed_models=SMALL,
                      max_tokens_per_request=4_000),
        feature_values=_features(priority=False, sso=False, seats=1, tokens=1_000_000),
        seats=1,
    )),
    ("starter", "Starter", "For side projects and small apps.", VersionContent(
        prices=_prices(1_900), regional_prices=_regional(7_900, 1_800),
        included_credits=20_000, rollover=NONE,
        limits=Limits(tokens_per_day=1_000_000, requests_per_minute=60, allowed_models=MEDIUM),
        feature_values=_features(priority=False, sso=False, seats=2, tokens=20_000_000),
        seats=2, trial_days=14,
    )),
    ("professional", "Professional", "For products in production.", VersionContent(
        prices=_prices(4_900), regional_prices=_regional(19_900, 4_500),
        included_credits=60_000, rollover=CAP, rollover_cap_percent=25,
        limits=Limits(tokens_per_day=5_000_000, requests_per_minute=300, allowed_models=LARGE),
        feature_values=_features(priority=True, sso=False, seats=5, tokens=60_000_000),
        seats=5, trial_days=14, badge="Most popular",
    )),
    ("team", "Team", "For teams shipping AI features.", VersionContent(
        prices=_prices(14_900), regional_prices=_regional(59_900, 13_900),
        included_credits=200_000, rollover=CAP, rollover_cap_percent=50,
        limits=Limits(requests_per_minute=1_000),
        feature_values=_features(priority=True, sso=True, seats=20, tokens=200_000_000),
        seats=20,
    )),
    ("enterprise", "Enterprise", "Volume pricing, SSO and a contract.", VersionContent(
        prices=_prices(99_900), included_credits=1_500_000, rollover=UNLIMITED,
        feature_values=_features(priority=True, sso=True, seats=1_000, tokens=None),
        policy=Policy(kind=MULTIPLIER, multiplier=Decimal("1.2")),
    )),
)  # fmt: skip

PACKAGES = (
    PackageInput("topup-10k", 10_000, {"USD": 1_000, "EUR": 950}, "10,000 credits", 365),
    PackageInput("topup-100k", 100_000, {"USD": 9_000, "EUR": 8_500}, "100,000 credits", 365,
                 ("professional", "team", "enterprise")),
)  # fmt: skip
