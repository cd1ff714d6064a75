"""The price of one call (`tollgate.pricing.charge`): every policy kind, BYOK, time-of-day rules,
minimum charges, cached tokens, images, per-request prices and rounding, as exact integers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from tollgate.pricing.charge import CallUsage, Charge, ModelPriceVersion, Policy, price_call
from tollgate.pricing.rules import ModelRule, TimeRule

START = datetime(2025, 1, 1, tzinfo=UTC)
NOON = datetime(2025, 6, 4, 12, 0, tzinfo=UTC)
GPT_4O = ModelPriceVersion(
    id=1,
    provider="openai",
    model="gpt-4o",
    aliases=("gpt-4o-2024-08-06",),
    input_per_million=D("2.50"),
    output_per_million=D("10.00"),
    cached_input_per_million=D("1.25"),
    per_image=D(0),
    per_request=D(0),
    effective_from=START,
)
GPT_4_TURBO = replace(
    GPT_4O,
    id=2,
    model="gpt-4-turbo",
    aliases=("gpt-4-turbo-2024-04-09",),
    input_per_million=D(10),
    output_per_million=D(30),
    cached_input_per_million=None,
)
# 1,000 input and 500 output tokens of gpt-4o: (2,500 + 5,000) / 1e6 USD = 7,500 micros.
CALL = CallUsage(input_tokens=1_000, output_tokens=500)
PEAK = TimeRule(time(9), time(17), "Europe/Warsaw", D("1.5"))
PER_MODEL = Policy(
    kind="PER_MODEL",
    default_markup=D("1.1"),
    model_rules=(
        ModelRule("gpt-4o*", D("1.2")),
        ModelRule("gpt-4-turbo", D("1.5"), D("0.01")),
        ModelRule("GPT-4O", D(3)),
    ),
)


def charge(
    price: ModelPriceVersion | None = GPT_4O,
    usage: CallUsage = CALL,
    policy: Policy = Policy(),
    *,
    at: datetime = NOON,
    byok: bool = False,
    credit_value_micros: int = 1_000,
    **kw: object,
) -> Charge:
    return price_call(
        price,
        usage,
        policy,
        at=at,
        byok=byok,
        credit_value_micros=credit_value_micros,
        **kw,
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (Policy(), Charge(7_500, 7_500, 8, "PASSTHROUGH")),
        (Policy(kind="MULTIPLIER", multiplier=D("1.5")), Charge(7_500, 11_250, 12, "MULTIPLIER")),
        (Policy(kind="MULTIPLIER", multiplier=D(2)), Charge(7_500, 15_000, 15, "MULTIPLIER")),
        (
            Policy(kind="MULTIPLIER", multiplier=D("0.5")),
            Charge(7_500, 3_750, 4, "MULTIPLIER"),
        ),
        (
            Policy(kind="FIXED_PER_CALL", fixed_per_call_usd=D("0.01")),
            Charge(7_500, 10_000, 10, "FIXED_PER_CALL"),
        ),
        # An exact rule beats the glob listed before it; matching ignores case.
        (PER_MODEL, Charge(7_500, 22_500, 23, "PER_MODEL")),
        (
            replace(PER_MODEL, model_rules=PER_MODEL.model_rules[:2]),
            Charge(7_500, 9_000, 9, "PER_MODEL"),
        ),
        (
            replace(PER_MODEL, model_rules=PER_MODEL.model_rules[1:2]),
            Charge(7_500, 8_250, 9, "PER_MODEL"),
        ),
        (
            Policy(kind="MULTIPLIER", multiplier=D("1.5"), platform_fee_usd=D("0.002")),
            Charge(7_500, 13_250, 14, "MULTIPLIER"),
        ),
        (
            Policy(
                kind="FIXED_PER_CALL", fixed_per_call_usd=D("0.01"), platform_fee_usd=D("0.002")
            ),
            Charge(7_500, 12_000, 12, "FIXED_PER_CALL"),
        ),
    ],
)
def test_every_policy_kind(policy: Policy, expected: Charge) -> None:
    assert charge(policy=policy) == expected


def test_per_model_rules_match_aliases_and_the_name_the_call_used() -> None:
    by_alias = replace(PER_MODEL, model_rules=(ModelRule("gpt-4o-2024-08-06", D(2)),))
    assert charge(policy=by_alias).charge_micros == 15_000
    custom = replace(PER_MODEL, model_rules=(ModelRule("my-*", D(4)),))
    assert charge(policy=custom, model="my-finetune").charge_micros == 30_000
    assert charge(policy=custom, model="other").charge_micros == 8_250


@pytest.mark.parametrize(
    ("usage", "charge_micros"),
    [
        # 1,300 micros x 1.5 = 1,950: below the minimum of $0.01.
        (CallUsage(input_tokens=100, output_tokens=10), 10_000),
        # 130,000 micros x 1.5 = 195,000: above it.
        (CallUsage(input_tokens=10_000, output_tokens=1_000), 195_000),
        # A call that cost nothing still pays the minimum.
        (CallUsage(input_tokens=0, output_tokens=0), 10_000),
    ],
)
def test_minimum_charge(usage: CallUsage, charge_micros: int) -> None:
    result = charge(GPT_4_TURBO, usage, PER_MODEL)
    assert result.charge_micros == charge_micros
    assert result.credits == charge_micros // 1_000


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (Policy(kind="MULTIPLIER", multiplier=D(2)), Charge(7_500, 7_500, 8, "PASSTHROUGH")),
        (
            Policy(kind="MULTIPLIER", multiplier=D(2), platform_fee_usd=D("0.002")),
            Charge(7_500, 9_500, 10, "PASSTHROUGH"),
        ),
        (
            Policy(kind="FIXED_PER_CALL", fixed_per_call_usd=D(1), platform_fee_usd=D("0.0005")),
            Charge(7_500, 8_000, 8, "PASSTHROUGH"),
        ),
        # Neither per-model minimums nor time rules apply to BYOK.
        (replace(PER_MODEL, time_rules=(PEAK,)), Charge(7_500, 7_500, 8, "PASSTHROUGH")),
    ],
)
def test_byok_is_passthrough_plus_platform_fee(policy: Policy, expected: Charge) -> None:
    assert charge(policy=policy, byok=True) == expected
    assert charge(GPT_4_TURBO, CallUsage(0, 0), policy, byok=True).cost_micros == 0


def test_cached_tokens_images_and_per_request() -> None:
    cached = CallUsage(input_tokens=1_000, output_tokens=0, cached_input_tokens=2_000)
    # 1,000 x 2.50 + 2,000 x 1.25 = 5,000 micro-dollars per million x 1e6.
    assert charge(usage=cached).cost_micros == 5_000
    # Without a cached price, cached tokens cost the input price.
    assert charge(GPT_4_TURBO, cached).cost_micros == 30_000
    image_model = replace(
        GPT_4O, input_per_million=D(0), output_per_million=D(0), per_image=D("0.04")
    )
    images = CallUsage(input_tokens=0, output_tokens=0, images=3)
    assert charge(image_model, images) == Charge(120_000, 120_000, 120, "PASSTHROUGH")
    per_request = replace(GPT_4O, per_request=D("0.005"))
    assert charge(per_request, CallUsage(0, 0)).cost_micros == 5_000
    assert charge(per_request).cost_micros == 12_500


@pytest.mark.parametrize(
    ("price", "usage", "policy", "kw", "expected"),
    [
        # 1 token at $0.10 per million is $0.0000001: one micro, one credit.
        (
            replace(GPT_4O, input_per_million=D("0.1")),
            CallUsage(1, 0),
            Policy(),
            {},
            Charge(1, 1, 1, "PASSTHROUGH"),
        ),
        (
            None,
            CallUsage(0, 0),
            Policy(),
            {"provider_cost_micros": 1_001},
            Charge(1_001, 1_001, 2, "PASSTHROUGH"),
        ),
        (
            None,
            CallUsage(0, 0),
            Policy(),
            {"provider_cost_micros": 1_000},
            Charge(1_000, 1_000, 1, "PASSTHROUGH"),
        ),
        (
            None,
            CallUsage(0, 0),
            Policy(),
            {"provider_cost_micros": 0},
            Charge(0, 0, 0, "PASSTHROUGH"),
        ),
        # 1 micro x 1.000001 = 1.000001 micros: rounded up once, at the end.
        (
            None,
            CallUsage(0, 0),
            Policy(kind="MULTIPLIER", multiplier=D("1.000001")),
            {"provider_cost_micros": 1},
            Charge(1, 2, 1, "MULTIPLIER"),
        ),
        # 0.3 micros x 3 = 0.9 → 1 (rounding the cost first would make it 3).
        (
            replace(GPT_4O, input_per_million=D("0.1")),
            CallUsage(3, 0),
            Policy(kind="MULTIPLIER", multiplier=D(3)),
            {},
            Charge(1, 1, 1, "MULTIPLIER"),
        ),
        # 0.5 micros x 3 = 1.5 → 2 (not ceil(0.5) x 3 = 3).
        (
            replace(GPT_4O, input_per_million=D("0.5")),
            CallUsage(1, 0),
            Policy(kind="MULTIPLIER", multiplier=D(3)),
            {},
            Charge(1, 2, 1, "MULTIPLIER"),
        ),
        # The real cost replaces the catalog's; the catalog still names the model for rules.
        (
            GPT_4O,
            CALL,
            PER_MODEL,
            {"provider_cost_micros": 12_345},
            Charge(12_345, 37_035, 38, "PER_MODEL"),
        ),
        # Large usage stays exact: 10^9 tokens of each kind.
        (
            GPT_4O,
            CallUsage(10**9, 10**9, 10**9, 0),
            Policy(kind="MULTIPLIER", multiplier=D("1.333333")),
            {"credit_value_micros": 7},
            Charge(13_750_000_000, 18_333_328_750, 2_619_046_965, "MULTIPLIER"),
        ),
    ],
)
def test_rounding(
    price: ModelPriceVersion | None,
    usage: CallUsage,
    policy: Policy,
    kw: dict[str, int],
    expected: Charge,
) -> None:
    assert charge(price, usage, policy, **kw) == expected


def _local(zone: str, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo(zone))


def _in_window(rule: TimeRule, at: datetime) -> bool:
    result = charge(policy=Policy(time_rules=(rule,)), at=at)
    assert result.charge_micros in (7_500, 11_250)
    return result.charge_micros == 11_250


WARSAW = "Europe/Warsaw"


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        (_local(WARSAW, 2025, 1, 15, 8, 59, 59, 999_999), False),
        (_local(WARSAW, 2025, 1, 15, 9, 0), True),
        (_local(WARSAW, 2025, 1, 15, 16, 59, 59), True),
        (_local(WARSAW, 2025, 1, 15, 17, 0), False),
        # The same instants in UTC: Warsaw is UTC+1 in winter ...
        (datetime(2025, 1, 15, 7, 59, 59, 999_999, tzinfo=UTC), False),
        (datetime(2025, 1, 15, 8, 0, tzinfo=UTC), True),
        (datetime(2025, 1, 15, 15, 59, 59, tzinfo=UTC), True),
        (datetime(2025, 1, 15, 16, 0, tzinfo=UTC), False),
        # ... and UTC+2 in summer, so 07:00 UTC is inside in July and outside in January.
        (datetime(2025, 7, 15, 7, 0, tzinfo=UTC), True),
        (datetime(2025, 1, 15, 7, 0, tzinfo=UTC), False),
        (datetime(2025, 7, 15, 15, 0, tzinfo=UTC), False),
        # The day clocks spring forward (30 March 2025, 02:00 → 03:00).
        (datetime(2025, 3, 30, 7, 0, tzinfo=UTC), True),
        (datetime(2025, 3, 30, 6, 59, tzinfo=UTC), False),
    ],
)
def test_time_rule_boundaries_in_a_timezone(at: datetime, inside: bool) -> None:
    assert _in_window(PEAK, at) is inside


NIGHT = TimeRule(time(22), time(6), "UTC", D("1.5"))


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        (datetime(2025, 1, 15, 21, 59, 59, 999_999, tzinfo=UTC), False),
        (datetime(2025, 1, 15, 22, 0, tzinfo=UTC), True),
        (datetime(2025, 1, 15, 23, 59, 59, tzinfo=UTC), True),
        (datetime(2025, 1, 16, 0, 0, tzinfo=UTC), True),
        (datetime(2025, 1, 16, 5, 59, 59, 999_999, tzinfo=UTC), True),
        (datetime(2025, 1, 16, 6, 0, tzinfo=UTC), False),
        (datetime(2025, 1, 16, 12, 0, tzinfo=UTC), False),
    ],
)
def test_overnight_window(at: datetime, inside: bool) -> None:
    assert _in_window(NIGHT, at) is inside


@pytest.mark.parametrize(
    ("rule", "at", "inside"),
    [
        # Friday night (ISO day 5) runs into Saturday morning.
        (replace(NIGHT, weekdays=frozenset({5})), datetime(2025, 1, 17, 23, 0, tzinfo=UTC), True),
        (replace(NIGHT, weekdays=frozenset({5})), datetime(2025, 1, 18, 2, 0, tzinfo=UTC), True),
        (replace(NIGHT, weekdays=frozenset({5})), datetime(2025, 1, 18, 23, 0, tzinfo=UTC), False),
        # 02:00 on Friday belongs to Thursday's night.
        (replace(NIGHT, weekdays=frozenset({5})), datetime(2025, 1, 17, 2, 0, tzinfo=UTC), False),
        # Sunday night runs into Monday.
        (replace(NIGHT, weekdays=frozenset({7})), datetime(2025, 1, 20, 1, 0, tzinfo=UTC), True),
        (replace(PEAK, weekdays=frozenset(range(1, 6))), _local(WARSAW, 2025, 1, 17, 10), True),
        (replace(PEAK, weekdays=frozenset(range(1, 6))), _local(WARSAW, 2025, 1, 18, 10), False),
        # The weekday is the local one: 23:30 UTC on Friday is Saturday in Warsaw.
        (
            TimeRule(time(0), time(1), WARSAW, D("1.5"), frozenset({6})),
            datetime(2025, 1, 17, 23, 30, tzinfo=UTC),
            True,
        ),
    ],
)
def test_weekdays(rule: TimeRule, at: datetime, inside: bool) -> None:
    assert _in_window(rule, at) is inside


NEW_YORK = "America/New_York"


@pytest.mark.parametrize(
    ("rule", "at", "inside"),
    [
        # 9 March 2025: 02:00 EST jumps to 03:00 EDT.
        (TimeRule(time(1, 30), time(3, 30), NEW_YORK, D("1.5")), "2025-03-09T06:30Z", True),
        (TimeRule(time(1, 30), time(3, 30), NEW_YORK, D("1.5")), "2025-03-09T07:00Z", True),
        (TimeRule(time(1, 30), time(3, 30), NEW_YORK, D("1.5")), "2025-03-09T07:30Z", False),
        # 2 November 2025: 01:00-02:00 happens twice; both are inside.
        (TimeRule(time(1), time(2), NEW_YORK, D("1.5")), "2025-11-02T05:30Z", True),
        (TimeRule(time(1), time(2), NEW_YORK, D("1.5")), "2025-11-02T06:30Z", True),
        (TimeRule(time(1), time(2), NEW_YORK, D("1.5")), "2025-11-02T07:00Z", False),
    ],
)
def test_daylight_saving_transitions(rule: TimeRule, at: str, inside: bool) -> None:
    assert _in_window(rule, datetime.fromisoformat(at)) is inside


def test_time_rules_scale_the_policy_charge_not_the_fee_and_first_match_wins() -> None:
    lunch = TimeRule(time(12), time(13), WARSAW, D(3))
    policy = Policy(
        kind="PER_MODEL",
        model_rules=(ModelRule("gpt-4-turbo", D("1.5"), D("0.01")),),
        platform_fee_usd=D("0.001"),
        time_rules=(PEAK, lunch),
    )
    at = _local(WARSAW, 2025, 1, 15, 12, 30)
    # The $0.01 minimum x 1.5 (the first matching rule) + $0.001 fee.
    assert charge(GPT_4_TURBO, CallUsage(1, 1), policy, at=at).charge_micros == 16_000
    reordered = replace(policy, time_rules=(lunch, PEAK))
    assert charge(GPT_4_TURBO, CallUsage(1, 1), reordered, at=at).charge_micros == 31_000
    outside = _local(WARSAW, 2025, 1, 15, 18)
    assert charge(GPT_4_TURBO, CallUsage(1, 1), policy, at=outside).charge_micros == 11_000


def test_refuses_what_cannot_be_priced() -> None:
    with pytest.raises(ValueError, match="provider_cost_micros"):
        charge(None)
    with pytest.raises(ValueError, match="timezone-aware"):
        charge(at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="negative"):
        charge(usage=CallUsage(-1, 0))
    with pytest.raises(ValueError, match="negative"):
        charge(provider_cost_micros=-1)
    with pytest.raises(ValueError, match="credit_value_micros"):
        charge(credit_value_micros=0)
