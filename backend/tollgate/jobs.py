"""Background jobs, and the only module that knows they run on arq.

What a job must do lives in PostgreSQL (a grant's `expiresAt`, a key's age), so a lost Redis
queue loses nothing: the next run finds the same work. Every job is safe to run twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from arq import cron
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker

from tollgate import idempotency
from tollgate.auth import sessions
from tollgate.config import Settings
from tollgate.db import Database, create_engine
from tollgate.ledger.expiry import expire_due_grants
from tollgate.metering import holds
from tollgate.subscriptions.renewals import renew_due

log = logging.getLogger(__name__)
QUEUE = "tollgate:jobs"


async def expire_grants(ctx: dict[str, Any]) -> int:
    # arq's own connection: it also publishes the balances that changed.
    count = await expire_due_grants(ctx["db"], now=datetime.now(UTC), redis=ctx.get("redis"))
    if count:
        log.info("expired %d grants", count)
    return count


async def release_expired_holds(ctx: dict[str, Any]) -> int:
    return await holds.release_expired(ctx["db"], now=datetime.now(UTC))


async def renew_subscriptions(ctx: dict[str, Any]) -> int:
    count = await renew_due(ctx["db"], now=datetime.now(UTC), redis=ctx.get("redis"))
    if count:
        log.info("renewed %d subscription periods", count)
    return count


async def purge_idempotency_keys(ctx: dict[str, Any]) -> int:
    settings: Settings = ctx["settings"]
    async with ctx["db"].transaction() as session:
        return await idempotency.purge_expired(
            session, timedelta(days=settings.idempotency_retention_days)
        )


async def purge_admin_sessions(ctx: dict[str, Any]) -> int:
    async with ctx["db"].transaction() as session:
        return await sessions.purge_ended(session)


FUNCTIONS = [
    expire_grants,
    release_expired_holds,
    renew_subscriptions,
    purge_idempotency_keys,
    purge_admin_sessions,
]
CRON_JOBS = [
    # Hourly, and once at start so a service that was down catches up.
    cron(expire_grants, minute=0, second=0, run_at_startup=True),
    # Holds also expire under every booking of their account; this covers idle accounts.
    cron(release_expired_holds, second=30),
    # Every minute, and at start: a period that ended while the service was down renews now.
    cron(renew_subscriptions, second=10, run_at_startup=True),
    cron(purge_idempotency_keys, hour=3, minute=17, second=0),
    cron(purge_admin_sessions, hour=3, minute=29, second=0),
]


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings.from_dsn(settings.redis_url or "redis://localhost:6379")


async def enqueue(settings: Settings, job: str, **kwargs: Any) -> None:
    """Queue a job by name, e.g. to run expiry now rather than at the next hour."""
    pool = await create_pool(redis_settings(settings))
    try:
        await pool.enqueue_job(job, _queue_name=QUEUE, **kwargs)
    finally:
        await pool.aclose()


def create_worker(settings: Settings, db: Database | None = None, *, burst: bool = False) -> Worker:
    """A worker for `tollgate worker`, or (given the app's database) inside `tollgate serve`."""
    ctx: dict[str, Any] = {"settings": settings}
    if db is not None:
        ctx["db"] = db

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx.setdefault("db", Database(create_engine(settings)))

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if db is None:
            await ctx["db"].dispose()

    return Worker(
        functions=FUNCTIONS,
        cron_jobs=CRON_JOBS,
        redis_settings=redis_settings(settings),
        ctx=ctx,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        handle_signals=db is None,
        queue_name=QUEUE,
        burst=burst,
    )
