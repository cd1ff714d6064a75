"""Alembic environment (async): runs migrations over asyncpg, the driver the service uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from tollgate.config import sqlalchemy_url
from tollgate.models import metadata

config = context.config


# Several replicas may start at once; one migrates while the others wait, then find nothing to do.
MIGRATION_LOCK = 7_420_001


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(sqlalchemy_url(config.get_main_option("sqlalchemy.url") or ""))
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `tollgate migrate`")
asyncio.run(_run_async())
