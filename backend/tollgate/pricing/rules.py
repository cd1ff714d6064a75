"""Which per-model rule and which time-of-day rule of a policy apply to a call. Pure; no I/O.

Model rules: a rule's `model` is an exact name or a glob (`*`, `?`, `[...]`), both compared
case-insensitively with the call's model name, the catalog name and its aliases. An exact rule
wins over any glob; among globs the first in the list wins.

Time rules: `start` is inclusive and `end` exclusive, in wall-clock time of `timezone` (so they
follow daylight saving time). A window whose end is not after its start runs overnight:
22:00-06:00 covers 22:00 to midnight and midnight to 06:00. `weekdays` (ISO: 1 = Monday …
7 = Sunday; empty means every day) name the day a window starts on, so Friday's 22:00-06:00
window still applies at 02:00 on Saturday. The first matching rule in the list applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from fnmatch import fnmatchcase
from zoneinfo import ZoneInfo

GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class ModelRule:
    model: str
    markup: Decimal
    min_charge_usd: Decimal = Decimal(0)

    @property
    def is_glob(self) -> bool:
        return not GLOB_CHARACTERS.isdisjoint(self.model)


@dataclass(frozen=True)
class TimeRule:
    start: time
    end: time
    timezone: str
    multiplier: Decimal
    weekdays: frozenset[int] = frozenset()

    def applies(self, at: datetime) -> bool:
        local = at.astimezone(ZoneInfo(self.timezone))
        wall, day = local.time(), local.isoweekday()
        if self.start < self.end:
            return self.start <= wall < self.end and self._on(day)
        if wall >= self.start:
            return self._on(day)
        if wall < self.end:
            return self._on(day - 1 or 7)
        return False

    def _on(self, day: int) -> bool:
        return not self.weekdays or day in self.weekdays


def match_model_rule(rules: Sequence[ModelRule], names: Iterable[str]) -> ModelRule | None:
    keys = {name.lower() for name in names if name}
    for rule in rules:
        if not rule.is_glob and rule.model.lower() in keys:
            return rule
    for rule in rules:
        if rule.is_glob and any(fnmatchcase(key, rule.model.lower()) for key in keys):
            return rule
    return None


def match_time_rule(rules: Sequence[TimeRule], at: datetime) -> TimeRule | None:
    return next((rule for rule in rules if rule.applies(at)), None)
