"""How the engine's connections talk to PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from tollgate.config import Settings
from tollgate.db import create_engine

# Shaped like usage_events, whose generic plan PostgreSQL picks from its size, without its
# foreign keys.
_LOOKUP = "SELECT id FROM seen WHERE event_id = ANY($1::text[])"
_BATCH = [f"e{i}" for i in range(16)]  # a batch's event ids


async def test_a_lookup_prepared_on_an_empty_table_uses_the_index_once_it_has_filled(
    settings: Settings,
) -> None:
    """usage_events starts empty on every install and is looked up by event id on every
    booking: the plan a connection chose for that while the table was empty must not last."""
    engine = create_engine(settings, statement_lifetime=1)
    try:
        async with engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            assert isinstance(raw, asyncpg.Connection)
            await raw.execute("CREATE TEMP TABLE seen (LIKE usage_events INCLUDING ALL)")
            await _run_lookup(raw)
            assert "Seq Scan" in await _scans(raw)  # what the empty table's plan is
            await raw.execute(
                "INSERT INTO seen (event_id, request_hash, account_id, model, input_tokens,"
                " output_tokens, cached_input_tokens, images, cost_micros, charge_micros, credits,"
                " byok, occurred_at) SELECT g::text, 'h', 1, 'm', 1, 1, 0, 0, 1, 1, 1, false, now()"
                " FROM generate_series(1, 20000) g"
            )
            await asyncio.sleep(1.2)  # past the statement's lifetime
            await _run_lookup(raw)
            scans = await _scans(raw)
            assert "Seq Scan" not in scans and any("Index" in s for s in scans), scans
    finally:
        await engine.dispose()


async def _run_lookup(raw: asyncpg.Connection) -> None:
    for _ in range(8):  # past the five runs after which PostgreSQL may keep a generic plan
        await raw.fetch(_LOOKUP, _BATCH)


async def _scans(raw: asyncpg.Connection) -> list[str]:
    """The plan the connection's prepared lookup would run now."""
    name = await raw.fetchval(
        "SELECT name FROM pg_prepared_statements WHERE statement = $1 ORDER BY prepare_time DESC",
        _LOOKUP,
    )
    batch = "'{" + ",".join(_BATCH) + "}'"
    plan = await raw.fetchval(f'EXPLAIN (FORMAT JSON) EXECUTE "{name}"({batch})')
    return _node_types(plan if not isinstance(plan, str) else json.loads(plan))


def _node_types(plan: Any) -> list[str]:
    if isinstance(plan, list):
        return [t for p in plan for t in _node_types(p)]
    if isinstance(plan, dict):
        own = [plan["Node Type"]] if "Node Type" in plan else []
        return own + [t for v in plan.values() for t in _node_types(v)]
    return []
