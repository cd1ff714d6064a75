"""Finding the price version in force for a model at a moment. Pure; no I/O.

A model is found by its name or any alias, case-insensitively; when a provider is given, a model
of another provider is not a match. The version in force at `at` is the one with the latest
`effective_from` not after `at`; before a model's first version there is no price.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import datetime

from tollgate.pricing.charge import ModelPriceVersion


class CatalogIndex:
    def __init__(self, versions: Iterable[ModelPriceVersion]) -> None:
        by_model: dict[str, list[ModelPriceVersion]] = {}
        for version in versions:
            by_model.setdefault(version.model.lower(), []).append(version)
        self._versions: dict[str, list[ModelPriceVersion]] = {}
        self._starts: dict[str, list[datetime]] = {}
        self._keys: dict[str, str] = {}
        for key, group in by_model.items():
            group.sort(key=lambda v: v.effective_from)
            self._versions[key] = group
            self._starts[key] = [v.effective_from for v in group]
            # Aliases belong to the model, so every version carries the same ones.
            for alias in group[-1].aliases:
                self._keys.setdefault(alias.lower(), key)
        # A name always wins over an alias.
        self._keys.update({key: key for key in by_model})

    def __len__(self) -> int:
        return len(self._versions)

    def models(self) -> list[str]:
        """Every priced model, by the name its latest version carries."""
        return sorted(group[-1].model for group in self._versions.values())

    def price_at(
        self, model: str, at: datetime, provider: str | None = None
    ) -> ModelPriceVersion | None:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("`at` must be timezone-aware")
        key = self._keys.get(model.strip().lower())
        if key is None:
            return None
        versions = self._versions[key]
        if provider is not None and versions[0].provider != provider.strip().lower():
            return None
        position = bisect_right(self._starts[key], at)
        return versions[position - 1] if position else None
