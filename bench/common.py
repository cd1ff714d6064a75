"""Shared by the benchmarks: where PostgreSQL and Redis come from, a fresh database per run, and a
fixed-duration load driver that reports throughput, latency and CPU use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import psutil
from sqlalchemy.engine import make_url

from tollgate.config import sqlalchemy_url
from tollgate.runtime.embedded import embedded_services

T = TypeVar("T")

RESULTS = Path(__file__).resolve().parent / "results"


@contextlib.contextmanager
def service_urls(workdir: Path) -> Iterator[tuple[str, str, str]]:
    """(database URL, Redis URL, where they come from): the environment's when set, otherwise
    embedded servers that live as long as the block."""
    db_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if db_url and redis_url:
        yield db_url, redis_url, "environment"
        return
    with embedded_services(workdir, postgres=not db_url, redis=not redis_url) as (edb, eredis):
        source = "embedded" if not (db_url or redis_url) else "environment+embedded"
        yield db_url or edb or "", redis_url or eredis or "", source


def plain_url(url: str) -> str:
    """asyncpg takes postgresql://, SQLAlchemy postgresql+asyncpg://."""
    return sqlalchemy_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


async def _as_admin(url: str, sql: str) -> None:
    admin = await asyncpg.connect(plain_url(url))
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


async def recreate_database(url: str, suffix: str) -> str:
    """A fresh database beside the one `url` names, so a run never touches real data."""
    parsed = make_url(sqlalchemy_url(url))
    name = (parsed.database or "postgres") + suffix
    await _as_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _as_admin(url, f'CREATE DATABASE "{name}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str, created: str) -> None:
    """Drop `created` (a URL from `recreate_database`) through the database `url` names."""
    name = make_url(sqlalchemy_url(created)).database
    await _as_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def postgres_facts(url: str) -> dict[str, Any]:
    """The server settings that move commit-bound figures the most."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        facts: dict[str, Any] = {"version": await conn.fetchval("SHOW server_version")}
        for name in ("fsync", "synchronous_commit", "shared_buffers", "max_connections"):
            facts[name] = await conn.fetchval(f"SHOW {name}")
        return facts
    finally:
        await conn.close()


async def in_fresh_database(
    db_url: str, suffix: str, work: Callable[[str], Awaitable[T]], *, keep: bool = False
) -> T:
    """Run `work` on a database made for it beside `db_url`, dropped afterwards unless `keep`."""
    url = await recreate_database(db_url, suffix)
    try:
        return await work(url)
    finally:
        if keep:
            print(f"kept the database: {url}")
        else:
            await drop_database(db_url, url)


async def machine_facts(url: str, source: str) -> dict[str, Any]:
    """What the figures were measured on, recorded beside them."""
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # Other work on the machine shows in every window as cores_busy_unaccounted.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "postgres": {**await postgres_facts(url), "source": source},
    }


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile; 0.0 on no samples."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _cpu_seconds(proc: psutil.Process) -> float | None:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


Watch = Callable[[], Awaitable[dict[str, list[psutil.Process]]]]


class _CpuWatch:
    """How many cores each group of processes kept busy during the window, each core's busy
    percentage, and what of that busy time none of the groups explains (other work on the
    machine). A process that exits during the window is left out of its group."""

    def __init__(self, watch: Watch | None) -> None:
        self._watch = watch
        self._start: dict[str, dict[psutil.Process, float]] = {}
        self._others: dict[psutil.Process, float] = {}
        self._watched: set[int] = set()
        self._system: Any = None
        self._t0 = self._wall0 = 0.0

    async def start(self) -> None:
        groups = {"load_generator": [psutil.Process()]}
        if self._watch is not None:
            groups.update(await self._watch())
        psutil.cpu_percent(percpu=True)  # resets the per-core counters
        self._start = {
            name: {p: t for p in procs if (t := _cpu_seconds(p)) is not None}
            for name, procs in groups.items()
        }
        self._watched = {p.pid for procs in groups.values() for p in procs}
        self._others = {
            p: t
            for p in psutil.process_iter()
            if p.pid not in self._watched and (t := _cpu_seconds(p)) is not None
        }
        self._system = psutil.cpu_times()
        self._t0, self._wall0 = time.perf_counter(), time.time()

    def stop(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self._t0
        per_core = psutil.cpu_percent(percpu=True)
        used: dict[str, float] = {}
        for name, procs in self._start.items():
            total = 0.0
            for proc, before in procs.items():
                if (after := _cpu_seconds(proc)) is not None:
                    total += after - before
            used[name] = round(total / elapsed, 2)
        busy = sum(per_core) / 100
        return {
            "core_busy_percent": [round(x, 1) for x in per_core],
            "cores_used": used,
            "cores_busy_unaccounted": round(max(0.0, busy - sum(used.values())), 2),
            "busiest_other_processes": self._busiest_others(elapsed),
            "cores_outside_processes": self._outside_processes(elapsed),
        }

    def _outside_processes(self, elapsed: float) -> dict[str, float]:
        """Busy time no process is charged for: interrupts, and (in a virtual machine) time the
        host gave to someone else while this guest wanted to run."""
        after = psutil.cpu_times()
        return {
            name: round((getattr(after, name) - getattr(self._system, name)) / elapsed, 3)
            for name in ("irq", "softirq", "steal")
            if hasattr(after, name)
        }

    def _busiest_others(self, elapsed: float, top: int = 5) -> dict[str, float]:
        """Where unaccounted busy time went, by process name (kernel threads included). A
        process started during the window counts in full ("name (new)"); one that started and
        exited within it is missed."""
        by_name: Counter[str] = Counter()
        for proc, before in self._others.items():
            if (after := _cpu_seconds(proc)) is not None and after > before:
                with contextlib.suppress(psutil.Error):
                    by_name[proc.name()] += after - before
        for proc in psutil.process_iter():
            if proc in self._others or proc.pid in self._watched:
                continue
            with contextlib.suppress(psutil.Error):
                if proc.create_time() >= self._wall0 and (spent := _cpu_seconds(proc)):
                    by_name[f"{proc.name()} (new)"] += spent
        return {name: round(t / elapsed, 3) for name, t in by_name.most_common(top) if t > 0}


@dataclass
class Measurement:
    seconds: float
    ok_in_window: int = 0
    failed_in_window: int = 0
    latencies: list[float] = field(default_factory=list)
    # Of calls that report it: seconds from sending to the first event of a streamed answer.
    first_event: list[float] = field(default_factory=list)
    per_second: list[int] = field(default_factory=list)
    # Everything that completed, warm-up and tail included: what the ledger must account for.
    outcomes: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, Any] = field(default_factory=dict)

    @property
    def ops_per_second(self) -> float:
        return self.ok_in_window / self.seconds

    @property
    def total_ok(self) -> int:
        return self.outcomes["ok"]

    def summary(self) -> dict[str, Any]:
        summary = {
            "ops_per_second": round(self.ops_per_second, 1),
            "ok_in_window": self.ok_in_window,
            "failed_in_window": self.failed_in_window,
            "latency_ms": latency_summary(self.latencies),
            "per_second": self.per_second,
            "outcomes_all": dict(self.outcomes),
            "cpu": self.cpu,
        }
        if self.first_event:
            summary["first_event_ms"] = latency_summary(self.first_event)
        return summary


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """p50, p99, mean and max in milliseconds."""
    ordered = sorted(seconds)
    ms = 1000.0
    return {
        "p50": round(percentile(ordered, 50) * ms, 3),
        "p99": round(percentile(ordered, 99) * ms, 3),
        "mean": round(statistics.fmean(ordered) * ms, 3) if ordered else 0.0,
        "max": round(ordered[-1] * ms, 3) if ordered else 0.0,
    }


async def drive(
    call: Callable[[int], Awaitable[str | tuple[str, float]]],
    *,
    clients: int,
    warmup: float,
    seconds: float,
    watch: Watch | None = None,
) -> Measurement:
    """`clients` closed-loop workers call `call(worker_index)` back to back; it returns "ok" or
    the name of what went wrong, or that and the seconds its answer's first event took. Only
    calls that finish inside the window count towards throughput and latency; no call starts
    after it, and those still running are awaited so that the ledger can be checked against
    every success. `watch` names the processes, besides this one, whose CPU use the window
    should record."""
    result = Measurement(seconds=seconds, per_second=[0] * math.ceil(seconds))
    cpu = _CpuWatch(watch)
    begin = time.perf_counter()
    window_start, window_end = begin + warmup, begin + warmup + seconds

    async def worker(index: int) -> None:
        while (started := time.perf_counter()) < window_end:
            first: float | None = None
            try:
                answer = await call(index)
            except Exception as exc:
                answer = type(exc).__name__
            finished = time.perf_counter()
            outcome, first = answer if isinstance(answer, tuple) else (answer, None)
            result.outcomes[outcome] += 1
            if window_start <= finished < window_end:
                if outcome == "ok":
                    result.ok_in_window += 1
                    result.latencies.append(finished - started)
                    if first is not None:
                        result.first_event.append(first)
                    result.per_second[int(finished - window_start)] += 1
                else:
                    result.failed_in_window += 1

    async def sampler() -> None:
        await asyncio.sleep(window_start - time.perf_counter())
        await cpu.start()
        await asyncio.sleep(window_end - time.perf_counter())
        result.cpu = cpu.stop()

    await asyncio.gather(sampler(), *(worker(i) for i in range(clients)))
    return result


class HttpError(Exception):
    """The server's answer could not be read as HTTP/1.1."""


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the JSON answer.

    A load generator built on a general-purpose client spends about a millisecond of CPU per
    request, which on a two-core machine caps the request rate well below what the server under
    test may reach; writing the request in one piece and reading a Content-Length (or chunked)
    body costs a small fraction of that. One request at a time per connection."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        fixed = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
        self._fixed = fixed + "Content-Type: application/json\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        """(status, decoded JSON body) of POSTing `body` as JSON to `path`."""
        status, raw, _ = await self.exchange(path, body)
        return status, json.loads(raw) if raw else None

    async def exchange(self, path: str, body: Any) -> tuple[int, bytes, float]:
        """(status, raw body, when the first event arrived) of POSTing `body` as JSON to `path`.
        The time (`time.perf_counter()`) is that of the first body bytes holding a server-sent
        event's `data:` field, or of the whole body when the answer has none."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = f"POST {path} HTTP/1.1\r\n{self._fixed}Content-Length: {len(payload)}\r\n\r\n"
        reader, writer = await self._open()
        try:
            writer.write(head.encode() + payload)
            status, raw, close, first = await self._response(reader)
        except BaseException:
            # A half-read answer leaves the stream unusable: start the next request afresh.
            self.close()
            raise
        if close:
            self.close()
        return status, raw, first

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool, float]:
        block = await reader.readuntil(b"\r\n\r\n")
        lines = block.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"not an HTTP/1.x status line: {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        close = headers.get("connection", "").lower() == "close"
        if "content-length" in headers:
            raw = await reader.readexactly(int(headers["content-length"]))
            return int(parts[1]), raw, close, time.perf_counter()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks, first = [], 0.0
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunk = await reader.readexactly(size)
                if not first and b"data:" in chunk:
                    first = time.perf_counter()
                chunks.append(chunk)
                await reader.readexactly(2)
            # The trailer section, which ends with an empty line.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return int(parts[1]), b"".join(chunks), close, first or time.perf_counter()
        raise HttpError("an answer with neither Content-Length nor chunked encoding")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    # uvicorn serves on uvloop when it is installed; the in-process runs use the same loop.
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def code_version() -> dict[str, Any]:
    """The commit measured, and whether uncommitted changes were measured with it."""
    repo = Path(__file__).resolve().parent.parent

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=repo, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", "backend")
    return {"commit": commit or None, "backend_has_uncommitted_changes": bool(status)}


def write_report(
    name: str,
    run: Callable[[Path, tuple[str, str, str]], Awaitable[dict[str, Any]]],
    print_table: Callable[[dict[str, Any]], None],
) -> None:
    """Run one benchmark on its own services, then write `results/<name>` and print it."""
    version = code_version()
    with (
        tempfile.TemporaryDirectory(prefix="tg-bench-") as tmp,
        service_urls(Path(tmp)) as urls,
        asyncio.Runner(loop_factory=event_loop_factory()) as runner,
    ):
        report = runner.run(run(Path(tmp), urls))
    report["config"]["code"] = version
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / name
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


def run_small_server(app: Any, host: str, port: int) -> None:
    """Serve one of the benchmarks' own small apps as `tollgate serve` serves Tollgate: uvicorn
    with uvloop and httptools when installed, no access log."""
    import uvicorn  # only the small servers' processes need it

    uvicorn.run(
        app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=False
    )
