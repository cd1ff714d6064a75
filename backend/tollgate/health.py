"""/healthz: does PostgreSQL answer, does Redis answer."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from tollgate.db import Database

TIMEOUT_SECONDS = 2.0


async def _postgres_ok(db: Database) -> bool:
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS), db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


async def _redis_ok(redis: Redis) -> bool:
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            return bool(await redis.ping())
    except Exception:
        return False


async def healthz(request: Request) -> JSONResponse:
    state = request.app.state
    postgres, redis = await asyncio.gather(_postgres_ok(state.db), _redis_ok(state.redis))
    ok = postgres and redis
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "postgres": postgres, "redis": redis},
        status_code=200 if ok else 503,
    )
