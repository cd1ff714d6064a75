"""Turning what an admin sends into a `Policy`, and a policy's rules into JSON and back.

Each kind takes only its own fields (a MULTIPLIER policy needs `multiplier` and refuses
`fixedPerCallUsd`, …), so a form that mixes up kinds is told rather than half-applied. The
platform fee and time rules go with every kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from tollgate.errors import ValidationFailed
from tollgate.pricing.charge import (
    FIXED_PER_CALL,
    KINDS,
    MULTIPLIER,
    ONE,
    PER_MODEL,
    ZERO,
    Policy,
)
from tollgate.pricing.rules import ModelRule, TimeRule
from tollgate.pricing.validation import (
    check_factor,
    check_name,
    check_optional,
    check_usd,
    first_failure,
    plain,
)

MAX_MODEL_RULES = 200
MAX_TIME_RULES = 50
CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)", re.ASCII)


@dataclass(frozen=True)
class ModelRuleInput:
    model: str
    markup: Decimal
    min_charge_usd: Decimal = ZERO


@dataclass(frozen=True)
class TimeRuleInput:
    start: str
    end: str
    timezone: str
    multiplier: Decimal
    weekdays: tuple[int, ...] = ()


@dataclass(frozen=True)
class PolicyInput:
    account_external_id: str | None
    kind: str
    multiplier: Decimal | None = None
    fixed_per_call_usd: Decimal | None = None
    platform_fee_usd: Decimal | None = None
    default_markup: Decimal | None = None
    model_rules: tuple[ModelRuleInput, ...] = ()
    time_rules: tuple[TimeRuleInput, ...] = ()


def build_policy(given: PolicyInput) -> Policy | ValidationFailed:
    if given.kind not in KINDS:
        return ValidationFailed("kind", f"one of {', '.join(KINDS)}")
    if (misplaced := _misplaced(given)) is not None:
        return misplaced
    if given.kind == MULTIPLIER and given.multiplier is None:
        return ValidationFailed("multiplier", "a MULTIPLIER policy needs a multiplier")
    if given.kind == FIXED_PER_CALL and given.fixed_per_call_usd is None:
        return ValidationFailed("fixedPerCallUsd", "a FIXED_PER_CALL policy needs a price")
    fee = ZERO if given.platform_fee_usd is None else given.platform_fee_usd
    invalid = first_failure(
        check_optional(check_factor, "multiplier", given.multiplier),
        check_optional(check_factor, "defaultMarkup", given.default_markup),
        check_optional(check_usd, "fixedPerCallUsd", given.fixed_per_call_usd),
        check_usd("platformFeeUsd", fee),
    )
    if invalid is not None:
        return invalid
    model_rules = _model_rules(given.model_rules)
    if isinstance(model_rules, ValidationFailed):
        return model_rules
    time_rules = _time_rules(given.time_rules)
    if isinstance(time_rules, ValidationFailed):
        return time_rules
    return Policy(
        kind=given.kind,
        multiplier=ONE if given.multiplier is None else given.multiplier,
        fixed_per_call_usd=ZERO if given.fixed_per_call_usd is None else given.fixed_per_call_usd,
        default_markup=ONE if given.default_markup is None else given.default_markup,
        platform_fee_usd=fee,
        model_rules=model_rules,
        time_rules=time_rules,
    )


def _misplaced(given: PolicyInput) -> ValidationFailed | None:
    fields: tuple[tuple[str, str, object], ...] = (
        ("multiplier", MULTIPLIER, given.multiplier),
        ("fixedPerCallUsd", FIXED_PER_CALL, given.fixed_per_call_usd),
        ("defaultMarkup", PER_MODEL, given.default_markup),
        ("modelRules", PER_MODEL, given.model_rules or None),
    )
    for field, kind, value in fields:
        if value is not None and given.kind != kind:
            return ValidationFailed(field, f"only for {kind} policies")
    return None


def _model_rules(rules: tuple[ModelRuleInput, ...]) -> tuple[ModelRule, ...] | ValidationFailed:
    if len(rules) > MAX_MODEL_RULES:
        return ValidationFailed("modelRules", f"at most {MAX_MODEL_RULES}")
    seen: set[str] = set()
    built = []
    for i, rule in enumerate(rules):
        field = f"modelRules[{i}]"
        invalid = first_failure(
            check_name(f"{field}.model", rule.model),
            check_factor(f"{field}.markup", rule.markup),
            check_usd(f"{field}.minChargeUsd", rule.min_charge_usd),
        )
        if invalid is not None:
            return invalid
        pattern = rule.model.strip()
        if pattern.lower() in seen:
            return ValidationFailed(f"{field}.model", f"{pattern!r} has a rule already")
        seen.add(pattern.lower())
        built.append(ModelRule(pattern, rule.markup, rule.min_charge_usd))
    return tuple(built)


def _time_rules(rules: tuple[TimeRuleInput, ...]) -> tuple[TimeRule, ...] | ValidationFailed:
    if len(rules) > MAX_TIME_RULES:
        return ValidationFailed("timeRules", f"at most {MAX_TIME_RULES}")
    built = []
    for i, rule in enumerate(rules):
        field = f"timeRules[{i}]"
        start, end = _clock(rule.start), _clock(rule.end)
        if start is None:
            return ValidationFailed(f"{field}.start", "a time of day as HH:MM, e.g. 09:00")
        if end is None:
            return ValidationFailed(f"{field}.end", "a time of day as HH:MM, e.g. 17:00")
        if start == end:
            return ValidationFailed(f"{field}.end", "must differ from start")
        if not _is_zone(rule.timezone):
            return ValidationFailed(f"{field}.timezone", "an IANA time zone, e.g. Europe/Warsaw")
        if (bad := check_factor(f"{field}.multiplier", rule.multiplier)) is not None:
            return bad
        if any(day not in range(1, 8) for day in rule.weekdays):
            return ValidationFailed(f"{field}.weekdays", "ISO days: 1 (Monday) to 7 (Sunday)")
        built.append(TimeRule(start, end, rule.timezone, rule.multiplier, frozenset(rule.weekdays)))
    return tuple(built)


def _clock(value: str) -> time | None:
    match = CLOCK.fullmatch(value.strip())
    return time(int(match[1]), int(match[2])) if match else None


@cache
def _zones() -> frozenset[str]:
    # "localtime" is the host's own zone, which differs between replicas.
    return frozenset(available_timezones() - {"localtime"})


def _is_zone(name: str) -> bool:
    # Only IANA keys: ZoneInfo itself would also open files such as "zone.tab".
    return name in _zones()


def rules_json(policy: Policy) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    model_rules = [
        {
            "model": r.model,
            "markup": str(plain(r.markup)),
            "min_charge_usd": str(plain(r.min_charge_usd)),
        }
        for r in policy.model_rules
    ]
    time_rules = [
        {
            "start": r.start.strftime("%H:%M"),
            "end": r.end.strftime("%H:%M"),
            "timezone": r.timezone,
            "multiplier": str(plain(r.multiplier)),
            "weekdays": sorted(r.weekdays),
        }
        for r in policy.time_rules
    ]
    return model_rules, time_rules


def rules_from_json(
    model_rules: list[dict[str, Any]], time_rules: list[dict[str, Any]]
) -> tuple[tuple[ModelRule, ...], tuple[TimeRule, ...]]:
    return (
        tuple(
            ModelRule(r["model"], Decimal(r["markup"]), Decimal(r["min_charge_usd"]))
            for r in model_rules
        ),
        tuple(
            TimeRule(
                time.fromisoformat(r["start"]),
                time.fromisoformat(r["end"]),
                r["timezone"],
                Decimal(r["multiplier"]),
                frozenset(r["weekdays"]),
            )
            for r in time_rules
        ),
    )


def policy_json(policy: Policy) -> dict[str, Any]:
    """A policy as JSON (decimals as strings), e.g. inside a plan version."""
    model_rules, time_rules = rules_json(policy)
    return {
        "kind": policy.kind,
        "multiplier": str(plain(policy.multiplier)),
        "fixed_per_call_usd": str(plain(policy.fixed_per_call_usd)),
        "default_markup": str(plain(policy.default_markup)),
        "platform_fee_usd": str(plain(policy.platform_fee_usd)),
        "model_rules": model_rules,
        "time_rules": time_rules,
    }


def policy_from_json(data: dict[str, Any]) -> Policy:
    model_rules, time_rules = rules_from_json(data["model_rules"], data["time_rules"])
    return Policy(
        kind=data["kind"],
        multiplier=Decimal(data["multiplier"]),
        fixed_per_call_usd=Decimal(data["fixed_per_call_usd"]),
        default_markup=Decimal(data["default_markup"]),
        platform_fee_usd=Decimal(data["platform_fee_usd"]),
        model_rules=model_rules,
        time_rules=time_rules,
    )
