"""The admin SPA end to end: the built app served by a real `tollgate serve`, driven in
Chromium by frontend/admin/e2e/admin.e2e.mjs (Playwright). It signs in, prices a model, creates
an account, grants credits, sees usage booked through the API appear on the account page and the
overview without a reload (pushed over the websocket, which signs in with the session cookie),
flips the global emergency stop and sees authorization denied. Any console error of the page
fails it. Screenshots land in frontend/admin/e2e/screenshots/."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tollgate.config import Settings

ROOT = Path(__file__).resolve().parent.parent
ADMIN = ROOT / "frontend" / "admin"
TOLLGATE = Path(sys.executable).parent / "tollgate"
CHROMIUM = Path("/usr/bin/chromium")
OWNER_EMAIL = "owner@tollgate.test"
OWNER_PASSWORD = "e2e-owner-password-1"
OWNER_KEY = "tgk_e2e_owner_" + "e" * 32
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        done = _run([str(ROOT / "scripts" / "frontend-install-browser")], timeout=900)
        assert CHROMIUM.exists(), (
            "Chromium is not installed and scripts/frontend-install-browser could not "
            f"install it:\n{(done.stdout + done.stderr)[-1500:]}"
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def built_spa() -> Path:
    """The admin SPA built by scripts/frontend-build (a no-op when it is up to date)."""
    assert shutil.which("node") and shutil.which("npm"), "Node.js 20+ and npm build the admin SPA"
    done = _run([str(ROOT / "scripts" / "frontend-build")], timeout=900)
    assert done.returncode == 0, f"scripts/frontend-build failed:\n{done.stdout}\n{done.stderr}"
    dist = ADMIN / "dist"
    assert (dist / "index.html").is_file()
    return dist


@contextlib.contextmanager
def _serving(settings: Settings, dist: Path, log: Path) -> Iterator[str]:
    """`tollgate serve` on the suite's PostgreSQL and Redis, with a bootstrap owner user."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env.update(
        DATABASE_URL=settings.database_url or "",
        REDIS_URL=settings.redis_url or "",
        TOLLGATE_ENV="dev",
        TOLLGATE_DATA_DIR=str(log.parent / "data"),
        TOLLGATE_SECRET_KEY=settings.secret_key or "",
        TOLLGATE_BOOTSTRAP_ADMIN_KEY=OWNER_KEY,
        TOLLGATE_BOOTSTRAP_ADMIN_EMAIL=OWNER_EMAIL,
        TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD=OWNER_PASSWORD,
        TOLLGATE_ADMIN_DIST=str(dist),
    )
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(TOLLGATE), "serve", "--port", str(port)],
            env=env,
            cwd=log.parent,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, f"serve exited early:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"not healthy in time:\n{log.read_text()[-3000:]}"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_admin_spa_end_to_end(
    settings: Settings, built_spa: Path, chromium: Path, tmp_path: Path
) -> None:
    screenshots = ADMIN / "e2e" / "screenshots"
    with _serving(settings, built_spa, tmp_path / "serve.log") as url:
        env = {
            **os.environ,
            "TOLLGATE_URL": url,
            "ADMIN_EMAIL": OWNER_EMAIL,
            "ADMIN_PASSWORD": OWNER_PASSWORD,
            "API_KEY": OWNER_KEY,
            "SCREENSHOTS": str(screenshots),
            "CHROMIUM": str(chromium),
            # The server streams subscriptions; the app's websocket signs in with its cookie.
            "EXPECT_LIVE": "1",
        }
        done = await asyncio.to_thread(_run, ["node", "e2e/admin.e2e.mjs"], 180, cwd=ADMIN, env=env)
        server_log = (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
    assert done.returncode == 0, (
        f"browser run failed:\n{done.stdout}\n{done.stderr}\n--- server log ---\n{server_log}"
    )
    assert "ok:" in done.stdout
    assert (screenshots / "02-overview.png").is_file()


async def _refused(ws_url: str, headers: dict[str, str]) -> bool:
    """Whether a websocket with these upgrade headers is turned away: at the handshake, or
    closed 4403 at connection_init."""
    init = json.dumps({"type": "connection_init", "payload": {}})
    try:
        async with connect(
            ws_url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            additional_headers=headers,
        ) as ws:
            await ws.send(init)
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            return ws.close_code == 4403
    except InvalidStatus as refusal:
        return refusal.response.status_code == 403


async def test_admin_app_websocket_signs_in_with_the_session_cookie_from_its_own_origin(
    settings: Settings, tmp_path: Path
) -> None:
    """The admin app's websocket carries no key: the session cookie signs it in, but only when
    the upgrade request comes from a page of this host (another site's page must not ride a
    signed-in browser's cookie)."""
    with _serving(settings, tmp_path / "dist", tmp_path / "serve.log") as url:
        async with httpx.AsyncClient(timeout=10) as http:
            login = await http.post(
                f"{url}/auth/login", json={"email": OWNER_EMAIL, "password": OWNER_PASSWORD}
            )
        assert login.status_code == 200, login.text
        cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
        ws_url = url.replace("http://", "ws://") + "/graphql"
        init = json.dumps({"type": "connection_init", "payload": {}})
        subscribe = json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": "subscription { usageTicker(interval: 1) { calls } }"},
            }
        )

        async with connect(
            ws_url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            additional_headers={"Cookie": cookie, "Origin": url},
        ) as ws:
            await ws.send(init)
            assert json.loads(await ws.recv()) == {"type": "connection_ack"}
            await ws.send(subscribe)
            tick = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert tick["type"] == "next", tick
            assert tick["payload"]["data"]["usageTicker"]["calls"] == 0

        assert await _refused(ws_url, {"Cookie": cookie, "Origin": "http://evil.example"})
        assert await _refused(ws_url, {"Origin": url})
