"""Metering throughput: authorize+record pairs and usage ingest through the real server, each
against a bare asyncpg baseline doing the same database work.

    .venv/bin/python bench/metering.py [--seconds N] [--clients N] [--senders N] [--warmup N]

Figures go to bench/results/metering.json and are printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import itertools
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import asyncpg
import httpx

# Run as a script, this folder is on the import path.
import metering_minimal
import psutil
from common import (
    HttpConnection,
    Measurement,
    Watch,
    drive,
    in_fresh_database,
    machine_facts,
    percentile,
    plain_url,
    write_report,
)
from ledger import (
    CLIENT_CPU,
    CREDITS,
    SPREAD_ACCOUNTS,
    Monitor,
    account_sets,
    can_pin,
    counting_statements,
    free_port,
    on_server_cpu,
    pinned_to,
    running,
    seed,
    tally,
    tollgate_server,
)

from tollgate import migrate
from tollgate.app import create_app
from tollgate.auth.service import CreatedKey, create_key
from tollgate.config import Settings
from tollgate.db import Database, create_engine
from tollgate.errors import ValidationFailed
from tollgate.pricing.catalog import PriceInput, upsert_model_price

# Per process, so that two runs against one shared server never drop each other's database.
DB_SUFFIX = f"_tollgate_bench_metering_{os.getpid()}"
PROVIDER, MODEL = "bench", "bench-model"
# $1 per million input tokens and $2 per million output tokens, a credit being $0.001: a hold
# of 1,000 in + 1,000 out is 3 credits, and a call's real use is 1 to 3 credits.
INPUT_TOKENS, MAX_OUTPUT_TOKENS = 1_000, 1_000
INGEST_BATCHES = (100, 1_000)
COPY_BATCH = 1_000
TARGETS = {"hot": 3.0, "spread": 1.0, "ingest": 1 / 3}

Call = Callable[[int], Awaitable[str]]


def new_event_id() -> str:
    return uuid.uuid4().hex


def used_output_tokens() -> int:
    return random.randint(0, MAX_OUTPUT_TOKENS)


def pick_from(accounts: list[str]) -> Callable[[], str]:
    if len(accounts) == 1:
        only = accounts[0]
        return lambda: only
    return lambda: random.choice(accounts)


class ClusterMonitor(Monitor):
    """Charges PostgreSQL with every process of the cluster: the postmaster and all its
    children, whichever database they serve, so that other local PostgreSQL servers (same
    process name) are not mistaken for it. A second connection samples the backends' states
    while the first finds the processes."""

    def __init__(self, conn: asyncpg.Connection, sampler: asyncpg.Connection) -> None:
        super().__init__(conn)
        self.sampler = sampler

    async def postgres_processes(self) -> list[psutil.Process]:
        backends = await super().postgres_processes()
        for backend in backends:
            with contextlib.suppress(psutil.Error):
                postmaster = backend.parent()
                if postmaster is not None and postmaster.name().startswith("postgres"):
                    return [postmaster, *postmaster.children()]
        return backends


# --- the books, read straight from the tables ----------------------------------------------------

BOOKS = """
WITH a AS (SELECT id FROM accounts WHERE external_id = ANY($1::text[])),
w AS (SELECT id, balance, reserved FROM wallets WHERE account_id IN (SELECT id FROM a))
SELECT
    (SELECT coalesce(sum(balance), 0) FROM w) AS balance,
    (SELECT coalesce(sum(reserved), 0) FROM w) AS reserved,
    (SELECT coalesce(min(balance), 0) FROM w) AS min_balance,
    (SELECT coalesce(min(reserved), 0) FROM w) AS min_reserved,
    (SELECT coalesce(min(balance - reserved), 0) FROM w) AS min_available,
    (SELECT coalesce(sum(remaining), 0) FROM credit_grants
        WHERE wallet_id IN (SELECT id FROM w)) AS grants,
    (SELECT coalesce(sum(amount), 0) FROM ledger_entries
        WHERE wallet_id IN (SELECT id FROM w)) AS entries,
    (SELECT count(*) FROM usage_events WHERE account_id IN (SELECT id FROM a)) AS events,
    (SELECT count(*) FROM reservations
        WHERE account_id IN (SELECT id FROM a) AND status = 'HELD') AS holds_open,
    (SELECT count(*) FROM ledger_transactions
        WHERE account_id IN (SELECT id FROM a) AND kind = 'DEDUCT') AS deductions
"""

# now() is the start of the transaction that wrote the row: rows sharing it were written by one
# transaction, which is how the batches the server's group committer formed show from outside.
AUTHORIZE_BATCHES = """
SELECT count(*) AS size, count(DISTINCT account_id) AS accounts FROM reservations
WHERE account_id = ANY($1::bigint[]) AND created_at >= $2 GROUP BY created_at
"""
RECORD_BATCHES = """
SELECT count(*) AS size, count(DISTINCT account_id) AS accounts FROM usage_events
WHERE account_id = ANY($1::bigint[]) AND recorded_at >= $2 GROUP BY recorded_at
"""


@dataclass
class Acknowledged:
    """What the server answered Recorded for: the check holds the tables to exactly this."""

    events: int = 0
    credits: int = 0
    uncollected: int = 0

    def take(self, results: list[dict[str, Any]]) -> str:
        outcome = "ok"
        for result in results:
            if result.get("__typename") == "Recorded":
                self.events += 1
                self.credits += int(result["credits"])
                self.uncollected += int(result["uncollectedCredits"])
            elif outcome == "ok":
                outcome = f"record_{result.get('__typename')}"
        return outcome


async def books(conn: asyncpg.Connection, accounts: list[str]) -> dict[str, int]:
    row = await conn.fetchrow(BOOKS, accounts)
    assert row is not None
    return {key: int(value) for key, value in row.items()}


def check_books(
    before: dict[str, int], after: dict[str, int], acked: Acknowledged
) -> dict[str, Any]:
    """No oversell, every acknowledged credit and event in the tables, every hold closed."""
    collected = acked.credits - acked.uncollected
    balance_drop = before["balance"] - after["balance"]
    events_stored = after["events"] - before["events"]
    checks = {
        "no_negative_balance": min(
            after["min_balance"], after["min_reserved"], after["min_available"]
        )
        >= 0,
        "balance_drop_equals_recorded_credits": balance_drop == collected,
        "reserved_back_to_zero": after["reserved"] == 0 and after["holds_open"] == 0,
        "every_acknowledged_event_stored": events_stored == acked.events,
        "balances_equal_ledger": after["balance"] == after["grants"] == after["entries"],
    }
    return {
        "consistent": all(checks.values()),
        **checks,
        "events_acknowledged": acked.events,
        "events_stored": events_stored,
        "credits_recorded": acked.credits,
        "credits_uncollected": acked.uncollected,
        "balance_drop": balance_drop,
        "reserved_after": after["reserved"],
        "holds_open_after": after["holds_open"],
        "deduct_transactions": after["deductions"] - before["deductions"],
    }


def size_summary(sizes: list[int]) -> dict[str, Any]:
    if not sizes:
        return {"transactions": 0}
    ordered = sorted(sizes)
    buckets: Counter[str] = Counter()
    for size in ordered:
        low = 1 << (size.bit_length() - 1)
        buckets[str(low) if low == 1 else f"{low}-{2 * low - 1}"] += 1
    return {
        "transactions": len(ordered),
        "rows": sum(ordered),
        "mean": round(sum(ordered) / len(ordered), 2),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "max": ordered[-1],
        "histogram": dict(buckets),
    }


async def batches_formed(
    conn: asyncpg.Connection, account_ids: list[int], since: datetime
) -> dict[str, Any]:
    formed: dict[str, Any] = {}
    for name, query in (("authorize", AUTHORIZE_BATCHES), ("record", RECORD_BATCHES)):
        rows = await conn.fetch(query, account_ids, since)
        if rows:
            formed[name] = {
                **size_summary([int(r["size"]) for r in rows]),
                "accounts_per_transaction": size_summary([int(r["accounts"]) for r in rows]),
            }
    return formed


# --- baselines -----------------------------------------------------------------------------------

BASELINE_SCHEMA = f"""
CREATE TABLE balances (id integer PRIMARY KEY, balance bigint NOT NULL);
INSERT INTO balances SELECT g, {CREDITS} FROM generate_series(1, {SPREAD_ACCOUNTS}) g;
CREATE TABLE usage_rows (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    account_id integer NOT NULL,
    tokens bigint NOT NULL,
    cost bigint NOT NULL
);
-- Every column, index and constraint of usage_events, with a sequence of its own.
CREATE TABLE copied_usage_events (LIKE usage_events INCLUDING ALL);
ALTER TABLE copied_usage_events ALTER COLUMN id DROP DEFAULT;
ALTER TABLE copied_usage_events ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY;
ALTER TABLE copied_usage_events
    ADD FOREIGN KEY (account_id) REFERENCES accounts (id);
"""
DEBIT = (
    "UPDATE balances SET balance = balance - $2 WHERE id = $1 AND balance >= $2 RETURNING balance"
)
USAGE_ROW = "INSERT INTO usage_rows (event_id, account_id, tokens, cost) VALUES ($1, $2, $3, $4)"
COPY_COLUMNS = (
    "event_id",
    "request_hash",
    "account_id",
    "model",
    "provider",
    "feature",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "images",
    "cost_micros",
    "charge_micros",
    "credits",
    "uncollected_credits",
    "byok",
    "flags",
    "reservation_id",
    "transaction_id",
    "details",
    "occurred_at",
)


class Insufficient(Exception):
    """The conditional debit found too little: the transaction is rolled back."""


def debit_call(conns: list[asyncpg.Connection], pick: Callable[[], int]) -> Call:
    async def call(worker: int) -> str:
        conn = conns[worker]
        account, output = pick(), used_output_tokens()
        cost = -(-(INPUT_TOKENS + 2 * output) // 1_000)
        async with conn.transaction():
            if await conn.fetchval(DEBIT, account, cost) is None:
                raise Insufficient
            await conn.execute(USAGE_ROW, new_event_id(), account, INPUT_TOKENS + output, cost)
        return "ok"

    return call


def copy_call(conns: list[asyncpg.Connection], account_ids: list[int]) -> Call:
    """The rows Tollgate would store for a batch of events, written with COPY. Kept cheap to
    build (a counter for the ids, one hash for all) so that the load generator, which shares
    the machine, takes as little CPU from PostgreSQL as it can: this is the floor."""
    numbers = itertools.count()
    request_hash = hashlib.sha256(b"copy").hexdigest()

    async def call(worker: int) -> str:
        now, tx = datetime.now(UTC), uuid.uuid4()
        records = []
        for _ in range(COPY_BATCH):
            output = used_output_tokens()
            micros = INPUT_TOKENS + 2 * output
            records.append(
                (
                    f"copy-{next(numbers)}",
                    request_hash,
                    random.choice(account_ids),
                    MODEL,
                    PROVIDER,
                    None,
                    INPUT_TOKENS,
                    output,
                    0,
                    0,
                    micros,
                    micros,
                    -(-micros // 1_000),
                    0,
                    False,
                    [],
                    None,
                    tx,
                    "{}",
                    now,
                )
            )
        await conns[worker].copy_records_to_table(
            "copied_usage_events", records=records, columns=COPY_COLUMNS
        )
        return "ok"

    return call


async def run_baselines(
    url: str, args: argparse.Namespace, monitor: ClusterMonitor, account_ids: list[int]
) -> dict[str, dict[str, Any]]:
    setup = await asyncpg.connect(plain_url(url))
    await setup.execute(BASELINE_SCHEMA)
    await setup.execute("VACUUM ANALYZE balances")
    # One connection per client: nothing between the client and the server but the protocol.
    conns = [await asyncpg.connect(plain_url(url)) for _ in range(max(args.clients, args.senders))]
    runs: dict[str, dict[str, Any]] = {}
    try:
        targets: dict[str, Callable[[], int]] = {
            "hot": lambda: 1,
            "spread": lambda: random.randint(1, SPREAD_ACCOUNTS),
        }
        # Whatever left the balances is in usage_rows, and one row per success.
        state = (
            "SELECT (SELECT sum(balance) FROM balances) AS balance,"
            " (SELECT coalesce(sum(cost), 0) FROM usage_rows) AS cost,"
            " (SELECT count(*) FROM usage_rows) AS n"
        )
        for kind, pick in targets.items():
            before = await setup.fetchrow(state)
            m, backends = await measure(
                debit_call(conns, pick), args, args.clients, monitor, monitor.watch()
            )
            after = await setup.fetchrow(state)
            assert before is not None and after is not None
            check = {
                "consistent": after["n"] - before["n"] == m.total_ok
                and after["balance"] + after["cost"] == SPREAD_ACCOUNTS * CREDITS,
                "rows_written": after["n"] - before["n"],
            }
            runs[f"a_{kind}"] = describe(m, check, backends)
            report_progress(f"baseline A {kind}", m.ops_per_second, "transactions/s")

        count = "SELECT count(*) FROM copied_usage_events"
        before_rows = await setup.fetchval(count)
        m, backends_b = await measure(
            copy_call(conns, account_ids), args, args.senders, monitor, monitor.watch()
        )
        written = await setup.fetchval(count) - before_rows
        runs["b"] = describe(
            m,
            {"consistent": written == m.total_ok * COPY_BATCH, "rows_written": written},
            backends_b,
            per_call=COPY_BATCH,
        )
        report_progress("baseline B copy", runs["b"]["rows_per_second"], "rows/s")
    finally:
        for conn in (*conns, setup):
            await conn.close()
    return runs


# --- Tollgate: the two APIs ----------------------------------------------------------------------


class Refused(Exception):
    """A step of a call did not succeed; `outcome` names what came back instead."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


# POST a JSON body for client `worker`; the decoded answer, or Refused on any status but 200.
Post = Callable[[int, str, dict[str, Any]], Awaitable[Any]]


def pooled_post(conns: list[HttpConnection]) -> Post:
    """A connection of its own per client, as many SDK processes would hold."""

    async def post(worker: int, path: str, body: dict[str, Any]) -> Any:
        status, answer = await conns[worker % len(conns)].post(path, body)
        if status != 200:
            raise Refused(f"http_{status}")
        return answer

    return post


def httpx_post(http: httpx.AsyncClient) -> Post:
    async def post(_worker: int, path: str, body: dict[str, Any]) -> Any:
        response = await http.post(path, json=body)
        if response.status_code != 200:
            raise Refused(f"http_{response.status_code}")
        return response.json()

    return post


class Api(Protocol):
    name: str

    async def authorize(self, worker: int, account: str) -> str: ...

    async def record(self, worker: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]: ...


def authorize_input(account: str) -> dict[str, Any]:
    return {
        "accountExternalId": account,
        "model": MODEL,
        "estimatedInputTokens": INPUT_TOKENS,
        "maxOutputTokens": MAX_OUTPUT_TOKENS,
    }


def usage_event(account: str, reservation_id: str | None = None) -> dict[str, Any]:
    event = {
        "eventId": new_event_id(),
        "accountExternalId": account,
        "model": MODEL,
        "inputTokens": INPUT_TOKENS,
        "outputTokens": used_output_tokens(),
    }
    if reservation_id is not None:
        event["reservationId"] = reservation_id
    return event


def reservation_of(answer: dict[str, Any]) -> str:
    if answer.get("__typename") != "Authorized":
        raise Refused(f"authorize_{answer.get('__typename')}")
    return str(answer["reservationId"])


class JsonApi:
    name = "json"

    def __init__(self, post: Post) -> None:
        self.post = post

    async def authorize(self, worker: int, account: str) -> str:
        return reservation_of(
            await self.post(worker, "/api/v1/authorize", authorize_input(account))
        )

    async def record(self, worker: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        answer = await self.post(worker, "/api/v1/usage", {"events": events})
        results: list[dict[str, Any]] = answer["results"]
        return results


AUTHORIZE = """
mutation Authorize($input: AuthorizeUsageInput!) {
  authorizeUsage(input: $input) {
    __typename
    ... on Authorized { reservationId creditsHeld }
  }
}
"""
RECORD = """
mutation Record($events: [UsageEventInput!]!) {
  recordUsage(events: $events) {
    __typename
    ... on Recorded { eventId credits uncollectedCredits flags }
  }
}
"""


class GraphQLApi:
    name = "graphql"

    def __init__(self, post: Post) -> None:
        self.post = post

    async def _data(self, worker: int, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = await self.post(worker, "/graphql", {"query": query, "variables": variables})
        if body.get("errors"):
            raise Refused("graphql_error")
        data: dict[str, Any] = body["data"]
        return data

    async def authorize(self, worker: int, account: str) -> str:
        data = await self._data(worker, AUTHORIZE, {"input": authorize_input(account)})
        return reservation_of(data["authorizeUsage"])

    async def record(self, worker: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        data = await self._data(worker, RECORD, {"events": events})
        results: list[dict[str, Any]] = data["recordUsage"]
        return results


def floor_call(conns: list[HttpConnection]) -> Call:
    """What the server's HTTP stack alone costs: a request refused before any metering."""

    async def call(worker: int) -> str:
        status, _ = await conns[worker].post("/api/v1/authorize", {})
        return "ok" if status == 401 else f"http_{status}"

    return call


def pair_call(api: Api, accounts: list[str], acked: Acknowledged) -> Call:
    """One authorize, then one record of what the call really used against its hold."""
    pick = pick_from(accounts)

    async def call(worker: int) -> str:
        account = pick()
        try:
            reservation = await api.authorize(worker, account)
            return acked.take(await api.record(worker, [usage_event(account, reservation)]))
        except Refused as refused:
            return refused.outcome

    return call


def ingest_call(api: Api, accounts: list[str], batch: int, acked: Acknowledged) -> Call:
    """A batch of events of calls that were never authorized, each for a random account."""

    async def call(worker: int) -> str:
        events = [usage_event(random.choice(accounts)) for _ in range(batch)]
        try:
            return acked.take(await api.record(worker, events))
        except Refused as refused:
            return refused.outcome

    return call


# --- Tollgate: set-up, statement counts, runs ---------------------------------------------------


async def seed_tollgate(settings: Settings, accounts: list[str]) -> str:
    """The accounts with plenty of credits, the model's price, and a service key's secret."""
    db = Database(create_engine(settings))
    try:
        await seed(db, accounts)
        async with db.transaction() as session:
            price = await upsert_model_price(
                session,
                PriceInput(
                    provider=PROVIDER,
                    model=MODEL,
                    input_per_million=Decimal(1),
                    output_per_million=Decimal(2),
                    cached_input_per_million=Decimal("0.5"),
                    aliases=(),
                    effective_from=datetime(2020, 1, 1, tzinfo=UTC),
                ),
            )
            assert not isinstance(price, ValidationFailed), price
            created = await create_key(session, name="bench", role="service", created_by="bench")
            assert isinstance(created, CreatedKey), created
        return created.secret
    finally:
        await db.dispose()


def counted(seen: dict[str, Any], *, full_list: bool) -> dict[str, Any]:
    """`tally`, with a long statement list folded into how often each statement ran."""
    counts = tally(seen)
    if not full_list:
        statements = counts.pop("statement_list")
        counts["statement_counts"] = dict(Counter(statements).most_common())
    return counts


async def probe_statements(
    settings: Settings, secret: str, hot: str, spread: list[str]
) -> dict[str, Any]:
    """The requests the runs send, through the real app in this process, so that every statement
    they cause can be counted: one pair alone, a burst of authorizations the group committer
    batches, and record batches spread over many accounts."""
    app = create_app(settings)
    probes: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://probe", headers=headers
        ) as http:
            api, acked = JsonApi(httpx_post(http)), Acknowledged()
            # The first calls also authenticate the key, prepare statements and load codecs.
            pair = pair_call(api, [hot], acked)
            for _ in range(3):
                assert await pair(0) == "ok"
            async with counting_statements() as seen:
                reservation = await api.authorize(0, hot)
            probes["authorize_one"] = counted(seen, full_list=True)
            async with counting_statements() as seen:
                outcome = acked.take(await api.record(0, [usage_event(hot, reservation)]))
            assert outcome == "ok", outcome
            probes["record_one_with_hold"] = counted(seen, full_list=True)

            burst = random.sample(spread, 16)
            async with counting_statements() as seen:
                held = await asyncio.gather(*(api.authorize(0, a) for a in burst))
            probes["authorize_16_concurrent_16_accounts"] = counted(seen, full_list=False)
            async with counting_statements() as seen:
                answers = await asyncio.gather(
                    *(api.record(0, [usage_event(a, r)]) for a, r in zip(burst, held, strict=True))
                )
            assert all(acked.take(a) == "ok" for a in answers)
            probes["record_16_concurrent_16_accounts"] = counted(seen, full_list=False)

            for size in INGEST_BATCHES:
                events = [usage_event(random.choice(spread)) for _ in range(size)]
                started = time.perf_counter()
                async with counting_statements() as seen:
                    outcome = acked.take(await api.record(0, events))
                assert outcome == "ok", outcome
                probes[f"record_batch_{size}"] = {
                    "distinct_accounts": len({e["accountExternalId"] for e in events}),
                    "wall_ms_in_process": round((time.perf_counter() - started) * 1000, 1),
                    **counted(seen, full_list=False),
                }
    return probes


async def account_ids(conn: asyncpg.Connection, external_ids: list[str]) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM accounts WHERE external_id = ANY($1::text[])", external_ids
    )
    return [int(r["id"]) for r in rows]


async def measure_tollgate(
    call_of: Callable[[Acknowledged], Call],
    accounts: list[str],
    args: argparse.Namespace,
    clients: int,
    monitor: ClusterMonitor,
    watch: Watch,
    *,
    per_call: int = 1,
) -> dict[str, Any]:
    """One measured run, then the books checked against what the server acknowledged."""
    ids = await account_ids(monitor.conn, accounts)
    since = await monitor.conn.fetchval("SELECT clock_timestamp()")
    before = await books(monitor.conn, accounts)
    acked = Acknowledged()
    m, backends = await measure(call_of(acked), args, clients, monitor, watch)
    after = await books(monitor.conn, accounts)
    result = describe(m, check_books(before, after, acked), backends, per_call=per_call)
    result["batches_formed"] = await batches_formed(monitor.conn, ids, since)
    return result


async def run_tollgate(
    settings: Settings,
    secret: str,
    sets: dict[str, list[str]],
    args: argparse.Namespace,
    workdir: Path,
    monitor: ClusterMonitor,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    pin = can_pin()
    runs: dict[str, dict[str, Any]] = {}
    async with tollgate_server(settings, workdir, pin) as (base, server, server_setup):
        watch = monitor.watch(server=server)
        address = urlsplit(base)
        assert address.hostname is not None and address.port is not None
        headers = {"Authorization": f"Bearer {secret}"}
        conns = [
            HttpConnection(address.hostname, address.port, headers)
            for _ in range(max(args.clients, args.senders))
        ]
        post = pooled_post(conns)
        # Without a key the routes answer 401 before any database or Redis work.
        bare = [HttpConnection(address.hostname, address.port, {}) for _ in range(args.clients)]
        try:
            with pinned_to(CLIENT_CPU if pin else None):
                m, backends = await measure(floor_call(bare), args, args.clients, monitor, watch)
                runs["http_floor"] = describe(m, {"consistent": m.failed_in_window == 0}, backends)
                report_progress("HTTP floor (401)", m.ops_per_second, "requests/s")
                for api in (JsonApi(post), GraphQLApi(post)):
                    for kind, accounts in sets.items():
                        run = await measure_tollgate(
                            functools.partial(pair_call, api, accounts),
                            accounts,
                            args,
                            args.clients,
                            monitor,
                            watch,
                        )
                        runs[f"{api.name}_pairs_{kind}"] = run
                        report_progress(
                            f"{api.name} pairs {kind}", run["ops_per_second"], "pairs/s"
                        )
                for size in INGEST_BATCHES:
                    run = await measure_tollgate(
                        functools.partial(ingest_call, JsonApi(post), sets["spread"], size),
                        sets["spread"],
                        args,
                        args.senders,
                        monitor,
                        watch,
                        per_call=size,
                    )
                    runs[f"ingest_{size}"] = run
                    report_progress(f"ingest batch {size}", run["rows_per_second"], "events/s")
        finally:
            for conn in (*conns, *bare):
                conn.close()
    server_setup["load_generator_cpus"] = [CLIENT_CPU] if pin else "unpinned"
    return runs, server_setup


# --- the minimal service: the ceiling for a Python service on this stack ------------------------

MINIMAL_BOOKS = """
SELECT coalesce(sum(balance), 0) AS balance, coalesce(sum(held), 0) AS held,
    coalesce(min(balance - held), 0) AS min_available,
    (SELECT count(*) FROM minimal_holds) AS holds_open,
    (SELECT count(*) FROM minimal_usage_events) AS events
FROM minimal_wallets
"""


async def minimal_books(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(MINIMAL_BOOKS)
    assert row is not None
    return {key: int(value) for key, value in row.items()}


def check_minimal_books(
    before: dict[str, int], after: dict[str, int], acked: Acknowledged
) -> dict[str, Any]:
    checks = {
        "no_negative_available": after["min_available"] >= 0,
        "balance_drop_equals_recorded_credits": before["balance"] - after["balance"]
        == acked.credits,
        "held_back_to_zero": after["held"] == 0 and after["holds_open"] == 0,
        "every_acknowledged_event_stored": after["events"] - before["events"] == acked.events,
    }
    return {"consistent": all(checks.values()), **checks, "events_acknowledged": acked.events}


async def run_minimal(
    url: str,
    sets: dict[str, list[str]],
    args: argparse.Namespace,
    workdir: Path,
    monitor: ClusterMonitor,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The same pairs and ingest against `metering_minimal.py`, on the same CPU as Tollgate."""
    conn = monitor.conn
    await conn.execute(metering_minimal.SCHEMA)
    await conn.execute(
        "INSERT INTO minimal_wallets (account_id, external_id, balance)"
        " SELECT id, external_id, $1 FROM accounts WHERE external_id = ANY($2::text[])",
        CREDITS,
        [a for accounts in sets.values() for a in accounts],
    )
    await conn.execute("VACUUM ANALYZE minimal_wallets")
    port = free_port()
    script = Path(metering_minimal.__file__)
    command, pinned = on_server_cpu(
        [sys.executable, str(script), "--port", str(port), "--database-url", plain_url(url)],
        can_pin(),
    )
    runs: dict[str, dict[str, Any]] = {}
    base = f"http://127.0.0.1:{port}"
    async with running("metering_minimal.py", command, base, workdir / "minimal.log") as proc:
        watch = monitor.watch(server=psutil.Process(proc.pid))
        conns = [HttpConnection("127.0.0.1", port, {}) for _ in range(args.clients)]
        api = JsonApi(pooled_post(conns))

        async def measured(call_of: Callable[[Acknowledged], Call], clients: int) -> Any:
            before, acked = await minimal_books(conn), Acknowledged()
            m, backends = await measure(call_of(acked), args, clients, monitor, watch)
            check = check_minimal_books(before, await minimal_books(conn), acked)
            return m, check, backends

        try:
            with pinned_to(CLIENT_CPU if pinned else None):
                for kind, accounts in sets.items():
                    m, check, backends = await measured(
                        functools.partial(pair_call, api, accounts), args.clients
                    )
                    runs[f"minimal_pairs_{kind}"] = describe(m, check, backends)
                    report_progress(f"minimal pairs {kind}", m.ops_per_second, "pairs/s")
                for size in INGEST_BATCHES:
                    call_of = functools.partial(ingest_call, api, sets["spread"], size)
                    m, check, backends = await measured(call_of, args.senders)
                    runs[f"minimal_ingest_{size}"] = describe(m, check, backends, per_call=size)
                    report_progress(f"minimal ingest {size}", m.ops_per_second * size, "events/s")
        finally:
            for c in conns:
                c.close()
    return runs, {"command": [Path(part).name for part in command], "pinned": pinned}


# --- measuring and reporting ---------------------------------------------------------------------


BACKENDS = """
SELECT state, wait_event_type, wait_event FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""


async def sample_backends(
    conn: asyncpg.Connection, start: float, end: float, every: float = 0.01
) -> dict[str, Any]:
    """What this database's client backends were doing during [start, end) (perf_counter
    times), as the mean number of backends in each state: how many ran a statement, waited for
    a row lock, for the WAL to reach disk, or sat idle inside a transaction while the client
    (the server under test) computed."""
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    seen: Counter[str] = Counter()
    samples = 0
    while time.perf_counter() < end:
        for row in await conn.fetch(BACKENDS):
            state = row["state"] or "unknown"
            if row["wait_event_type"] and state != "idle":
                state += f" / {row['wait_event_type']}:{row['wait_event']}"
            seen[state] += 1
        samples += 1
        await asyncio.sleep(every)
    return {
        "samples": samples,
        "mean_backends": {k: round(v / samples, 2) for k, v in seen.most_common()}
        if samples
        else {},
    }


async def measure(
    call: Call, args: argparse.Namespace, clients: int, monitor: ClusterMonitor, watch: Watch
) -> tuple[Measurement, dict[str, Any]]:
    """The run, and what PostgreSQL's backends did during its window."""
    window = time.perf_counter() + args.warmup
    m, backends = await asyncio.gather(
        drive(call, clients=clients, warmup=args.warmup, seconds=args.seconds, watch=watch),
        sample_backends(monitor.sampler, window, window + args.seconds),
    )
    return m, backends


def describe(
    m: Measurement,
    check: dict[str, Any],
    backends: dict[str, Any],
    *,
    per_call: int = 1,
) -> dict[str, Any]:
    """The measurement's summary; with `per_call` rows per call (a batch), rows per second and
    CPU per row too."""
    summary = m.summary()
    if per_call > 1:
        summary["rows_per_call"] = per_call
        summary["rows_per_second"] = round(m.ops_per_second * per_call, 1)
    per_second = m.ops_per_second * per_call
    if per_second:
        unit = "cpu_ms_per_row" if per_call > 1 else "cpu_ms_per_op"
        summary["cpu"][unit] = {
            name: round(cores * 1000 / per_second, 4)
            for name, cores in summary["cpu"].get("cores_used", {}).items()
        }
    return {**summary, "postgres_backends": backends, "check": check}


def report_progress(name: str, rate: float, unit: str) -> None:
    print(f"  {name:<24} {rate:>12.1f} {unit}", flush=True)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def postgres_ms_per_row(run: dict[str, Any]) -> float:
    return float(run["cpu"]["cpu_ms_per_row"]["postgres"])


def build_report(
    machine: dict[str, Any],
    config: dict[str, Any],
    runs: dict[str, dict[str, Any]],
    statements: dict[str, Any],
) -> dict[str, Any]:
    def rate(name: str) -> float:
        run = runs[name]
        return float(run.get("rows_per_second", run["ops_per_second"]))

    a_hot, a_spread, b = rate("a_hot"), rate("a_spread"), rate("b")
    headline = {
        "hot": ("json_pairs_hot", a_hot, "JSON pairs/s, one account, vs baseline A hot"),
        "spread": ("json_pairs_spread", a_spread, "JSON pairs/s, 1,000 accounts, vs A spread"),
        "ingest": ("ingest_1000", b, "events/s in 1,000-event batches vs baseline B COPY"),
    }
    ratios: dict[str, Any] = {
        name: {
            "measured": ratio(rate(run), against),
            "target": round(TARGETS[name], 4),
            "met": (ratio(rate(run), against) or 0) >= TARGETS[name],
            "what": what,
        }
        for name, (run, against, what) in headline.items()
    }
    ratios["more"] = {
        "graphql_pairs_hot_vs_a_hot": ratio(rate("graphql_pairs_hot"), a_hot),
        "graphql_pairs_spread_vs_a_spread": ratio(rate("graphql_pairs_spread"), a_spread),
        "ingest_100_vs_b": ratio(rate("ingest_100"), b),
        "graphql_vs_json_hot": ratio(rate("graphql_pairs_hot"), rate("json_pairs_hot")),
        "graphql_vs_json_spread": ratio(rate("graphql_pairs_spread"), rate("json_pairs_spread")),
        "json_hot_vs_json_spread": ratio(rate("json_pairs_hot"), rate("json_pairs_spread")),
        # A pair is two requests: half the bare HTTP rate bounds pairs/s on the server's core.
        "pairs_ceiling_from_http_floor_vs_a_hot": ratio(rate("http_floor") / 2, a_hot),
        "json_pairs_hot_vs_pairs_ceiling": ratio(rate("json_pairs_hot"), rate("http_floor") / 2),
        # What PostgreSQL spends on one booked event against one copied row, and the events/s
        # it could reach with every core of the machine to itself at that cost: a bound on
        # ingest that no work in the server can lift.
        "ingest_postgres_cpu_per_event_vs_copy_per_row": ratio(
            postgres_ms_per_row(runs["ingest_1000"]), postgres_ms_per_row(runs["b"])
        ),
        "ingest_ceiling_from_postgres_cpu_vs_b": ratio(
            machine["cores"] * 1000 / postgres_ms_per_row(runs["ingest_1000"]), b
        ),
    }
    # The same work against the minimal service (metering_minimal.py): where the aims stand
    # against the most a Python service on this stack reaches, and Tollgate against that.
    minimal = {
        "pairs_hot": ("json_pairs_hot", a_hot),
        "pairs_spread": ("json_pairs_spread", a_spread),
        "ingest_1000": ("ingest_1000", b),
    }
    for name, (ours, against) in minimal.items():
        ratios["more"][f"minimal_{name}_vs_{'b' if 'ingest' in name else 'a'}"] = ratio(
            rate(f"minimal_{name}"), against
        )
        ratios["more"][f"{ours}_vs_minimal"] = ratio(rate(ours), rate(f"minimal_{name}"))
    tollgate = [name for name in runs if name.startswith(("json_", "graphql_", "ingest_"))]
    return {
        "machine": machine,
        "config": config,
        "baseline": {
            "a_hot_transactions_per_second": a_hot,
            "a_spread_transactions_per_second": a_spread,
            "b_copy_rows_per_second": b,
            "consistent": all(runs[n]["check"]["consistent"] for n in ("a_hot", "a_spread", "b")),
        },
        "tollgate": {
            "http_floor_requests_per_second": rate("http_floor"),
            "pairs_per_second": {
                api: {kind: rate(f"{api}_pairs_{kind}") for kind in ("hot", "spread")}
                for api in ("json", "graphql")
            },
            "ingest_events_per_second": {
                f"batch_{size}": rate(f"ingest_{size}") for size in INGEST_BATCHES
            },
            "consistent": all(runs[n]["check"]["consistent"] for n in tollgate),
        },
        "minimal": {
            "pairs_per_second": {kind: rate(f"minimal_pairs_{kind}") for kind in ("hot", "spread")},
            "ingest_events_per_second": {
                f"batch_{size}": rate(f"minimal_ingest_{size}") for size in INGEST_BATCHES
            },
            "consistent": all(
                run["check"]["consistent"] for n, run in runs.items() if n.startswith("minimal_")
            ),
        },
        "ratios": ratios,
        "latency_ms": {name: run["latency_ms"] for name, run in runs.items()},
        "batches_formed": {name: runs[name]["batches_formed"] for name in tollgate},
        "statements": statements,
        "runs": runs,
    }


ROWS = (
    ("a_hot", "baseline A hot", "txn/s"),
    ("a_spread", "baseline A spread", "txn/s"),
    ("b", "baseline B COPY x1000", "rows/s"),
    ("http_floor", "HTTP floor (401)", "req/s"),
    ("json_pairs_hot", "JSON pairs hot", "pairs/s"),
    ("json_pairs_spread", "JSON pairs spread", "pairs/s"),
    ("graphql_pairs_hot", "GraphQL pairs hot", "pairs/s"),
    ("graphql_pairs_spread", "GraphQL pairs spread", "pairs/s"),
    ("ingest_100", "ingest x100 spread", "events/s"),
    ("ingest_1000", "ingest x1000 spread", "events/s"),
    ("minimal_pairs_hot", "minimal pairs hot", "pairs/s"),
    ("minimal_pairs_spread", "minimal pairs spread", "pairs/s"),
    ("minimal_ingest_100", "minimal ingest x100", "events/s"),
    ("minimal_ingest_1000", "minimal ingest x1000", "events/s"),
)


def print_table(report: dict[str, Any]) -> None:
    runs = report["runs"]
    header = (
        f"{'measurement':<23}{'rate':>11} {'unit':<9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'consistent':>12}   cores: generator/server/postgres/other"
    )
    print()
    print(header)
    print("-" * len(header))
    for name, label, unit in ROWS:
        r = runs[name]
        used = {**r["cpu"]["cores_used"], "other": r["cpu"]["cores_busy_unaccounted"]}
        cores = "/".join(
            f"{used[k]:.2f}" if k in used else "-"
            for k in ("load_generator", "server", "postgres", "other")
        )
        print(
            f"{label:<23}{r.get('rows_per_second', r['ops_per_second']):>11.1f} {unit:<9}"
            f"{r['latency_ms']['p50']:>9.2f}{r['latency_ms']['p99']:>9.2f}"
            f"{str(r['check']['consistent']).lower():>12}   {cores}"
        )
    print()
    print(f"{'ratio':<10}{'measured':>10}{'target':>9}  what")
    for name in ("hot", "spread", "ingest"):
        r = report["ratios"][name]
        measured = f"{r['measured']:.3f}x" if r["measured"] is not None else "-"
        mark = "" if r["met"] else "  (below target)"
        print(f"{name:<10}{measured:>10}{r['target']:>8.2f}x  {r['what']}{mark}")
    more = report["ratios"]["more"]
    print("also: " + ", ".join(f"{k} {v}" for k, v in more.items()))
    print()
    for name, formed in report["batches_formed"].items():
        parts = [
            f"{step} {f['transactions']} txns, mean {f['mean']} (p50 {f['p50']}, max {f['max']})"
            for step, f in formed.items()
            if f.get("transactions")
        ]
        print(f"batches {name:<22} " + "; ".join(parts))
    print()
    print("PostgreSQL client backends during each window, mean number by state / wait:")
    for name, _, _ in ROWS:
        states = runs[name]["postgres_backends"]["mean_backends"]
        print(f"  {name:<22} " + ", ".join(f"{k} {v}" for k, v in list(states.items())[:4]))
    busy = [name for name, _, _ in ROWS if runs[name]["cpu"]["cores_busy_unaccounted"] > 0.25]
    if busy:
        print(
            "other work on the machine during " + ", ".join(busy) + ": see"
            " cpu.busiest_other_processes; those figures are less reliable"
        )
    print()
    for name, probe in report["statements"].items():
        print(
            f"statements {name:<38} {probe['statements']:>5} in {probe['transactions']}"
            f" transaction(s)"
        )


async def run(
    args: argparse.Namespace, workdir: Path, urls: tuple[str, str, str]
) -> dict[str, Any]:
    return await in_fresh_database(
        urls[0], DB_SUFFIX, lambda url: run_in(url, args, workdir, urls), keep=args.keep_db
    )


async def run_in(
    url: str, args: argparse.Namespace, workdir: Path, urls: tuple[str, str, str]
) -> dict[str, Any]:
    started = time.perf_counter()
    _, redis_url, source = urls
    await asyncio.to_thread(migrate.upgrade, url)
    machine = await machine_facts(url, source)
    # The server's own settings are the defaults; the in-process probe mirrors them.
    settings = Settings(database_url=url, redis_url=redis_url, env="production")
    sets = account_sets("mtr")
    print(f"PostgreSQL {machine['postgres']['version']} ({source}); seeding, then measuring:")
    secret = await seed_tollgate(settings, [*sets["hot"], *sets["spread"]])
    monitor = ClusterMonitor(
        await asyncpg.connect(plain_url(url)), await asyncpg.connect(plain_url(url))
    )
    try:
        spread_ids = await account_ids(monitor.conn, sets["spread"])
        runs = await run_baselines(url, args, monitor, spread_ids)
        statements = await probe_statements(settings, secret, sets["hot"][0], sets["spread"])
        tollgate_runs, server_setup = await run_tollgate(
            settings, secret, sets, args, workdir, monitor
        )
        runs |= tollgate_runs
        minimal_runs, minimal_setup = await run_minimal(url, sets, args, workdir, monitor)
        runs |= minimal_runs
    finally:
        await monitor.conn.close()
        await monitor.sampler.close()
    config = {
        "seconds": args.seconds,
        "warmup_seconds": args.warmup,
        "clients": args.clients,
        "senders": args.senders,
        "spread_accounts": SPREAD_ACCOUNTS,
        "credits_per_account": CREDITS,
        "model": f"{PROVIDER}/{MODEL}: $1 per 1M input, $2 per 1M output, 1 credit = $0.001",
        "pair": (
            f"authorize {INPUT_TOKENS} input + {MAX_OUTPUT_TOKENS} max output tokens (3 credits"
            f" held), then record {INPUT_TOKENS} input + 0..{MAX_OUTPUT_TOKENS} output tokens"
            " with its reservationId (1..3 credits)"
        ),
        "ingest": f"POST /api/v1/usage, batches of {list(INGEST_BATCHES)} events, each for a"
        " random one of the spread accounts, no hold",
        "baseline_a": "one asyncpg connection per client; BEGIN, conditional UPDATE ... RETURNING,"
        " INSERT of a usage row, COMMIT per call; load generator unpinned",
        "baseline_b": f"asyncpg copy_records_to_table of {COPY_BATCH} rows per call into a copy"
        " of usage_events (same columns, indexes and constraints), one connection per sender;"
        " load generator unpinned",
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "tollgate": server_setup,
        "minimal": minimal_setup,
        "http_client": "HttpConnection (bench/common.py): one keep-alive HTTP/1.1 connection per"
        " client, one request at a time on it",
        "total_run_seconds": round(time.perf_counter() - started, 1),
    }
    return build_report(machine, config, runs, statements)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--clients", type=int, default=16, help="concurrent pair clients")
    parser.add_argument("--senders", type=int, default=4, help="concurrent batch senders")
    parser.add_argument(
        "--keep-db", action="store_true", help="leave the benchmark database for inspection"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.warmup < 0 or args.clients < 1 or args.senders < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, --clients and --senders >= 1")
    return args


def main() -> None:
    args = parse_args()
    write_report("metering.json", lambda workdir, urls: run(args, workdir, urls), print_table)


if __name__ == "__main__":
    main()
