"""The `tollgate` command: serve, worker, migrate, keys, users, catalog, schema."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from tollgate.config import Settings

log = logging.getLogger("tollgate")


@contextlib.contextmanager
def resolved_settings(*, need_redis: bool = True) -> Iterator[Settings]:
    """Settings with database and Redis URLs: from the environment, or embedded servers under
    the data folder, started here and stopped when the block ends."""
    from tollgate.runtime.embedded import embedded_services

    settings = Settings.from_env()
    want_pg = settings.database_url is None
    want_redis = need_redis and settings.redis_url is None
    if not (want_pg or want_redis):
        yield settings
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with embedded_services(settings.data_dir.resolve(), postgres=want_pg, redis=want_redis) as (
        db_url,
        redis_url,
    ):
        yield dataclasses.replace(
            settings,
            database_url=settings.database_url or db_url,
            redis_url=settings.redis_url or redis_url,
        )


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pgserver").setLevel(logging.WARNING)


@click.group()
def main() -> None:
    """Tollgate: metering, credits, enforcement and pricing for AI products."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Do not run background jobs in this process.")
@click.option(
    "--access-log", is_flag=True, help="Log every request (off by default: the hot path is busy)."
)
@click.option(
    "--demo", is_flag=True, help="Seed demo tiers and customers, and generate live usage."
)
def serve(host: str, port: int, no_worker: bool, access_log: bool, demo: bool) -> None:
    """Run the API (and, unless --no-worker, the background jobs)."""
    import uvicorn

    from tollgate import migrate
    from tollgate.app import create_app

    _logging()
    with resolved_settings() as settings:
        if demo:
            settings = dataclasses.replace(settings, demo=True)
        assert settings.database_url is not None
        migrate.upgrade(settings.database_url)
        app = create_app(settings, run_worker=not no_worker)
        log.info(
            "Tollgate on http://%s:%d (admin app at /admin, GraphQL at /graphql, env=%s)",
            host,
            port,
            settings.env,
        )
        # uvicorn re-raises the signal it stopped on, under the handler it found at start.
        # SIGTERM's default would kill us before the embedded servers are stopped.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            proxy_headers=False,
            access_log=access_log,
        )


@main.command()
def worker() -> None:
    """Run the background jobs (expiry, clean-up) on their own."""
    from tollgate import jobs

    _logging()
    with resolved_settings() as settings:
        jobs.create_worker(settings).run()


@main.command()
def migrate() -> None:
    """Apply database migrations."""
    from tollgate import migrate as migrations

    _logging()
    with resolved_settings(need_redis=False) as settings:
        assert settings.database_url is not None
        migrations.upgrade(settings.database_url)
    click.echo("migrations applied")


@main.group()
def keys() -> None:
    """Admin API keys."""


@keys.command("create")
@click.option("--role", type=click.Choice(["owner", "admin", "analyst", "service"]), required=True)
@click.option("--name", required=True)
def keys_create(role: str, name: str) -> None:
    """Create an admin key and print its secret (shown only this once)."""
    from tollgate import migrate as migrations
    from tollgate.auth.service import create_key
    from tollgate.db import Database, create_engine
    from tollgate.errors import ValidationFailed

    async def run(settings: Settings) -> str:
        db = Database(create_engine(settings))
        try:
            async with db.transaction() as session:
                created = await create_key(session, name=name, role=role, created_by="cli")
        finally:
            await db.dispose()
        if isinstance(created, ValidationFailed):
            raise click.BadParameter(created.message, param_hint=created.field)
        return created.secret

    with resolved_settings(need_redis=False) as settings:
        assert settings.database_url is not None
        migrations.upgrade(settings.database_url)
        click.echo(asyncio.run(run(settings)))


@main.group()
def users() -> None:
    """People who sign in to the admin app."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["owner", "admin", "analyst"]), required=True)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
def users_create(email: str, role: str, password_stdin: bool) -> None:
    """Create an admin user who signs in at /admin with this email and a password."""
    from tollgate import migrate as migrations
    from tollgate.auth import passwords
    from tollgate.auth.users import create_user
    from tollgate.db import Database, create_engine
    from tollgate.errors import AlreadyExists, ValidationFailed

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if problem := passwords.password_problem(password):
        raise click.BadParameter(problem, param_hint="password")

    async def run(settings: Settings) -> str:
        db = Database(create_engine(settings))
        try:
            async with db.transaction() as session:
                created = await create_user(
                    session, email=email, password=password, role=role, created_by="cli"
                )
        finally:
            await db.dispose()
        if isinstance(created, ValidationFailed):
            raise click.BadParameter(created.message, param_hint=created.field)
        if isinstance(created, AlreadyExists):
            raise click.ClickException(created.message)
        return created.email

    with resolved_settings(need_redis=False) as settings:
        assert settings.database_url is not None
        migrations.upgrade(settings.database_url)
        click.echo(f"created {role} {asyncio.run(run(settings))}")


@main.group()
def catalog() -> None:
    """The model price catalog."""


@catalog.command("load")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A catalog JSON file (default: the catalog shipped with Tollgate).",
)
def catalog_load(path: Path | None) -> None:
    """Add the catalog's models, aliases and prices that are missing; changes nothing else."""
    from redis.asyncio import Redis

    from tollgate import migrate as migrations
    from tollgate.db import Database, create_engine
    from tollgate.invalidation import publish
    from tollgate.pricing.cache import TOPIC
    from tollgate.pricing.catalog_file import CatalogFileError, load_catalog

    async def run(settings: Settings) -> int:
        db = Database(create_engine(settings))
        try:
            async with db.transaction() as session:
                added = await load_catalog(session, path)
        finally:
            await db.dispose()
        redis = Redis.from_url(settings.redis_url or "")
        try:
            await publish(redis, TOPIC)
        except Exception:
            log.warning("could not tell running servers; they reload prices within 30 s")
        finally:
            await redis.aclose()
        return added

    with resolved_settings() as settings:
        assert settings.database_url is not None
        migrations.upgrade(settings.database_url)
        try:
            added = asyncio.run(run(settings))
        except CatalogFileError as exc:
            raise click.ClickException(f"catalog not loaded: {exc}") from exc
    click.echo(f"{added} price versions added")


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("schema.graphql"),
)
def schema(output: Path) -> None:
    """Write the GraphQL schema (SDL); `-` prints it."""
    from tollgate.api.schema import schema_sdl

    sdl = schema_sdl()
    if str(output) == "-":
        sys.stdout.write(sdl)
    else:
        output.write_text(sdl)
        click.echo(f"wrote {output}")
