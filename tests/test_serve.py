"""`tollgate serve` run the way the README says: a real process on a fresh data folder with
embedded PostgreSQL and Redis, data kept across a restart, nothing left running once it stops."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tollgate.app import create_app
from tollgate.config import Settings

TOLLGATE = Path(sys.executable).parent / "tollgate"
BOOTSTRAP_KEY = "tgk_serve_test_" + "b" * 32
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

CREATE_ACCOUNT = """
mutation($input: CreateAccountInput!) {
  createAccount(input: $input) { __typename ... on Account { externalId } }
}"""
GRANT = """
mutation($input: GrantCreditsInput!) {
  grantCredits(input: $input) {
    __typename ... on LedgerSuccess { transactionId balance { available reserved total pool } }
  }
}"""
DEDUCT = """
mutation($input: DeductCreditsInput!) {
  deductCredits(input: $input) {
    __typename
    ... on LedgerSuccess { transactionId balance { available reserved total pool } }
    ... on InsufficientCredits { available requested }
  }
}"""
ACCOUNT = """
query($id: String!) {
  account(externalId: $id) { name balance { available total } grants { source remaining } }
}"""


def _env(data_dir: Path) -> dict[str, str]:
    """The caller's environment without any service URL or Tollgate setting, plus ours."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "REDIS_URL") and not name.startswith("TOLLGATE_")
    }
    env["TOLLGATE_DATA_DIR"] = str(data_dir)
    env["TOLLGATE_BOOTSTRAP_ADMIN_KEY"] = BOOTSTRAP_KEY
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_of(folder: Path) -> list[psutil.Process]:
    """Live processes working inside `folder`: embedded postgres and redis-server both chdir
    into their data folder, so this finds them whatever their command line looks like."""
    root = folder.resolve()
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and Path(proc.cwd()).is_relative_to(root):
                found.append(proc)
    return found


def _listening_ports(procs: list[psutil.Process]) -> set[int]:
    ports = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    ports.add(conn.laddr.port)
    return ports


def _stop_processes_of(folder: Path) -> None:
    procs = _processes_of(folder)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "data"
    try:
        yield folder
    finally:
        # Whatever happened above, leave no database or Redis server behind.
        _stop_processes_of(folder)


class Served:
    """One `tollgate serve` process; its output goes to a log file quoted on failure."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir, self.log = data_dir, log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(TOLLGATE), "serve", "--port", str(self.port)],
                env=_env(data_dir),
                cwd=data_dir.parent,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait_healthy(self) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited early:\n{self.output()}"
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(f"{self.url}/healthz", timeout=2)
                if response.status_code == 200:
                    health: dict[str, Any] = response.json()
                    return health
            time.sleep(0.1)
        raise AssertionError(f"/healthz not 200 within {START_TIMEOUT} s:\n{self.output()}")

    def gql(self, query: str, key: str = BOOTSTRAP_KEY, **variables: Any) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert not body.get("errors"), body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve ignored {sig.name}:\n{self.output()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@contextlib.contextmanager
def serving(data_dir: Path, log: Path) -> Iterator[Served]:
    server = Served(data_dir, log)
    try:
        yield server
    finally:
        server.kill()


def _assert_stopped_cleanly(server: Served, sig: signal.Signals, ports: set[int]) -> None:
    code = server.stop(sig)
    assert code == 0, f"serve exited with {code} on {sig.name}:\n{server.output()}"
    assert not _processes_of(server.data_dir), server.output()
    assert not (server.data_dir / "postgres" / "postmaster.pid").exists()
    assert not [port for port in ports if _accepts(port)], server.output()


def _create_key(data_dir: Path) -> str:
    done = subprocess.run(
        [str(TOLLGATE), "keys", "create", "--role", "admin", "--name", "ci"],
        env=_env(data_dir),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("tgk_") and "\n" not in secret, done.stdout
    return secret


def test_serve_keeps_data_across_restart_and_leaves_nothing_running(data_dir: Path) -> None:
    with serving(data_dir, data_dir.parent / "serve-1.log") as server:
        assert server.wait_healthy() == {"status": "ok", "postgres": True, "redis": True}
        assert server.gql("{ me { name role } }") == {"me": {"name": "bootstrap", "role": "OWNER"}}
        ports = {server.port} | _listening_ports(_processes_of(data_dir))
        assert len(ports) == 2, "the API and the embedded Redis"

        created = server.gql(CREATE_ACCOUNT, input={"externalId": "user-42", "name": "Ada"})
        assert created["createAccount"]["__typename"] == "Account"
        granted = server.gql(
            GRANT,
            input={
                "accountExternalId": "user-42",
                "amount": 1000,
                "source": "PURCHASE",
                "idempotencyKey": "order-1",
            },
        )["grantCredits"]
        assert granted["balance"] == {"available": 1000, "reserved": 0, "total": 1000, "pool": 0}
        deduct = {"accountExternalId": "user-42", "amount": 300, "idempotencyKey": "call-1"}
        deducted = server.gql(DEDUCT, input=deduct)["deductCredits"]
        assert deducted["__typename"] == "LedgerSuccess"
        assert deducted["balance"]["available"] == 700

        # A key made by the CLI on the same folder, while the server uses it, works at once,
        # and the CLI leaves the server's PostgreSQL running when it is done.
        ci_key = _create_key(data_dir)
        assert server.gql("{ me { name role } }", key=ci_key) == {
            "me": {"name": "ci", "role": "ADMIN"}
        }
        assert server.wait_healthy()["postgres"] is True

        _assert_stopped_cleanly(server, signal.SIGINT, ports)

    with serving(data_dir, data_dir.parent / "serve-2.log") as server:
        server.wait_healthy()
        account = server.gql(ACCOUNT, key=ci_key, id="user-42")["account"]
        assert account == {
            "name": "Ada",
            "balance": {"available": 700, "total": 700},
            "grants": [{"source": "PURCHASE", "remaining": 700}],
        }
        # The idempotency key outlived the restart: the replay books nothing.
        replayed = server.gql(DEDUCT, input=deduct)["deductCredits"]
        assert replayed == deducted

        ports = {server.port} | _listening_ports(_processes_of(data_dir))
        _assert_stopped_cleanly(server, signal.SIGINT, ports)


def test_serve_stops_embedded_servers_on_sigterm(data_dir: Path) -> None:
    # SIGTERM is what `docker stop`, systemd and process supervisors send.
    with serving(data_dir, data_dir.parent / "serve.log") as server:
        server.wait_healthy()
        ports = {server.port} | _listening_ports(_processes_of(data_dir))
        _assert_stopped_cleanly(server, signal.SIGTERM, ports)


async def test_what_start_up_built_is_out_of_the_collectors_reach_until_stop(
    settings: Settings,
) -> None:
    """Full collections walk every tracked object; start-up's (models, caches, compiled
    statements) live as long as the app, so they are frozen while it serves and handed back
    when it stops, as a test run starts and stops many apps."""
    app = create_app(settings)
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
