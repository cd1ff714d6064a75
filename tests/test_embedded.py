"""Embedded PostgreSQL / Redis: real servers, data surviving restarts and crashes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from tollgate.runtime.embedded import EmbeddedPostgres, EmbeddedRedis, embedded_services

BACKEND = Path(__file__).resolve().parents[1] / "backend"


def _long_dir(tmp_path: Path) -> Path:
    # Well beyond the ~107-byte unix socket path limit once ".s.PGSQL.5432" is appended.
    path = tmp_path / ("d" * 60) / ("e" * 40)
    assert len(str(path / "postgres" / ".s.PGSQL.5432")) > 108
    return path


def _asyncpg_dsn(url: str) -> str:
    assert url.startswith("postgresql+asyncpg://postgres@/tollgate?host=")
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _pg(url: str, *statements: str) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
        try:
            results = [await conn.fetch(sql) for sql in statements]
            return results[-1] if results else []
        finally:
            await conn.close()

    return asyncio.run(run())


def _pg_answers(url: str) -> bool:
    try:
        _pg(url, "SELECT 1")
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    return True


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def test_postgres_persists_across_restart_with_long_path(tmp_path: Path) -> None:
    data_dir = _long_dir(tmp_path)
    pg = EmbeddedPostgres(data_dir)
    url = pg.start()
    try:
        assert pg.start() == url  # idempotent
        _pg(url, "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('kept')")
        assert _pg(url, "SELECT current_database()")[0][0] == "tollgate"
    finally:
        pg.stop()
    pg.stop()  # idempotent
    assert not _pg_answers(url)

    pg2 = EmbeddedPostgres(data_dir)
    url2 = pg2.start()
    try:
        assert [tuple(r) for r in _pg(url2, "SELECT v FROM t")] == [("kept",)]
    finally:
        pg2.stop()


def test_postgres_ignores_stale_pid_file_with_recycled_pid(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    pg.start()
    pg.stop()
    # As if the previous server crashed and its pid now belongs to an unrelated live process.
    pid_file = tmp_path / "postgres" / "postmaster.pid"
    pid_file.write_text(
        f"{os.getpid()}\n{tmp_path / 'postgres'}\n1700000000\n5432\n{tmp_path}\n\n"
        "  1234  5678\nready   \n"
    )
    url = pg.start()
    try:
        assert _pg(url, "SELECT 1")[0][0] == 1
    finally:
        pg.stop()


def test_redis_persists_across_restart(tmp_path: Path) -> None:
    data_dir = _long_dir(tmp_path)
    rd = EmbeddedRedis(data_dir)
    url = rd.start()
    try:
        assert url.startswith("redis://127.0.0.1:") and url.endswith("/0")
        assert rd.start() == url
        client = redis.Redis.from_url(url)
        client.set("k", "kept")
        client.close()
    finally:
        rd.stop()
    rd.stop()
    assert not _redis_answers(url)

    url2 = rd.start()  # the same object can start again
    try:
        client = redis.Redis.from_url(url2)
        assert client.get("k") == b"kept"
        client.close()
    finally:
        rd.stop()
    assert (data_dir / "redis" / "appendonly.aof").exists()


def test_embedded_services_stop_on_exit(tmp_path: Path) -> None:
    data_dir = tmp_path / "with space & 'quotes'"
    with embedded_services(data_dir, postgres=True, redis=True) as (db_url, redis_url):
        assert db_url is not None and redis_url is not None
        assert _pg_answers(db_url)
        assert _redis_answers(redis_url)
    assert not _pg_answers(db_url)
    assert not _redis_answers(redis_url)

    with pytest.raises(RuntimeError, match="boom"):
        with embedded_services(data_dir, postgres=False, redis=True) as (db_url, redis_url):
            assert db_url is None and redis_url is not None
            raise RuntimeError("boom")
    assert not _redis_answers(redis_url)


def test_servers_left_by_a_crashed_process_are_adopted(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        import asyncpg, redis
        from pathlib import Path
        from tollgate.runtime.embedded import embedded_services

        with embedded_services(Path({str(tmp_path)!r}), postgres=True, redis=True) as urls:
            db_url, redis_url = urls
            redis.Redis.from_url(redis_url).set("k", "from-crashed")

            async def write():
                conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
                await conn.execute("CREATE TABLE t AS SELECT 'from-crashed' AS v")
                await conn.close()

            asyncio.run(write())
            print(db_url, redis_url, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no stop()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(BACKEND)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -9, done.stderr
    old_db_url, old_redis_url = done.stdout.split()
    assert _pg_answers(old_db_url) and _redis_answers(old_redis_url)  # orphans still running

    with embedded_services(tmp_path, postgres=True, redis=True) as (db_url, redis_url):
        assert db_url is not None and redis_url is not None
        assert [tuple(r) for r in _pg(db_url, "SELECT v FROM t")] == [("from-crashed",)]
        client = redis.Redis.from_url(redis_url)
        assert client.get("k") == b"from-crashed"
        client.close()
    # Adopted, hence stopped by the new owner.
    assert not _pg_answers(old_db_url)
    assert not _redis_answers(old_redis_url)
