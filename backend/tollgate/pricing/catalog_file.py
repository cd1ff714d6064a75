"""Catalog files: the default catalog shipped in the package, or any file of the same shape.

    {"effective_from": "2025-01-01T00:00:00Z",
     "models": [{"provider": "openai", "model": "gpt-4o", "aliases": ["gpt-4o-2024-08-06"],
                 "input_per_million": "2.50", "cached_input_per_million": "1.25",
                 "output_per_million": "10.00", "per_image": "0", "per_request": "0"}]}

Prices are USD as strings (numbers are read as exact decimals too); an entry may carry its own
`effective_from`. Loading adds what is missing and never changes what is there (see
`catalog.add_missing`): to change a price, add an entry with a later `effective_from`.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.errors import ValidationFailed
from tollgate.pricing.catalog import PriceInput, add_missing

DEFAULT_CATALOG = "default_catalog.json"
PRICE_FIELDS = (
    "input_per_million",
    "output_per_million",
    "cached_input_per_million",
    "per_image",
    "per_request",
)
ENTRY_FIELDS = frozenset({"provider", "model", "aliases", "effective_from", *PRICE_FIELDS})


class CatalogFileError(ValueError):
    """The file cannot be loaded; nothing from it was written."""


def read_catalog(path: Path | None = None) -> list[PriceInput]:
    if path is None:
        text = resources.files("tollgate.pricing").joinpath(DEFAULT_CATALOG).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise CatalogFileError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise CatalogFileError('expected an object with a "models" list')
    default_start = data.get("effective_from")
    return [_entry(i, raw, default_start) for i, raw in enumerate(data["models"])]


def _entry(index: int, raw: Any, default_start: Any) -> PriceInput:
    where = f"models[{index}]"
    if not isinstance(raw, dict):
        raise CatalogFileError(f"{where}: expected an object")
    where += f" ({raw.get('model')!r})"
    if unknown := set(raw) - ENTRY_FIELDS:
        raise CatalogFileError(f"{where}: unknown fields {sorted(unknown)}")
    for name in ("provider", "model"):
        if not isinstance(raw.get(name), str):
            raise CatalogFileError(f"{where}: {name} must be a string")
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise CatalogFileError(f"{where}: aliases must be a list of strings")
    prices = {name: _decimal(where, name, raw[name]) for name in PRICE_FIELDS if name in raw}
    for required in ("input_per_million", "output_per_million"):
        if required not in prices:
            raise CatalogFileError(f"{where}: {required} is required")
    return PriceInput(
        provider=raw["provider"],
        model=raw["model"],
        aliases=tuple(aliases),
        effective_from=_start(where, raw.get("effective_from", default_start)),
        **prices,
    )


def _decimal(where: str, name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise CatalogFileError(f"{where}: {name} must be a decimal string")
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise CatalogFileError(f"{where}: {name} is not a decimal: {value!r}") from exc


def _start(where: str, value: Any) -> datetime:
    if value is None:
        raise CatalogFileError(f"{where}: effective_from is required (here or at the top)")
    try:
        start = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise CatalogFileError(f"{where}: effective_from is not an ISO 8601 time") from exc
    if start.tzinfo is None:
        raise CatalogFileError(f"{where}: effective_from needs a UTC offset")
    return start


async def load_catalog(session: AsyncSession, path: Path | None = None) -> int:
    """Load a catalog file (the default one when `path` is None) in the caller's transaction;
    returns how many price versions were added. Raises CatalogFileError on a bad file (the
    caller's transaction should then roll back; `Database.transaction()` does)."""
    added = 0
    for entry in read_catalog(path):
        result = await add_missing(session, entry)
        if isinstance(result, ValidationFailed):
            raise CatalogFileError(f"{entry.model!r}: {result.field}: {result.message}")
        added += result
    return added
