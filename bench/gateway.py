"""Gateway overhead: requests per second and the latency a gateway adds to an OpenAI-compatible
chat completion, for Tollgate (metering and billing on), a minimal forwarder and a LiteLLM proxy,
each against the same fake upstream, and the upstream called directly.

    .venv/bin/python bench/gateway.py [--seconds N] [--warmup N] [--skip-litellm]

Figures go to bench/results/gateway.json and are printed as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import venv
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import redis.asyncio as aioredis

# Run as a script, this folder is on the import path.
from common import (
    HttpConnection,
    Measurement,
    Watch,
    drive,
    in_fresh_database,
    machine_facts,
    plain_url,
    write_report,
)
from gateway_servers import COMPLETION_TOKENS, PROMPT_TOKENS, REPLY
from ledger import (
    ADMIN_KEY,
    CLIENT_CPU,
    SERVER_CPU,
    can_pin,
    counting_statements,
    free_port,
    pinned_to,
    tally,
    tollgate_server,
)
from metering import ClusterMonitor

from tollgate import migrate
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.crypto import generate_key
from tollgate.gateway import upstream as gateway_upstream

BENCH = Path(__file__).resolve().parent
SERVERS = BENCH / "gateway_servers.py"
LITELLM_VENV = BENCH / ".venv-litellm"
# Per process, so that two runs against one shared server never drop each other's database.
DB_SUFFIX = f"_tollgate_bench_gateway_{os.getpid()}"

MODEL, ACCOUNT, PROVIDER = "bench-model", "gateway-bench", "openai"
# Far more than any run can spend, so that a refusal can only mean a bug.
CREDITS = 10**12
# $1 per million input and $2 per million output tokens: 25 in + 11 out is 47 micro-USD a call.
INPUT_PER_MILLION, OUTPUT_PER_MILLION = 1, 2
COST_USD = (PROMPT_TOKENS * INPUT_PER_MILLION + COMPLETION_TOKENS * OUTPUT_PER_MILLION) / 1e6
UPSTREAM_KEY = "sk-bench-upstream"
LITELLM_MASTER_KEY = "sk-bench-litellm-master"
PATH = "/v1/chat/completions"
REQUEST = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
    "max_tokens": 50,
}
STREAM_REQUEST = {**REQUEST, "stream": True, "stream_options": {"include_usage": True}}
# Between the upstream's stream events, after the first: a stream lasts about 60 ms, so that a
# gateway holding events back shows in time to first token.
CHUNK_DELAY = 0.005
AIMS = {
    "tollgate_rps_per_core_vs_litellm": 10.0,
    "tollgate_added_p50_vs_litellm": 0.2,
    "tollgate_rps_vs_forwarder": 0.5,
}
LITELLM_HOW = (
    "LiteLLM proxy, one uvicorn worker, started offline without a database: a master key instead"
    " of virtual keys (its keys and per-key budgets need Prisma, which downloads an engine at"
    " start), an in-memory provider budget (router_settings.provider_budget_config) in place of"
    " per-key budgets, LITELLM_LOCAL_MODEL_COST_MAP=True, LITELLM_LOG=ERROR"
)

Call = Callable[[int], Awaitable[str | tuple[str, float]]]


class Unavailable(Exception):
    """LiteLLM could not be installed or started; the message says why."""


# --- processes -----------------------------------------------------------------------------------


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """With taskset, so that threads the program starts are pinned too."""
    if cpu is not None and (taskset := shutil.which("taskset")):
        return [taskset, "-c", str(cpu), *command]
    return command


def tree(proc: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [proc, *proc.children(recursive=True)]
    return [proc]


@dataclass
class Served:
    name: str
    port: int
    proc: asyncio.subprocess.Process
    log: Path
    command: list[str]

    @property
    def process(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextlib.asynccontextmanager
async def serve(
    name: str,
    command: list[str],
    port: int,
    ready: str,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    start_within: float = 60,
) -> AsyncIterator[Served]:
    """Start `command`, wait until GET `ready` answers 200, stop it (SIGINT, then SIGKILL) when
    the block ends."""
    log = workdir / f"{name}.log"
    run_dir = workdir / name
    run_dir.mkdir(exist_ok=True)
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env, cwd=run_dir
        )
    served = Served(name, port, proc, log, command)
    try:
        deadline = time.monotonic() + start_within
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            while True:
                if proc.returncode is not None:
                    raise Unavailable(f"{name} exited at start:\n{served.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(ready)).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise Unavailable(
                        f"{name} did not answer in {start_within:.0f} s:\n{served.tail()}"
                    )
                await asyncio.sleep(0.2)
        yield served
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def servers_command(role: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, str(SERVERS), role, "--port", str(port), *extra]


# --- LiteLLM -------------------------------------------------------------------------------------


def litellm_version() -> str | None:
    """The installed version, when the proxy's own dependencies are there too."""
    python = LITELLM_VENV / "bin" / "python"
    if not (python.exists() and (LITELLM_VENV / "bin" / "litellm").exists()):
        return None
    probe = "import importlib.metadata as m, fastapi, uvicorn, yaml; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def ensure_litellm() -> dict[str, Any]:
    """LiteLLM's proxy in a virtualenv of its own, installed from PyPI the first time (about
    740 MB) and reused after: it must never become one of the project's dependencies."""
    if version := litellm_version():
        return {"version": version, "installed_now": False}
    print(f"installing litellm[proxy] into {LITELLM_VENV} (about 740 MB, once)", flush=True)
    started = time.perf_counter()
    venv.EnvBuilder(with_pip=True, clear=True).create(LITELLM_VENV)
    done = subprocess.run(
        [
            str(LITELLM_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "litellm[proxy]",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise Unavailable(
            f"pip install litellm[proxy] failed:\n{(done.stderr or done.stdout)[-2000:]}"
        )
    version = litellm_version()
    if version is None:
        raise Unavailable("litellm[proxy] installed, but its proxy cannot be imported")
    return {
        "version": version,
        "installed_now": True,
        "install_seconds": round(time.perf_counter() - started, 1),
    }


def litellm_config(upstream_port: int) -> dict[str, Any]:
    # YAML is a superset of JSON: the config is written as JSON.
    return {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                    "api_key": UPSTREAM_KEY,
                },
                # Priced like Tollgate's model, so that every call's cost is known.
                "model_info": {
                    "input_cost_per_token": INPUT_PER_MILLION / 1e6,
                    "output_cost_per_token": OUTPUT_PER_MILLION / 1e6,
                },
            }
        ],
        "router_settings": {
            "provider_budget_config": {"openai": {"budget_limit": 1e9, "time_period": "30d"}}
        },
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
        "litellm_settings": {"telemetry": False},
    }


def litellm_env() -> dict[str, str]:
    """The bench's own services must not leak in: with DATABASE_URL LiteLLM would go for Prisma."""
    dropped = ("DATABASE_URL", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "LITELLM_MASTER_KEY")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("TOLLGATE")}
    return env | {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "VIRTUAL_ENV": str(LITELLM_VENV),
    }


async def litellm_spend(port: int) -> float | None:
    """What LiteLLM's provider budget says was spent."""
    headers = {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}
    async with httpx.AsyncClient(timeout=10) as http:
        with contextlib.suppress(httpx.HTTPError, KeyError, TypeError, ValueError):
            answer = await http.get(f"http://127.0.0.1:{port}/provider/budgets", headers=headers)
            return float(answer.json()["providers"]["openai"]["spend"])
    return None


# --- the load ------------------------------------------------------------------------------------


def chat_call(conns: list[HttpConnection], stream: bool) -> Call:
    """One chat completion; "ok" only for the upstream's reply, whole (a stream to its end)."""
    body = STREAM_REQUEST if stream else REQUEST

    async def call(worker: int) -> str | tuple[str, float]:
        started = time.perf_counter()
        status, raw, first = await conns[worker].exchange(PATH, body)
        if status != 200:
            return f"http_{status}"
        if stream:
            if b"[DONE]" not in raw or b"lazy" not in raw:
                return "stream_incomplete"
            return "ok", first - started
        answer = json.loads(raw)
        if answer["choices"][0]["message"]["content"] != REPLY:
            return "wrong_reply"
        return "ok"

    return call


@dataclass
class Target:
    name: str
    port: int
    headers: dict[str, str]
    watch: Watch
    # Runs before and after each measurement: what was billed for it.
    books: Books | None = None
    setup: dict[str, Any] = field(default_factory=dict)


class Books:
    """Reads what a measurement was billed straight from the tables (or, for LiteLLM, from its
    provider budget) and holds it to the successes the load generator saw."""

    async def before(self) -> None: ...

    async def after(self, m: Measurement) -> dict[str, Any]:
        return {}


def wait_for_quiet(patience: float, threshold: float = 0.15) -> dict[str, float]:
    """Between runs every process of the bench is idle: cores busy then are other work on the
    machine. Wait (up to `patience` seconds) until fewer than `threshold` cores are, so that a
    run does not share its cores with it; what was seen goes into the run's figures."""
    started = time.monotonic()
    while True:
        busy = sum(psutil.cpu_percent(interval=0.5, percpu=True)) / 100
        waited = time.monotonic() - started
        if busy < threshold or waited >= patience:
            return {"cores_busy_before": round(busy, 2), "waited_seconds": round(waited, 1)}


async def measure(
    target: Target, clients: int, stream: bool, args: argparse.Namespace
) -> dict[str, Any]:
    conns = [HttpConnection("127.0.0.1", target.port, target.headers) for _ in range(clients)]
    quiet = await asyncio.to_thread(wait_for_quiet, args.quiet_wait)
    if target.books is not None:
        await target.books.before()
    try:
        m = await drive(
            chat_call(conns, stream),
            clients=clients,
            warmup=args.warmup,
            seconds=args.seconds,
            watch=target.watch,
        )
    finally:
        for conn in conns:
            conn.close()
    run = describe(m)
    run.update(clients=clients, stream=stream, machine_before=quiet)
    if target.books is not None:
        run["check"] = await target.books.after(m)
    label = f"{target.name} {'stream' if stream else 'whole'} x{clients}"
    line = f"  {label:<26} {m.ops_per_second:>9.1f} req/s  p50 {run['latency_ms']['p50']:.2f} ms"
    if stream:
        line += f"  first event p50 {run['first_event_ms']['p50']:.2f} ms"
    if "check" in run:
        line += f"  check {'ok' if run['check'].get('consistent') else 'FAILED'}"
    print(line, flush=True)
    return run


def describe(m: Measurement) -> dict[str, Any]:
    summary = m.summary()
    if m.ops_per_second:
        # What one successful call cost each party, in CPU time.
        summary["cpu"]["cpu_ms_per_request"] = {
            name: round(cores * 1000 / m.ops_per_second, 3)
            for name, cores in summary["cpu"].get("cores_used", {}).items()
        }
    return summary


async def measure_target(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for clients in args.concurrency:
        runs[f"whole_x{clients}"] = await measure(target, clients, False, args)
    for clients in args.stream_concurrency:
        runs[f"stream_x{clients}"] = await measure(target, clients, True, args)
    return runs


# --- Tollgate ------------------------------------------------------------------------------------

SEED = {
    "price": """mutation($input: UpsertModelPriceInput!) {
      upsertModelPrice(input: $input) { __typename }
    }""",
    "provider": """mutation($input: UpsertProviderInput!) {
      upsertProvider(input: $input) { __typename ... on ValidationFailed { field message } }
    }""",
    "account": """mutation($input: CreateAccountInput!) {
      createAccount(input: $input) { __typename }
    }""",
    "grant": """mutation($input: GrantCreditsInput!) {
      grantCredits(input: $input) { __typename }
    }""",
    "key": """mutation($input: CreateApiKeyInput!) {
      createApiKey(input: $input) { __typename ... on CreatedApiKey { secret } }
    }""",
}


async def seed_tollgate(base: str, upstream_port: int) -> str:
    """Through the admin API, as an operator would: the model's price, the fake upstream as its
    provider, an account with plenty of credits and a virtual key for it; the key's secret."""
    inputs = {
        "price": {
            "provider": PROVIDER,
            "model": MODEL,
            "aliases": [],
            "inputPerMillion": str(INPUT_PER_MILLION),
            "outputPerMillion": str(OUTPUT_PER_MILLION),
            "cachedInputPerMillion": "0.5",
            "perImage": "0",
            "perRequest": "0",
            "effectiveFrom": "2020-01-01T00:00:00Z",
        },
        "provider": {
            "name": PROVIDER,
            "baseUrl": f"http://127.0.0.1:{upstream_port}/v1",
            "apiKey": UPSTREAM_KEY,
            "models": ["bench-*"],
            "priority": 1,
            "timeoutSeconds": 30,
        },
        "account": {"externalId": ACCOUNT},
        "grant": {
            "accountExternalId": ACCOUNT,
            "amount": CREDITS,
            "source": "PURCHASE",
            "idempotencyKey": "gateway-bench-seed",
        },
        "key": {"accountExternalId": ACCOUNT, "name": "bench"},
    }
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    answers: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        for step, query in SEED.items():
            response = await http.post(
                "/graphql", json={"query": query, "variables": {"input": inputs[step]}}
            )
            body = response.json()
            if body.get("errors"):
                raise RuntimeError(f"seeding {step} failed: {body['errors']}")
            answers[step] = next(iter(body["data"].values()))
    if answers["provider"]["__typename"] != "Provider":
        raise RuntimeError(f"upsertProvider: {answers['provider']}")
    secret = str(answers["key"]["secret"])
    # The server's caches learn of the new provider through Redis: wait until it routes.
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        deadline = time.monotonic() + 20
        while True:
            answer = await http.post(
                PATH, json=REQUEST, headers={"Authorization": f"Bearer {secret}"}
            )
            if answer.status_code == 200:
                return secret
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway never routed: {answer.status_code} {answer.text}")
            await asyncio.sleep(0.2)


TOLLGATE_BOOKS = """
WITH a AS (SELECT id FROM accounts WHERE external_id = $1),
w AS (SELECT id, balance, reserved FROM wallets WHERE account_id IN (SELECT id FROM a)),
e AS (SELECT * FROM usage_events WHERE account_id IN (SELECT id FROM a) AND id > $2)
SELECT
    (SELECT coalesce(sum(balance), 0) FROM w) AS balance,
    (SELECT coalesce(sum(reserved), 0) FROM w) AS reserved,
    (SELECT coalesce(sum(remaining), 0) FROM credit_grants
        WHERE wallet_id IN (SELECT id FROM w)) AS grants,
    (SELECT coalesce(sum(amount), 0) FROM ledger_entries
        WHERE wallet_id IN (SELECT id FROM w)) AS entries,
    (SELECT count(*) FROM reservations
        WHERE account_id IN (SELECT id FROM a) AND status = 'HELD') AS holds_open,
    (SELECT coalesce(max(id), $2) FROM e) AS last_event,
    (SELECT count(*) FROM e) AS events,
    (SELECT coalesce(sum(credits), 0) FROM e) AS credits,
    (SELECT coalesce(sum(uncollected_credits), 0) FROM e) AS uncollected,
    (SELECT count(*) FROM e
        WHERE input_tokens = $3 AND output_tokens = $4 AND details->>'usage' IS NULL)
        AS billed_on_reported_usage,
    (SELECT coalesce(min(credits), 0) FROM e) AS min_credits,
    (SELECT coalesce(max(credits), 0) FROM e) AS max_credits
"""


class TollgateBooks(Books):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.last_event = 0
        self.state: dict[str, int] = {}
        self.xid = 0

    async def read(self) -> dict[str, int]:
        row = await self.conn.fetchrow(
            TOLLGATE_BOOKS, ACCOUNT, self.last_event, PROMPT_TOKENS, COMPLETION_TOKENS
        )
        assert row is not None
        return {k: int(v) for k, v in row.items()}

    async def next_xid(self) -> int:
        # The next transaction id, read without taking one: transactions that wrote since.
        return int(await self.conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text"))

    async def before(self) -> None:
        self.state = await self.read()
        self.last_event = self.state["last_event"]
        self.xid = await self.next_xid()

    async def after(self, m: Measurement) -> dict[str, Any]:
        # A stream's call is recorded after its last event left: wait until nothing moves.
        after = await self.read()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            after["events"] < m.total_ok or after["holds_open"] or after["reserved"]
        ):
            await asyncio.sleep(0.2)
            after = await self.read()
        writes = await self.next_xid() - self.xid
        before, ok = self.state, m.total_ok
        calls = sum(m.outcomes.values())
        balance_drop = before["balance"] - after["balance"]
        collected = after["credits"] - after["uncollected"]
        checks = {
            "every_success_billed_once": after["events"] == ok,
            "billed_on_reported_usage": after["billed_on_reported_usage"] == ok,
            "balance_drop_equals_credits": balance_drop == collected,
            "same_credits_every_call": after["min_credits"] == after["max_credits"],
            "no_hold_left": after["holds_open"] == 0 and after["reserved"] == 0,
            "balances_equal_ledger": after["balance"] == after["grants"] == after["entries"],
        }
        self.last_event = after["last_event"]
        return {
            "consistent": all(checks.values()),
            **checks,
            "successes": ok,
            "calls": calls,
            "usage_events": after["events"],
            "credits": after["credits"],
            "uncollected_credits": after["uncollected"],
            "credits_per_call": after["max_credits"],
            "balance_drop": balance_drop,
            # Every PostgreSQL transaction that wrote (this database and any other on the
            # server) during the run, warm-up and tail included.
            "writing_transactions_per_call": round(writes / calls, 3) if calls else None,
        }


class LiteLLMBooks(Books):
    """LiteLLM's provider budget should have grown by every success's cost."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.spent: float | None = None

    async def before(self) -> None:
        self.spent = await litellm_spend(self.port)

    async def after(self, m: Measurement) -> dict[str, Any]:
        expected = m.total_ok * COST_USD
        spent = None
        # Spend is counted by a callback after the answer left.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = await litellm_spend(self.port)
            if now is not None and self.spent is not None:
                spent = now - self.spent
                if math.isclose(spent, expected, rel_tol=1e-6):
                    break
            await asyncio.sleep(0.25)
        return {
            "consistent": spent is not None and math.isclose(spent, expected, rel_tol=1e-6),
            "successes": m.total_ok,
            "budget_spend_usd": spent,
            "expected_usd": round(expected, 9),
        }


async def redis_calls(client: aioredis.Redis) -> Counter[str]:
    stats = await client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


async def redis_process(client: aioredis.Redis) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error, KeyError, ValueError):
        proc = psutil.Process(int((await client.info("server"))["process_id"]))
        if proc.name().startswith("redis"):
            return [proc]
    return []


async def pg_activity(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted"
        " FROM pg_stat_database WHERE datname = current_database()"
    )
    assert row is not None
    return {k: int(v) for k, v in row.items()}


class PhaseClock:
    """CPU and wall time spent inside wrapped coroutine functions. With one call at a time, the
    CPU this process spends while one is awaited is that step's alone."""

    def __init__(self) -> None:
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.wall: defaultdict[str, float] = defaultdict(float)

    def wrap(self, label: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.cpu[label] += time.process_time() - cpu
                self.wall[label] += time.perf_counter() - wall

        return timed

    def per_call(self, calls: int) -> dict[str, dict[str, float]]:
        return {
            label: {
                "cpu_ms": round(self.cpu[label] * 1000 / calls, 3),
                "wall_ms": round(self.wall[label] * 1000 / calls, 3),
            }
            for label in self.cpu
        }


def gateway_of(app: Any) -> Any:
    """The Gateway behind the app's chat route: its routes are its bound methods."""
    for route in app.routes:
        if getattr(route, "path", None) == PATH:
            return getattr(route.endpoint, "__self__", None)
    return None


@contextlib.contextmanager
def clocked_phases(app: Any, clock: PhaseClock) -> Iterator[bool]:
    """Wrap the steps of a gateway call (on this app's own objects; `upstream.send` for the
    block) with `clock`; False when the app is not shaped as expected."""
    gateway = gateway_of(app)
    deps = getattr(gateway, "_deps", None)
    if deps is None:
        yield False
        return
    steps = {
        "authenticate the key": (deps.keys, "authenticate"),
        "metering.authorize (hold)": (deps.metering, "authorize"),
        "metering.record (bill)": (deps.metering, "record"),
        "read credits remaining": (deps.accounts, "available"),
    }
    for label, (owner, name) in steps.items():
        setattr(owner, name, clock.wrap(label, getattr(owner, name)))
    send = gateway_upstream.send
    setattr(gateway_upstream, "send", clock.wrap("upstream call", send))  # noqa: B010
    try:
        yield True
    finally:
        setattr(gateway_upstream, "send", send)  # noqa: B010
        for owner, name in steps.values():
            with contextlib.suppress(AttributeError):
                delattr(owner, name)


async def probe_app(
    settings: Settings, secret: str, redis_client: aioredis.Redis, phase_calls: int = 200
) -> dict[str, Any]:
    """The runs' requests through the real app in this process, so that every statement and
    Redis command they cause can be counted (a whole call alone, 8 at once, which the metering
    committer may put in one transaction, and a stream), and where the server's CPU goes in a
    whole call: `phase_calls` calls one after another, each step timed."""
    app = create_app(settings)
    probes: dict[str, Any] = {}
    clock = PhaseClock()

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await clock.wrap("whole app", app)(scope, receive, send)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=asgi)
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://probe", headers=headers, timeout=30
        ) as http:

            async def one(body: dict[str, Any]) -> None:
                answer = await http.post(PATH, json=body)
                assert answer.status_code == 200, answer.text

            # The first calls also look the key up, prepare statements and load codecs.
            for _ in range(3):
                await one(REQUEST)
            for name, body, count in (
                ("whole_one", REQUEST, 1),
                ("whole_8_at_once", REQUEST, 8),
                ("stream_one", STREAM_REQUEST, 1),
            ):
                before = await redis_calls(redis_client)
                async with counting_statements() as seen:
                    await asyncio.gather(*(one(body) for _ in range(count)))
                commands = await redis_calls(redis_client) - before
                commands.pop("info", None)
                probe = tally(seen)
                if count > 1:
                    probe["statement_counts"] = dict(Counter(probe.pop("statement_list")))
                probe["calls"] = count
                probe["redis_commands"] = dict(commands)
                probes[name] = probe
            clock.cpu.clear()
            clock.wall.clear()
            with clocked_phases(app, clock) as clocked:
                for _ in range(phase_calls):
                    await one(REQUEST)
    phases = clock.per_call(phase_calls)
    whole = phases.pop("whole app")
    steps = {label: phases[label] for label in sorted(phases, key=lambda k: -phases[k]["cpu_ms"])}
    probes["server_cpu_one_call_at_a_time"] = {
        "calls": phase_calls,
        "whole_app": whole,
        "steps": steps if clocked else "not measured: the app's gateway was not found",
        "rest_of_the_app_cpu_ms": round(
            whole["cpu_ms"] - sum(p["cpu_ms"] for p in steps.values()), 3
        ),
        "note": "in this process through httpx.ASGITransport: the app's own work, without"
        " uvicorn's HTTP parsing; steps are the gateway's calls into metering, the key cache,"
        " the balance read and the upstream client",
    }
    return probes


@contextlib.asynccontextmanager
async def tollgate_target(
    settings: Settings,
    workdir: Path,
    upstream: Served,
    monitor: ClusterMonitor,
    redis_client: aioredis.Redis,
) -> AsyncIterator[tuple[Target, str]]:
    async with tollgate_server(settings, workdir, can_pin()) as (base, server, setup):
        secret = await seed_tollgate(base, upstream.port)
        redis_procs = await redis_process(redis_client)

        async def watch() -> dict[str, list[psutil.Process]]:
            return {
                "server": tree(server),
                "upstream": [upstream.process],
                "postgres": await monitor.postgres_processes(),
                "redis": redis_procs,
            }

        target = Target(
            "tollgate",
            int(base.rsplit(":", 1)[1]),
            {"Authorization": f"Bearer {secret}"},
            watch,
            TollgateBooks(monitor.conn),
            setup,
        )
        yield target, secret


async def run_tollgate(
    settings: Settings,
    workdir: Path,
    upstream: Served,
    monitor: ClusterMonitor,
    args: argparse.Namespace,
) -> tuple[dict[str, Any], dict[str, Any]]:
    redis_client = aioredis.Redis.from_url(settings.redis_url or "")
    try:
        pg_before = await pg_activity(monitor.conn)
        redis_before = await redis_calls(redis_client)
        async with tollgate_target(settings, workdir, upstream, monitor, redis_client) as (
            target,
            secret,
        ):
            with pinned_to(CLIENT_CPU if can_pin() else None):
                runs = await measure_target(target, args)
        redis_used = await redis_calls(redis_client) - redis_before
        redis_used.pop("info", None)
        # A backend reports its counts when it exits: the server's pool is closed by now.
        await asyncio.sleep(1.0)
        await monitor.conn.execute("SELECT pg_stat_clear_snapshot()")
        pg_after = await pg_activity(monitor.conn)
        calls = sum(sum(r["outcomes_all"].values()) for r in runs.values())
        under_load = {
            "calls": calls,
            "note": "all Tollgate runs together, warm-up and tail included, counted by PostgreSQL"
            " (pg_stat_database) and Redis (INFO commandstats); seeding and the bench's own"
            " book-keeping queries add a few dozen transactions",
            "postgres_per_call": {
                k: round((pg_after[k] - pg_before[k]) / calls, 3) for k in pg_before
            },
            "redis_commands_per_call": {
                k: round(v / calls, 3) for k, v in redis_used.most_common() if v
            },
        }
        probes = await probe_app(settings, secret, redis_client)
    finally:
        await redis_client.aclose()
    target.setup["load_generator_cpus"] = [CLIENT_CPU] if can_pin() else "unpinned"
    return runs, {"setup": target.setup, "under_load": under_load, "probe": probes}


# --- the other targets ---------------------------------------------------------------------------


async def run_direct(upstream: Served, args: argparse.Namespace) -> dict[str, Any]:
    async def watch() -> dict[str, list[psutil.Process]]:
        return {"upstream": [upstream.process]}

    target = Target("direct", upstream.port, {"Authorization": f"Bearer {UPSTREAM_KEY}"}, watch)
    with pinned_to(CLIENT_CPU if can_pin() else None):
        return await measure_target(target, args)


async def run_forwarder(
    upstream: Served, workdir: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    port = free_port()
    cpu = SERVER_CPU if can_pin() else None
    command = pinned(
        servers_command("forwarder", port, "--upstream", f"http://127.0.0.1:{upstream.port}/v1"),
        cpu,
    )
    async with serve("forwarder", command, port, "/healthz", workdir, start_within=30) as fwd:

        async def watch() -> dict[str, list[psutil.Process]]:
            return {"server": tree(fwd.process), "upstream": [upstream.process]}

        target = Target("forwarder", port, {}, watch)
        with pinned_to(CLIENT_CPU if can_pin() else None):
            runs = await measure_target(target, args)
    return runs, {"command": short(command), "server_cpus": [cpu] if cpu is not None else None}


async def run_litellm(
    upstream: Served, workdir: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    installed = await asyncio.to_thread(ensure_litellm)
    config_path = workdir / "litellm.yaml"
    config_path.write_text(json.dumps(litellm_config(upstream.port), indent=2))
    port = free_port()
    cpu = SERVER_CPU if can_pin() else None
    command = pinned(
        [
            str(LITELLM_VENV / "bin" / "litellm"),
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        cpu,
    )
    started = time.perf_counter()
    async with serve(
        "litellm", command, port, "/health/liveliness", workdir, env=litellm_env(), start_within=180
    ) as proxy:
        start_seconds = round(time.perf_counter() - started, 1)

        async def watch() -> dict[str, list[psutil.Process]]:
            return {"server": tree(proxy.process), "upstream": [upstream.process]}

        target = Target(
            "litellm",
            port,
            {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
            watch,
            LiteLLMBooks(port),
        )
        with pinned_to(CLIENT_CPU if can_pin() else None):
            runs = await measure_target(target, args)
    setup = {
        "status": "measured",
        **installed,
        "how": LITELLM_HOW,
        "command": short(command),
        "server_cpus": [cpu] if cpu is not None else None,
        "start_seconds": start_seconds,
        "config": litellm_config(upstream.port),
    }
    return runs, setup


def short(command: list[str]) -> list[str]:
    """Programs and files by name: where they live says nothing about the run."""
    return [Path(part).name if part.startswith(os.sep) else part for part in command]


# --- the report ----------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def server_cores(run: dict[str, Any]) -> float | None:
    cores = run["cpu"].get("cores_used", {}).get("server")
    return float(cores) if cores is not None else None


def build_summary(
    runs: dict[str, dict[str, Any]], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Per target and run: rate, latency, what it adds to the upstream called directly, and
    the server's CPU."""
    direct = runs["direct"]
    summary: dict[str, dict[str, Any]] = {}
    for name, by_run in runs.items():
        rows: dict[str, Any] = {}
        for key, run in by_run.items():
            base = direct[key]
            row: dict[str, Any] = {
                "requests_per_second": run["ops_per_second"],
                "p50_ms": run["latency_ms"]["p50"],
                "p99_ms": run["latency_ms"]["p99"],
            }
            if name != "direct":
                row["added_p50_ms"] = round(run["latency_ms"]["p50"] - base["latency_ms"]["p50"], 3)
                row["added_p99_ms"] = round(run["latency_ms"]["p99"] - base["latency_ms"]["p99"], 3)
                cores = server_cores(run)
                row["server_cores"] = cores
                row["server_cpu_ms_per_request"] = run["cpu"]["cpu_ms_per_request"].get("server")
                row["requests_per_server_core"] = (
                    round(run["ops_per_second"] / cores, 1) if cores else None
                )
                used = run["cpu"].get("cores_used", {})
                if "postgres" in used:
                    all_in = sum(used.get(k, 0.0) for k in ("server", "postgres", "redis"))
                    row["cores_all_in"] = round(all_in, 2)
                    row["requests_per_core_all_in"] = (
                        round(run["ops_per_second"] / all_in, 1) if all_in else None
                    )
            if run.get("stream"):
                first, base_first = run["first_event_ms"], base["first_event_ms"]
                row["first_event_p50_ms"] = first["p50"]
                row["first_event_p99_ms"] = first["p99"]
                if name != "direct":
                    row["added_first_event_p50_ms"] = round(first["p50"] - base_first["p50"], 3)
                    row["added_first_event_p99_ms"] = round(first["p99"] - base_first["p99"], 3)
            if "check" in run:
                row["check_consistent"] = run["check"]["consistent"]
            rows[key] = row
        summary[name] = rows
    return summary


def build_ratios(summary: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    tollgate, forwarder = summary["tollgate"], summary["forwarder"]
    litellm = summary.get("litellm")
    keys = [f"whole_x{c}" for c in args.concurrency if c in (8, 32)] or [
        f"whole_x{c}" for c in args.concurrency
    ]
    out: dict[str, Any] = {}

    def entry(name: str, measured: dict[str, float | None], higher_is_better: bool) -> None:
        aim = AIMS[name]
        values = [v for v in measured.values() if v is not None]
        met = bool(values) and all((v >= aim) if higher_is_better else (v <= aim) for v in values)
        out[name] = {"measured": measured, "aim": aim, "met": met if values else None}

    entry(
        "tollgate_rps_vs_forwarder",
        {
            k: ratio(tollgate[k]["requests_per_second"], forwarder[k]["requests_per_second"])
            for k in keys
        },
        True,
    )
    if litellm is not None:
        entry(
            "tollgate_rps_per_core_vs_litellm",
            {
                k: ratio(
                    tollgate[k]["requests_per_server_core"], litellm[k]["requests_per_server_core"]
                )
                for k in keys
            },
            True,
        )
        entry(
            "tollgate_added_p50_vs_litellm",
            {k: ratio(tollgate[k]["added_p50_ms"], litellm[k]["added_p50_ms"]) for k in keys},
            False,
        )
        whole = [k for k in tollgate if k.startswith("whole")]
        streams = [k for k in tollgate if k.startswith("stream")]
        out["more"] = {
            "tollgate_rps_vs_litellm": {
                k: ratio(tollgate[k]["requests_per_second"], litellm[k]["requests_per_second"])
                for k in whole
            },
            "tollgate_added_p50_vs_litellm": {
                k: ratio(tollgate[k]["added_p50_ms"], litellm[k]["added_p50_ms"]) for k in whole
            },
            "tollgate_added_first_event_p50_vs_litellm": {
                k: ratio(
                    tollgate[k]["added_first_event_p50_ms"], litellm[k]["added_first_event_p50_ms"]
                )
                for k in streams
            },
            # The ceiling the aims meet: what the forwarder, which does no more than forward,
            # does against LiteLLM.
            "forwarder_rps_per_core_vs_litellm": {
                k: ratio(
                    forwarder[k]["requests_per_server_core"],
                    litellm[k]["requests_per_server_core"],
                )
                for k in whole
            },
            "forwarder_added_p50_vs_litellm": {
                k: ratio(forwarder[k]["added_p50_ms"], litellm[k]["added_p50_ms"]) for k in whole
            },
            # Counting the cores PostgreSQL and Redis kept busy for Tollgate, which LiteLLM,
            # run without a database, does not use.
            "tollgate_rps_per_core_all_in_vs_litellm": {
                k: ratio(
                    tollgate[k].get("requests_per_core_all_in"),
                    litellm[k]["requests_per_server_core"],
                )
                for k in whole
            },
        }
    return out


def print_table(report: dict[str, Any]) -> None:
    summary = report["summary"]
    header = (
        f"{'target':<10}{'run':<11}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'+p50':>8}{'+p99':>8}"
        f"{'1st ev':>8}{'+1st':>7}{'srv cores':>10}{'srv ms/req':>11}{'req/s/core':>11}  books"
    )
    print()
    print(header)
    print("-" * len(header))

    def cell(row: dict[str, Any], key: str, width: int, digits: int = 2) -> str:
        value = row.get(key)
        return f"{value:>{width}.{digits}f}" if isinstance(value, int | float) else " " * width

    for name, rows in summary.items():
        for key, row in rows.items():
            books = row.get("check_consistent")
            print(
                f"{name:<10}{key:<11}{row['requests_per_second']:>9.1f}"
                f"{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
                f"{cell(row, 'added_p50_ms', 8)}{cell(row, 'added_p99_ms', 8)}"
                f"{cell(row, 'first_event_p50_ms', 8)}{cell(row, 'added_first_event_p50_ms', 7)}"
                f"{cell(row, 'server_cores', 10)}{cell(row, 'server_cpu_ms_per_request', 11, 3)}"
                f"{cell(row, 'requests_per_server_core', 11, 0)}"
                f"  {'' if books is None else ('ok' if books else 'FAILED')}"
            )
    print()
    print("+p50/+p99/+1st: added to the upstream called directly at the same concurrency")
    print()
    for name, r in report["ratios"].items():
        if name == "more":
            continue
        measured = ", ".join(
            f"{k.removeprefix('whole_')} {v:.3f}" if v is not None else f"{k} -"
            for k, v in r["measured"].items()
        )
        comparison = "<=" if name.endswith("vs_litellm") and "added" in name else ">="
        verdict = {True: "met", False: "NOT met", None: "-"}[r["met"]]
        print(f"{name:<36} {measured}   aim {comparison} {r['aim']}  {verdict}")
    for name, values in report["ratios"].get("more", {}).items():
        shown = ", ".join(f"{k} {v}" for k, v in values.items())
        print(f"  also {name}: {shown}")
    litellm = report["litellm"]
    if litellm.get("status") != "measured":
        print(f"\nLiteLLM not measured: {litellm.get('reason', litellm.get('status'))}")
    else:
        print(f"\nLiteLLM {litellm['version']}: {LITELLM_HOW}")
    tollgate = report["tollgate"]
    probe = tollgate["probe"]["whole_one"]
    load = tollgate["under_load"]
    print(
        f"\nTollgate per whole call alone: {probe['statements']} statements in"
        f" {probe['transactions']} transactions, Redis {probe['redis_commands'] or 'none'};"
        f" 8 at once: {tollgate['probe']['whole_8_at_once']['statements']} statements in"
        f" {tollgate['probe']['whole_8_at_once']['transactions']} transactions"
    )
    cpu = tollgate["probe"]["server_cpu_one_call_at_a_time"]
    if isinstance(cpu["steps"], dict):
        steps = ", ".join(f"{k} {v['cpu_ms']}" for k, v in cpu["steps"].items())
        print(
            f"server CPU of one whole call, one at a time (ms): {cpu['whole_app']['cpu_ms']} in"
            f" all: {steps}, the rest {cpu['rest_of_the_app_cpu_ms']}"
        )
    pg = load["postgres_per_call"]
    print(
        f"under load (PostgreSQL's own counts): {pg['xact_commit']} commits,"
        f" {pg['tup_inserted']} rows inserted, {pg['tup_updated']} updated per call;"
        f" Redis per call: {load['redis_commands_per_call'] or 'none'}"
    )
    busy = [
        f"{name}/{key}"
        for name, runs in report["runs"].items()
        for key, run in runs.items()
        if sum(run["cpu"].get("busiest_other_processes", {}).values()) > 0.15
    ]
    if busy:
        print(
            "other work on the machine during " + ", ".join(busy) + ": see"
            " cpu.busiest_other_processes; those figures are less reliable"
        )


async def run(
    args: argparse.Namespace, workdir: Path, urls: tuple[str, str, str]
) -> dict[str, Any]:
    return await in_fresh_database(urls[0], DB_SUFFIX, lambda url: run_in(url, args, workdir, urls))


async def run_in(
    url: str, args: argparse.Namespace, workdir: Path, urls: tuple[str, str, str]
) -> dict[str, Any]:
    started = time.perf_counter()
    _, redis_url, source = urls
    await asyncio.to_thread(migrate.upgrade, url)
    machine = await machine_facts(url, source)
    # The server encrypts the provider's key with it; `tollgate serve` reads it from here.
    os.environ["TOLLGATE_SECRET_KEY"] = generate_key()
    settings = Settings(
        database_url=url,
        redis_url=redis_url,
        env="production",
        bootstrap_admin_key=ADMIN_KEY,
        secret_key=os.environ["TOLLGATE_SECRET_KEY"],
    )
    pin = can_pin()
    print(f"PostgreSQL {machine['postgres']['version']} ({source}); measuring:", flush=True)
    runs: dict[str, dict[str, Any]] = {}
    setups: dict[str, Any] = {}
    monitor = ClusterMonitor(
        await asyncpg.connect(plain_url(url)), await asyncpg.connect(plain_url(url))
    )
    upstream_port = free_port()
    upstream_command = pinned(
        servers_command("upstream", upstream_port, "--chunk-delay", str(CHUNK_DELAY)),
        CLIENT_CPU if pin else None,
    )
    try:
        async with serve("upstream", upstream_command, upstream_port, "/stats", workdir) as up:
            runs["direct"] = await run_direct(up, args)
            runs["forwarder"], setups["forwarder"] = await run_forwarder(up, workdir, args)
            runs["tollgate"], tollgate = await run_tollgate(settings, workdir, up, monitor, args)
            if args.skip_litellm:
                setups["litellm"] = {"status": "skipped", "reason": "--skip-litellm"}
            else:
                try:
                    runs["litellm"], setups["litellm"] = await run_litellm(up, workdir, args)
                except (Unavailable, OSError, subprocess.SubprocessError) as exc:
                    setups["litellm"] = {"status": "unavailable", "reason": str(exc)[-3000:]}
                    print(f"  LiteLLM not measured: {str(exc)[:300]}", flush=True)
            async with httpx.AsyncClient() as http:
                upstream_stats = (await http.get(f"http://127.0.0.1:{up.port}/stats")).json()
    finally:
        await monitor.conn.close()
        await monitor.sampler.close()
    config = {
        "seconds": args.seconds,
        "warmup_seconds": args.warmup,
        "concurrency": args.concurrency,
        "stream_concurrency": args.stream_concurrency,
        # Before each run: up to this long for the machine's other work to stop.
        "quiet_wait_seconds": args.quiet_wait,
        "request": REQUEST,
        "stream_request": STREAM_REQUEST,
        "upstream": {
            "command": short(upstream_command),
            "cpus": [CLIENT_CPU] if pin else "unpinned",
            "reply": f"{REPLY!r}, usage {PROMPT_TOKENS} prompt + {COMPLETION_TOKENS} completion"
            " tokens; a stream is 13 events and [DONE], the first at once, then one every"
            f" {CHUNK_DELAY * 1000:g} ms",
            "calls_answered": upstream_stats,
        },
        "load_generator": {
            "cpus": [CLIENT_CPU] if pin else "unpinned",
            "http_client": "HttpConnection (bench/common.py): one keep-alive HTTP/1.1 connection"
            " per client, one request at a time on it, closed-loop",
            "first_event": "time from sending the request to the first body bytes holding an SSE"
            " `data:` field",
        },
        "servers_cpus": [SERVER_CPU] if pin else "unpinned",
        "postgres_and_redis": "float over both cores; their CPU is in each run's cpu.cores_used",
        "price": f"{PROVIDER}/{MODEL}: ${INPUT_PER_MILLION} per 1M input, "
        f"${OUTPUT_PER_MILLION} per 1M output tokens: ${COST_USD:.6f} a call",
        "forwarder": setups["forwarder"],
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "total_run_seconds": round(time.perf_counter() - started, 1),
    }
    summary = build_summary(runs, args)
    return {
        "machine": machine,
        "config": config,
        "summary": summary,
        "ratios": build_ratios(summary, args),
        "tollgate": {
            **tollgate,
            "consistent": all(r["check"]["consistent"] for r in runs["tollgate"].values()),
        },
        "litellm": setups["litellm"],
        "runs": runs,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds first")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 8, 32],
        help="comma-separated concurrent clients for whole answers (default 1,8,32)",
    )
    parser.add_argument(
        "--stream-concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 8],
        help="comma-separated concurrent clients for streams (default 1,8)",
    )
    parser.add_argument("--skip-litellm", action="store_true", help="measure (a) to (c) only")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="seconds to wait, before each run, for other work on the machine to stop",
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.warmup < 0 or min(args.concurrency + args.stream_concurrency) < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, clients >= 1")
    return args


def main() -> None:
    args = parse_args()
    write_report("gateway.json", lambda workdir, urls: run(args, workdir, urls), print_table)


if __name__ == "__main__":
    main()
