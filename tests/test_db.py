"""How the engine's connections talk to PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from tollgate.db import Database


async def test_a_statement_prepared_on_an_empty_table_uses_the_index_once_it_fills(
    db: Database,
) -> None:
    """A prepared lookup must not keep the plan it got while its table was empty: usage
    events start empty on every install and are looked up by event id on every booking."""
    async with db.engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        # Shaped like usage_events (the planner's guess for an empty table depends on it),
        # without its foreign keys.
        await raw.execute("CREATE TEMP TABLE seen (LIKE usage_events INCLUDING ALL)")
        await raw.execute("PREPARE lookup(text[]) AS SELECT id FROM seen WHERE event_id = ANY($1)")
        batch = "'{" + ",".join(f"e{i}" for i in range(16)) + "}'"  # a batch's event ids
        for _ in range(8):  # past the five runs after which a generic plan may be kept
            await raw.execute(f"EXECUTE lookup({batch})")
        await raw.execute(
            "INSERT INTO seen (event_id, request_hash, account_id, model, input_tokens,"
            " output_tokens, cached_input_tokens, images, cost_micros, charge_micros, credits,"
            " byok, occurred_at) SELECT g::text, 'h', 1, 'm', 1, 1, 0, 0, 1, 1, 1, false, now()"
            " FROM generate_series(1, 20000) g"
        )
        plan = await raw.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE lookup({batch})")
        scans = _node_types(plan if not isinstance(plan, str) else json.loads(plan))
        assert "Seq Scan" not in scans and any("Index" in s for s in scans), scans


def _node_types(plan: Any) -> list[str]:
    if isinstance(plan, list):
        return [t for p in plan for t in _node_types(p)]
    if isinstance(plan, dict):
        own = [plan["Node Type"]] if "Node Type" in plan else []
        return own + [t for v in plan.values() for t in _node_types(v)]
    return []
