"""Deductions per second: a bare asyncpg UPDATE, the ledger's service layer, and the GraphQL API
over real HTTP, each on one hot account and spread over many.

    .venv/bin/python bench/ledger.py [--seconds N] [--clients N] [--warmup N]

Figures go to bench/results/ledger.json and are printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import psutil

# Run as a script, this folder is on the import path.
from common import (
    Measurement,
    Watch,
    drive,
    in_fresh_database,
    machine_facts,
    plain_url,
    write_report,
)
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tollgate import migrate
from tollgate.accounts.models import Account
from tollgate.accounts.service import NewAccount, create_account
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.db import Database, create_engine
from tollgate.ledger import service
from tollgate.ledger.requests import DeductRequest, GrantRequest

# Per process, so that two runs against one shared server never drop each other's database.
DB_SUFFIX = f"_tollgate_bench_{os.getpid()}"
SPREAD_ACCOUNTS = 1_000
# Far more than any run can spend, so that a shortage can only mean a bug.
CREDITS = 10**12
ADMIN_KEY = "tgk_bench_" + "k" * 40
SERVER_CPU, CLIENT_CPU = 0, 1

DEDUCT = """
mutation Deduct($input: DeductCreditsInput!) {
  deductCredits(input: $input) {
    __typename
    ... on LedgerSuccess { transactionId balance { available } }
  }
}
"""

Call = Callable[[int], Awaitable[str]]


# --- ledger bookkeeping, read straight from the tables -------------------------------------------

LEDGER_STATE = """
WITH w AS (
    SELECT w.id, w.balance FROM wallets w JOIN accounts a ON a.id = w.account_id
    WHERE a.external_id = ANY($1::text[])
)
SELECT
    (SELECT coalesce(sum(balance), 0) FROM w) AS balance,
    (SELECT coalesce(sum(remaining), 0) FROM credit_grants
        WHERE wallet_id IN (SELECT id FROM w)) AS grants,
    (SELECT coalesce(sum(amount), 0) FROM ledger_entries
        WHERE wallet_id IN (SELECT id FROM w)) AS entries,
    (SELECT count(*) FROM ledger_transactions t JOIN accounts a ON a.id = t.account_id
        WHERE a.external_id = ANY($1::text[]) AND t.kind = 'DEDUCT') AS deductions
"""


class Monitor:
    """A connection of its own, outside every measured pool: reads the ledger straight from the
    tables (independent of Tollgate's code, so a bug there cannot hide itself) and finds the
    PostgreSQL processes whose CPU time a window should record."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def ledger_state(self, accounts: list[str]) -> dict[str, int]:
        row = await self.conn.fetchrow(LEDGER_STATE, accounts)
        assert row is not None
        return {key: int(value) for key, value in row.items()}

    async def postgres_processes(self) -> list[psutil.Process]:
        """This database's backends and the server's own workers (WAL writer, checkpointer...),
        when the server runs on this machine."""
        rows = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE (datname = current_database() OR datname IS NULL) AND pid <> pg_backend_pid()"
        )
        found = []
        for row in rows:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(row["pid"])
                # A remote server's pids mean nothing here.
                if proc.name().startswith("postgres"):
                    found.append(proc)
        return found

    def watch(self, **extra: psutil.Process) -> Watch:
        async def groups() -> dict[str, list[psutil.Process]]:
            return {"postgres": await self.postgres_processes()} | {
                name: [proc] for name, proc in extra.items()
            }

        return groups


def check_ledger(before: dict[str, int], after: dict[str, int], succeeded: int) -> dict[str, Any]:
    """Every success is one credit gone from the cached balance, the grants and the entries, and
    one DEDUCT transaction; and the cached balance still equals what the ledger says."""
    drops = {
        "balance_drop": before["balance"] - after["balance"],
        "grants_drop": before["grants"] - after["grants"],
        "entries_drop": before["entries"] - after["entries"],
        "deductions_booked": after["deductions"] - before["deductions"],
    }
    consistent = all(v == succeeded for v in drops.values()) and (
        after["balance"] == after["grants"] == after["entries"]
    )
    return {"consistent": consistent, "successes": succeeded, **drops}


# --- baseline ------------------------------------------------------------------------------------

BASELINE_UPDATE = "UPDATE balances SET balance = balance - 1 WHERE id = $1 RETURNING balance"


def baseline_call(conns: list[asyncpg.Connection], pick: Callable[[], int]) -> Call:
    async def call(worker: int) -> str:
        conn = conns[worker]
        async with conn.transaction():
            await conn.fetchval(BASELINE_UPDATE, pick())
        return "ok"

    return call


async def run_baseline(
    url: str, args: argparse.Namespace, monitor: Monitor
) -> dict[str, dict[str, Any]]:
    setup = await asyncpg.connect(plain_url(url))
    await setup.execute(
        "CREATE TABLE balances (id integer PRIMARY KEY, balance bigint NOT NULL);"
        f"INSERT INTO balances SELECT g, {CREDITS} FROM generate_series(1, {SPREAD_ACCOUNTS}) g;"
    )
    await setup.execute("VACUUM ANALYZE balances")
    # One connection per client: nothing between the client and the server but the protocol.
    conns = [await asyncpg.connect(plain_url(url)) for _ in range(args.clients)]
    targets: dict[str, Callable[[], int]] = {
        "hot": lambda: 1,
        "spread": lambda: random.randint(1, SPREAD_ACCOUNTS),
    }
    runs: dict[str, dict[str, Any]] = {}
    try:
        for kind, pick in targets.items():
            before = await setup.fetchval("SELECT sum(balance) FROM balances")
            m = await measure(baseline_call(conns, pick), args, monitor.watch())
            after = await setup.fetchval("SELECT sum(balance) FROM balances")
            runs[kind] = describe(m, {"consistent": before - after == m.total_ok})
            report_progress("baseline", kind, m)
    finally:
        for conn in (*conns, setup):
            await conn.close()
    return runs


# --- Tollgate: seeding and the service layer ----------------------------------------------------


def account_sets(prefix: str) -> dict[str, list[str]]:
    return {
        "hot": [f"{prefix}-hot"],
        "spread": [f"{prefix}-{i:04d}" for i in range(SPREAD_ACCOUNTS)],
    }


async def seed(db: Database, external_ids: list[str], *, chunk: int = 50) -> None:
    """Create the accounts and grant each plenty of credits, a chunk per transaction."""

    async def one_chunk(ids: list[str]) -> None:
        async with db.transaction() as session:
            for external_id in ids:
                account = await create_account(session, NewAccount(external_id=external_id))
                assert isinstance(account, Account), account
                granted = await service.grant_credits(
                    session,
                    GrantRequest(
                        amount=CREDITS,
                        source="PURCHASE",
                        idempotency_key=f"seed-{external_id}",
                        account_external_id=external_id,
                        reason="benchmark seed",
                    ),
                    actor="bench",
                )
                assert isinstance(granted, service.Booked), granted

    chunks = [external_ids[i : i + chunk] for i in range(0, len(external_ids), chunk)]
    # Bounded so that seeding never needs more connections than the pool has.
    gate = asyncio.Semaphore(8)

    async def gated(ids: list[str]) -> None:
        async with gate:
            await one_chunk(ids)

    await asyncio.gather(*(gated(c) for c in chunks))


def new_key() -> str:
    return str(uuid.uuid4())


def pick_from(accounts: list[str]) -> Callable[[], str]:
    if len(accounts) == 1:
        only = accounts[0]
        return lambda: only
    return lambda: random.choice(accounts)


def service_call(db: Database, accounts: list[str]) -> Call:
    pick = pick_from(accounts)

    async def call(_worker: int) -> str:
        request = DeductRequest(
            account_external_id=pick(), amount=1, idempotency_key=new_key(), reason="bench"
        )
        async with db.transaction() as session:
            result = await service.deduct_credits(session, request, actor="bench")
        return "ok" if isinstance(result, service.Booked) else type(result).__name__

    return call


@contextlib.asynccontextmanager
async def counting_statements() -> AsyncIterator[dict[str, Any]]:
    """Statements and transactions issued in the block: through every SQLAlchemy engine in this
    process, and the plain SQL the hot paths send straight to asyncpg (`tollgate.db.driver`).
    BEGIN and COMMIT are not statements here, but each is one more round trip."""
    seen: dict[str, Any] = {"statements": [], "transactions": 0}

    def note(statement: str, suffix: str) -> None:
        head = " ".join(statement.split())
        seen["statements"].append(head[:90] + suffix)

    def on_execute(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        note(statement, " [executemany]" if many else "")

    def on_begin(conn: Any) -> None:
        seen["transactions"] += 1

    # SQLAlchemy runs its statements as prepared statements, not through _execute: what goes
    # through _execute is the plain SQL, counted once each.
    plain = asyncpg.connection.Connection._execute

    async def counted(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        note(query, " [asyncpg]")
        return await plain(self, query, *args, **kwargs)

    event.listen(Engine, "before_cursor_execute", on_execute)
    event.listen(Engine, "begin", on_begin)
    asyncpg.connection.Connection._execute = counted
    try:
        yield seen
    finally:
        asyncpg.connection.Connection._execute = plain
        event.remove(Engine, "before_cursor_execute", on_execute)
        event.remove(Engine, "begin", on_begin)


def tally(seen: dict[str, Any]) -> dict[str, Any]:
    statements = seen["statements"]
    return {
        "statements": len(statements),
        "transactions": seen["transactions"],
        # BEGIN and COMMIT of each transaction on top of the statements.
        "round_trips": len(statements) + 2 * seen["transactions"],
        "statement_list": statements,
    }


async def probe_service(db: Database, account: str, calls: int = 200) -> dict[str, Any]:
    call = service_call(db, [account])
    # The first call on a connection also prepares statements and loads type codecs.
    for _ in range(3):
        assert await call(0) == "ok"
    async with counting_statements() as seen:
        assert await call(0) == "ok"
    # One client, back to back: the cost of a deduction with no contention at all.
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        assert await call(0) == "ok"
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        **tally(seen),
        "single_client": {
            "calls": calls,
            "wall_ms_per_call": round(wall * 1000 / calls, 3),
            "python_cpu_ms_per_call": round(cpu * 1000 / calls, 3),
        },
    }


async def run_service(
    settings: Settings, args: argparse.Namespace, monitor: Monitor
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    db = Database(create_engine(settings))
    runs: dict[str, dict[str, Any]] = {}
    try:
        sets = account_sets("svc")
        await seed(db, [*sets["hot"], *sets["spread"], "svc-probe"])
        probe = await probe_service(db, "svc-probe")
        for kind, accounts in sets.items():
            before = await monitor.ledger_state(accounts)
            m = await measure(service_call(db, accounts), args, monitor.watch())
            after = await monitor.ledger_state(accounts)
            runs[kind] = describe(m, check_ledger(before, after, m.total_ok))
            report_progress("service", kind, m)
    finally:
        await db.dispose()
    return runs, probe


# --- Tollgate: GraphQL over HTTP -----------------------------------------------------------------


def graphql_call(http: httpx.AsyncClient, accounts: list[str]) -> Call:
    pick = pick_from(accounts)

    async def call(_worker: int) -> str:
        variables = {
            "input": {
                "accountExternalId": pick(),
                "amount": 1,
                "idempotencyKey": new_key(),
                "reason": "bench",
            }
        }
        response = await http.post("/graphql", json={"query": DEDUCT, "variables": variables})
        if response.status_code != 200:
            return f"http_{response.status_code}"
        body = response.json()
        if body.get("errors"):
            return "graphql_error"
        typename = str(body["data"]["deductCredits"]["__typename"])
        return "ok" if typename == "LedgerSuccess" else typename

    return call


async def probe_graphql(settings: Settings, account: str) -> dict[str, Any]:
    """The same request the HTTP run sends, through the real app in this process, so that every
    statement it causes can be counted."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {settings.bootstrap_admin_key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://probe", headers=headers
        ) as http:
            call = graphql_call(http, [account])
            for _ in range(3):
                assert await call(0) == "ok"
            async with counting_statements() as seen:
                assert await call(0) == "ok"
    return tally(seen)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def server_command(port: int, pin: bool) -> tuple[list[str], bool]:
    """The real CLI, as an operator would start it, and whether it is pinned: with taskset, since
    setting the affinity after the start would miss threads the interpreter has spawned."""
    cli = Path(sys.executable).with_name("tollgate")
    args = ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)]
    command = (
        [str(cli), *args]
        if cli.exists()
        else [sys.executable, "-c", "from tollgate.cli import main; main()", *args]
    )
    return on_server_cpu(command, pin)


def on_server_cpu(command: list[str], pin: bool) -> tuple[list[str], bool]:
    """`command` pinned to the server's CPU when asked and possible, and whether it is."""
    if pin and (taskset := shutil.which("taskset")):
        return [taskset, "-c", str(SERVER_CPU), *command], True
    return command, False


def open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


@contextlib.asynccontextmanager
async def tollgate_server(
    settings: Settings, workdir: Path, pin: bool
) -> AsyncIterator[tuple[str, psutil.Process, dict[str, Any]]]:
    port = free_port()
    command, pinned = server_command(port, pin)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "TOLLGATE_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "TOLLGATE_ENV": "production",
        "TOLLGATE_DATA_DIR": str(workdir / "server-data"),
    }
    base = f"http://127.0.0.1:{port}"
    async with running("tollgate serve", command, base, workdir / "server.log", env) as proc:
        setup = {
            "command": [Path(part).name if os.sep in part else part for part in command],
            "server_cpus": [SERVER_CPU] if pinned else "unpinned",
            "tollgate_env": env["TOLLGATE_ENV"],
            "db_pool_size": int(env.get("TOLLGATE_DB_POOL_SIZE") or 20),
            "db_max_overflow": int(env.get("TOLLGATE_DB_MAX_OVERFLOW") or 20),
        }
        yield base, psutil.Process(proc.pid), setup


@contextlib.asynccontextmanager
async def running(
    name: str, command: list[str], base: str, log_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A server process, once its /healthz answers; stopped when the block ends."""
    with open_log(log_path) as log:
        proc = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    try:
        await wait_healthy(name, base, proc, log_path)
        yield proc
    finally:
        if proc.returncode is None:
            # SIGINT is uvicorn's graceful shutdown: the lifespan closes the pool.
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_healthy(
    name: str, base: str, proc: asyncio.subprocess.Process, log_path: Path
) -> None:
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"{name} exited early:\n{log_tail(log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{name} did not become healthy:\n{log_tail(log_path)}")


@contextlib.contextmanager
def pinned_to(cpu: int | None) -> Iterator[None]:
    """Pin this thread (the event loop's) for the block; a no-op when `cpu` is None."""
    if cpu is None:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


async def run_graphql(
    settings: Settings, args: argparse.Namespace, workdir: Path, monitor: Monitor
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    db = Database(create_engine(settings))
    try:
        sets = account_sets("gql")
        await seed(db, [*sets["hot"], *sets["spread"], "gql-probe"])
    finally:
        await db.dispose()
    probe = await probe_graphql(settings, "gql-probe")

    pin = can_pin()
    runs: dict[str, dict[str, Any]] = {}
    async with tollgate_server(settings, workdir, pin) as (base, server, server_setup):
        limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        # Generous: a client-side timeout on a request the server then commits would look like
        # a lost deduction.
        async with httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=60
        ) as http:
            with pinned_to(CLIENT_CPU if pin else None):
                for kind, accounts in sets.items():
                    before = await monitor.ledger_state(accounts)
                    m = await measure(
                        graphql_call(http, accounts), args, monitor.watch(server=server)
                    )
                    after = await monitor.ledger_state(accounts)
                    runs[kind] = describe(m, check_ledger(before, after, m.total_ok))
                    report_progress("graphql", kind, m)
    server_setup["load_generator_cpus"] = [CLIENT_CPU] if pin else "unpinned"
    return runs, probe, server_setup


# --- measuring and reporting ---------------------------------------------------------------------


async def measure(call: Call, args: argparse.Namespace, watch: Watch) -> Measurement:
    return await drive(
        call, clients=args.clients, warmup=args.warmup, seconds=args.seconds, watch=watch
    )


def describe(m: Measurement, check: dict[str, Any]) -> dict[str, Any]:
    summary = m.summary()
    if m.ops_per_second:
        # What one successful deduction cost each party, in CPU time.
        summary["cpu"]["cpu_ms_per_op"] = {
            name: round(cores * 1000 / m.ops_per_second, 3)
            for name, cores in summary["cpu"].get("cores_used", {}).items()
        }
    return {**summary, "ledger_check": check}


def report_progress(layer: str, kind: str, m: Measurement) -> None:
    print(f"  {layer:<8} {kind:<6} {m.ops_per_second:>10.1f} ops/s", flush=True)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def build_report(
    machine: dict[str, Any],
    config: dict[str, Any],
    runs: dict[str, dict[str, dict[str, Any]]],
    queries: dict[str, Any],
) -> dict[str, Any]:
    ops = {
        layer: {kind: r["ops_per_second"] for kind, r in by_kind.items()}
        for layer, by_kind in runs.items()
    }
    ratios: dict[str, float | None] = {}
    for layer, against in (
        ("service", "baseline"),
        ("graphql", "baseline"),
        ("graphql", "service"),
    ):
        for kind in ("hot", "spread"):
            ratios[f"{layer}_{kind}_vs_{against}_{kind}"] = ratio(
                ops[layer][kind], ops[against][kind]
            )
    for layer in ("baseline", "service", "graphql"):
        ratios[f"{layer}_hot_vs_{layer}_spread"] = ratio(ops[layer]["hot"], ops[layer]["spread"])

    def consistent(layer: str) -> bool:
        return all(r["ledger_check"]["consistent"] for r in runs[layer].values())

    return {
        "machine": machine,
        "config": config,
        "baseline": ops["baseline"],
        "service": {**ops["service"], "consistent": consistent("service")},
        "graphql": {**ops["graphql"], "consistent": consistent("graphql")},
        "ratios": ratios,
        "latency_ms": {
            layer: {kind: r["latency_ms"] for kind, r in by_kind.items()}
            for layer, by_kind in runs.items()
        },
        "queries_per_deduction": queries,
        "runs": runs,
    }


def print_table(report: dict[str, Any]) -> None:
    runs = report["runs"]
    header = (
        f"{'layer':<9}{'rows':<8}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'vs base':>9}{'consistent':>12}   cores used: generator/server/postgres/other"
    )
    print()
    print(header)
    print("-" * len(header))
    for layer in ("baseline", "service", "graphql"):
        for kind in ("hot", "spread"):
            r = runs[layer][kind]
            base = runs["baseline"][kind]["ops_per_second"]
            used = {**r["cpu"]["cores_used"], "other": r["cpu"]["cores_busy_unaccounted"]}
            cores = "/".join(
                f"{used[k]:.2f}" if k in used else "-"
                for k in ("load_generator", "server", "postgres", "other")
            )
            print(
                f"{layer:<9}{kind:<8}{r['ops_per_second']:>10.1f}"
                f"{r['latency_ms']['p50']:>9.2f}{r['latency_ms']['p99']:>9.2f}"
                f"{r['ops_per_second'] / base if base else 0:>8.3f}x"
                f"{str(r['ledger_check']['consistent']).lower():>12}   {cores}"
            )
    q = report["queries_per_deduction"]
    print()
    for layer in ("service", "graphql"):
        print(
            f"{layer}: {q[layer]['statements']} statements in {q[layer]['transactions']}"
            f" transaction(s), {q[layer]['round_trips']} round trips per deduction"
        )
    alone = q["service"]["single_client"]
    print(
        f"service, one client back to back: {alone['wall_ms_per_call']} ms per deduction,"
        f" {alone['python_cpu_ms_per_call']} ms of it Python CPU"
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
    # Each service-layer client holds a connection for its whole transaction.
    settings = Settings(
        database_url=url,
        redis_url=redis_url,
        env="production",
        bootstrap_admin_key=ADMIN_KEY,
        db_pool_size=args.clients,
        db_max_overflow=args.clients,
    )
    print(f"PostgreSQL {machine['postgres']['version']} ({source}); measuring:", flush=True)
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    monitor = Monitor(await asyncpg.connect(plain_url(url)))
    try:
        runs["baseline"] = await run_baseline(url, args, monitor)
        runs["service"], service_probe = await run_service(settings, args, monitor)
        # The server sizes its pool from its own settings; the probe app mirrors the defaults.
        runs["graphql"], graphql_probe, server_setup = await run_graphql(
            replace(settings, db_pool_size=20, db_max_overflow=20), args, workdir, monitor
        )
    finally:
        await monitor.conn.close()
    config = {
        "seconds": args.seconds,
        "warmup_seconds": args.warmup,
        "clients": args.clients,
        "spread_rows": SPREAD_ACCOUNTS,
        "amount_per_deduction": 1,
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "baseline": "one asyncpg connection per client; BEGIN, the UPDATE, COMMIT per call",
        "service": "deduct_credits in Database.transaction(), pool = clients + clients overflow",
        "graphql": server_setup,
        "total_run_seconds": round(time.perf_counter() - started, 1),
    }
    queries = {"service": service_probe, "graphql": graphql_probe}
    return build_report(machine, config, runs, queries)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--keep-db", action="store_true", help="leave the benchmark database for inspection"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.warmup < 0 or args.clients < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, --clients >= 1")
    return args


def main() -> None:
    args = parse_args()
    write_report("ledger.json", lambda workdir, urls: run(args, workdir, urls), print_table)


if __name__ == "__main__":
    main()
