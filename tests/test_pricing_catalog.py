"""The price catalog at the service layer: versions and history, lookup by name or alias,
validation that changes nothing, listing, and loading catalog files (also via the CLI)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner
from redis.asyncio import Redis
from sqlalchemy import func, select, text

from tollgate.cli import main
from tollgate.config import Settings
from tollgate.db import Database
from tollgate.errors import ValidationFailed
from tollgate.invalidation import InvalidationBus
from tollgate.pricing import catalog
from tollgate.pricing.cache import PricingCache
from tollgate.pricing.catalog import PriceInput, find_price, list_prices, upsert_model_price
from tollgate.pricing.catalog_file import CatalogFileError, load_catalog, read_catalog
from tollgate.pricing.charge import ModelPriceVersion
from tollgate.pricing.models import CatalogModel, CatalogPrice

JAN = datetime(2025, 1, 1, tzinfo=UTC)
JUNE = datetime(2025, 6, 1, tzinfo=UTC)
GPT_4O = PriceInput(
    provider="OpenAI",
    model="gpt-4o",
    aliases=("gpt-4o-2024-08-06", "GPT-4o-latest"),
    input_per_million=D("2.50"),
    output_per_million=D("10.00"),
    cached_input_per_million=D("1.25"),
    effective_from=JAN,
)
SONNET = PriceInput(
    provider="anthropic",
    model="claude-sonnet-4",
    aliases=("claude-sonnet-4-20250514",),
    input_per_million=D(3),
    output_per_million=D(15),
    effective_from=JAN,
)


async def truncate_pricing(db: Database) -> None:
    async with db.transaction() as s:
        await s.execute(text("TRUNCATE catalog_prices, catalog_models, pricing_policies CASCADE"))


@pytest.fixture(autouse=True)
async def clean_pricing(db: Database) -> AsyncIterator[None]:
    await truncate_pricing(db)
    yield
    await truncate_pricing(db)


async def upsert(db: Database, price: PriceInput) -> ModelPriceVersion | ValidationFailed:
    async with db.transaction() as s:
        return await upsert_model_price(s, price)


async def stored(db: Database, price: PriceInput) -> ModelPriceVersion:
    result = await upsert(db, price)
    assert isinstance(result, ModelPriceVersion), result
    return result


async def find(
    db: Database, model: str, at: datetime, provider: str | None = None
) -> ModelPriceVersion | None:
    async with db.transaction() as s:
        return await find_price(s, model, at, provider)


async def found(db: Database, model: str, at: datetime) -> ModelPriceVersion:
    price = await find(db, model, at)
    assert price is not None, model
    return price


async def counts(db: Database) -> tuple[int, int]:
    async with db.transaction() as s:
        models = await s.scalar(select(func.count()).select_from(CatalogModel))
        prices = await s.scalar(select(func.count()).select_from(CatalogPrice))
    return int(models or 0), int(prices or 0)


async def test_a_call_is_priced_at_the_version_in_force_when_it_happened(db: Database) -> None:
    first = await stored(db, GPT_4O)
    second = await stored(db, replace(GPT_4O, input_per_million=D(2), effective_from=JUNE))
    assert await find(db, "gpt-4o", JAN - timedelta(microseconds=1)) is None
    assert await find(db, "gpt-4o", JAN) == first
    assert await find(db, "gpt-4o", JUNE - timedelta(microseconds=1)) == first
    assert await find(db, "gpt-4o", JUNE) == second
    assert await find(db, "gpt-4o", JUNE + timedelta(days=400)) == second
    # A version added later for an earlier time slots into the history.
    backfill = await stored(db, replace(GPT_4O, input_per_million=D(3), effective_from=JAN))
    assert await find(db, "gpt-4o", JAN) == backfill
    assert backfill.id == first.id
    assert await counts(db) == (1, 2)


async def test_lookup_by_name_or_alias_case_insensitive_and_by_provider(db: Database) -> None:
    gpt = await stored(db, GPT_4O)
    await stored(db, SONNET)
    assert gpt == await find(db, "GPT-4O-2024-08-06", JUNE)
    assert gpt == await find(db, "gpt-4o-latest", JUNE, provider="openai")
    assert gpt == await find(db, " gpt-4o ", JUNE, provider="OpenAI")
    assert await find(db, "gpt-4o", JUNE, provider="anthropic") is None
    assert await find(db, "gpt-5", JUNE) is None
    price = await found(db, "claude-sonnet-4-20250514", JUNE)
    assert price.provider == "anthropic"
    assert price.input_per_million == D(3)
    assert gpt.provider == "openai"
    assert gpt.aliases == ("gpt-4o-2024-08-06", "GPT-4o-latest")


async def test_aliases_are_kept_replaced_or_cleared(db: Database) -> None:
    await upsert(db, GPT_4O)
    kept = await stored(db, replace(GPT_4O, aliases=None, effective_from=JUNE))
    assert kept.aliases == ("gpt-4o-2024-08-06", "GPT-4o-latest")
    await upsert(db, replace(GPT_4O, aliases=("gpt-4o-2024-11-20", "gpt-4o")))
    assert await find(db, "gpt-4o-2024-08-06", JUNE) is None
    assert await find(db, "gpt-4o-2024-11-20", JUNE) is not None
    cleared = await stored(db, replace(GPT_4O, aliases=()))
    assert cleared.aliases == ()
    # The freed alias may now name another model.
    await stored(db, replace(SONNET, aliases=("gpt-4o-2024-11-20",)))
    assert await find(db, "gpt-4o-2024-11-20", JUNE, provider="anthropic") is not None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"input_per_million": D("-0.01")}, "inputPerMillion"),
        ({"output_per_million": D("NaN")}, "outputPerMillion"),
        ({"cached_input_per_million": D("Infinity")}, "cachedInputPerMillion"),
        ({"per_image": D("0.00000000001")}, "perImage"),
        ({"per_request": D(10_000_000)}, "perRequest"),
        ({"model": "  "}, "model"),
        ({"model": "x" * 201}, "model"),
        ({"provider": ""}, "provider"),
        ({"model": "gpt\x00"}, "model"),
        ({"aliases": ("ok\x00",)}, "aliases"),
        ({"aliases": ("ok", "")}, "aliases"),
        ({"aliases": tuple(f"a{i}" for i in range(51))}, "aliases"),
        ({"effective_from": datetime(2025, 1, 1)}, "effectiveFrom"),
        # Clashes with the other model: its name, its alias, or its name under another provider.
        ({"aliases": ("Claude-Sonnet-4",)}, "aliases"),
        ({"aliases": ("claude-sonnet-4-20250514",)}, "aliases"),
        ({"model": "claude-sonnet-4-20250514"}, "model"),
        ({"model": "claude-sonnet-4"}, "model"),
    ],
)
async def test_refusals_change_nothing(db: Database, change: dict[str, object], field: str) -> None:
    await upsert(db, SONNET)
    await upsert(db, GPT_4O)
    before = await counts(db)
    result = await upsert(db, replace(GPT_4O, **{"effective_from": JUNE, **change}))
    assert isinstance(result, ValidationFailed) and result.field == field, result
    assert await counts(db) == before
    assert (await found(db, "gpt-4o", JUNE)).effective_from == JAN


async def list_page(db: Database, **kw: object) -> list[tuple[str, D, datetime]]:
    async with db.transaction() as s:
        rows = await list_prices(s, **kw)
    return [(r.model, r.input_per_million, r.effective_from) for r in rows]


async def test_listing_current_prices_and_history_with_pagination(db: Database) -> None:
    now = datetime.now(UTC)
    await upsert(db, replace(GPT_4O, effective_from=now - timedelta(days=30)))
    await upsert(
        db, replace(GPT_4O, input_per_million=D(2), effective_from=now - timedelta(days=1))
    )
    await upsert(
        db, replace(GPT_4O, input_per_million=D(1), effective_from=now + timedelta(days=9))
    )
    await upsert(db, replace(SONNET, effective_from=now + timedelta(days=5)))
    await upsert(
        db, replace(SONNET, input_per_million=D(4), effective_from=now + timedelta(days=6))
    )
    current = await list_page(db, first=10, after_id=None)
    # In force now for gpt-4o; for Sonnet, not priced yet, the first version to come.
    assert [(m, p) for m, p, _ in current] == [("claude-sonnet-4", D(3)), ("gpt-4o", D(2))]
    history = await list_page(db, first=10, after_id=None, include_history=True)
    assert [(m, p) for m, p, _ in history] == [
        ("claude-sonnet-4", D(3)),
        ("claude-sonnet-4", D(4)),
        ("gpt-4o", D("2.5")),
        ("gpt-4o", D(2)),
        ("gpt-4o", D(1)),
    ]
    only = await list_page(db, first=10, after_id=None, include_history=True, model="GPT-4o-latest")
    assert [p for _, p, _ in only] == [D("2.5"), D(2), D(1)]

    seen: list[tuple[str, D]] = []
    after: int | None = None
    while True:
        async with db.transaction() as s:
            rows = await list_prices(s, first=2, after_id=after, include_history=True)
        seen += [(r.model, r.input_per_million) for r in rows[:2]]
        if len(rows) <= 2:
            break
        after = rows[1].id
    assert seen == [(m, p) for m, p, _ in history]


async def test_default_catalog_loads_idempotently(db: Database) -> None:
    entries = read_catalog()
    assert len(entries) >= 40
    async with db.transaction() as s:
        added = await load_catalog(s)
    assert added == len(entries)
    after_first = await counts(db)
    assert after_first == (len(entries), len(entries))
    async with db.transaction() as s:
        assert await load_catalog(s) == 0
    assert await counts(db) == after_first
    for name in ("gpt-5", "gpt-4o-2024-08-06", "claude-sonnet-4-20250514", "gemini-2.5-flash"):
        assert await find(db, name, datetime.now(UTC)) is not None, name
    assert await find(db, "o3", datetime.now(UTC), provider="openai") is not None
    for name in ("llama-3.3-70b-instruct", "mistral-large-latest", "deepseek-reasoner"):
        assert await find(db, name, datetime.now(UTC)) is not None, name


async def test_loading_never_overwrites_edits(db: Database) -> None:
    async with db.transaction() as s:
        await load_catalog(s)
    start = read_catalog()[0].effective_from
    assert start is not None
    edited = PriceInput(
        provider="openai",
        model="gpt-4o",
        input_per_million=D(99),
        output_per_million=D(99),
        effective_from=start,
    )
    await upsert(db, edited)
    async with db.transaction() as s:
        assert await load_catalog(s) == 0
    price = await found(db, "gpt-4o", datetime.now(UTC))
    assert price.input_per_million == D(99)
    assert price.aliases == ("gpt-4o-2024-08-06", "gpt-4o-2024-11-20")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ('{"models": {}}', "models"),
        ('{"models": [{"provider": "p", "model": "m"}]}', "input_per_million is required"),
        (
            '{"models": [{"provider": "p", "model": "m", "input_per_million": "1",'
            ' "output_per_million": "1"}]}',
            "effective_from is required",
        ),
        (
            '{"effective_from": "2025-01-01T00:00:00Z", "models": [{"provider": "p",'
            ' "model": "m", "input_per_million": "1", "ouput_per_million": "1"}]}',
            "unknown fields",
        ),
        (
            '{"effective_from": "2025-01-01T00:00:00", "models": [{"provider": "p",'
            ' "model": "m", "input_per_million": "1", "output_per_million": "1"}]}',
            "UTC offset",
        ),
        (
            '{"effective_from": "2025-01-01T00:00:00Z", "models": [{"provider": "p",'
            ' "model": "m", "input_per_million": "1", "output_per_million": true}]}',
            "decimal",
        ),
    ],
)
def test_bad_catalog_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(content)
    with pytest.raises(CatalogFileError, match=message):
        read_catalog(path)


async def test_a_file_that_fails_midway_writes_nothing(db: Database, tmp_path: Path) -> None:
    await upsert(db, SONNET)
    path = tmp_path / "catalog.json"
    models = [
        {"provider": "p", "model": "fine", "input_per_million": "1", "output_per_million": 2},
        {
            "provider": "p",
            "model": "clashing",
            "aliases": ["claude-sonnet-4"],
            "input_per_million": 0.5,
            "output_per_million": "1",
        },
    ]
    path.write_text(json.dumps({"effective_from": "2025-01-01T00:00:00+00:00", "models": models}))
    with pytest.raises(CatalogFileError, match="claude-sonnet-4"):
        async with db.transaction() as s:
            await load_catalog(s, path)
    assert await counts(db) == (1, 1)


async def test_cli_catalog_load(db: Database, settings: Settings, tmp_path: Path) -> None:
    bus = InvalidationBus(Redis.from_url(settings.redis_url or ""))
    await bus.start()
    cache = PricingCache(db, bus, refresh_seconds=3600)
    await cache.start()
    try:
        assert cache.price_at("gpt-4o", datetime.now(UTC)) is None
        env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
        runner = CliRunner()
        first = await asyncio.to_thread(runner.invoke, main, ["catalog", "load"], env=env)
        assert first.exit_code == 0, first.output
        assert first.output.strip() == f"{len(read_catalog())} price versions added"
        again = await asyncio.to_thread(runner.invoke, main, ["catalog", "load"], env=env)
        assert again.output.strip() == "0 price versions added"
        # The command told running caches.
        for _ in range(100):
            if cache.price_at("gpt-4o", datetime.now(UTC)) is not None:
                break
            await asyncio.sleep(0.01)
        assert cache.price_at("gpt-4o", datetime.now(UTC)) is not None

        bad = tmp_path / "bad.json"
        bad.write_text('{"models": 1}')
        refused = await asyncio.to_thread(
            runner.invoke, main, ["catalog", "load", "--file", str(bad)], env=env
        )
        assert refused.exit_code == 1
        assert "catalog not loaded" in refused.output
    finally:
        await cache.stop()
        await bus.stop()
        await bus.redis.aclose()


def test_normalize_tidies_names() -> None:
    clean = catalog.normalize(
        replace(GPT_4O, provider=" OpenAI ", model=" gpt-4o ", aliases=(" a ", "A", "gpt-4o")),
        now=JAN,
    )
    assert isinstance(clean, PriceInput)
    assert (clean.provider, clean.model, clean.aliases) == ("openai", "gpt-4o", ("a",))
