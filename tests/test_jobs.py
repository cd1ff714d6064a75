"""Background jobs run through a real arq worker on Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tests.conftest import new_key
from tollgate import jobs
from tollgate.accounts.service import NewAccount, create_account
from tollgate.config import Settings
from tollgate.db import Database
from tollgate.idempotency import IdempotencyKey
from tollgate.ledger import service
from tollgate.ledger.models import LedgerTransaction
from tollgate.ledger.requests import GrantRequest


async def test_worker_runs_queued_expiry(db: Database, settings: Settings) -> None:
    async with db.transaction() as s:
        await create_account(s, NewAccount("u1"))
        await service.grant_credits(
            s,
            GrantRequest(
                amount=9,
                source="PROMOTION",
                idempotency_key=new_key(),
                account_external_id="u1",
                expires_at=datetime.now(UTC) + timedelta(seconds=1),
            ),
            actor="test",
        )
    await asyncio.sleep(1.1)
    await jobs.enqueue(settings, "expire_grants")
    worker = jobs.create_worker(settings, db, burst=True)
    try:
        await worker.main()
    finally:
        await worker.close()
    async with db.transaction() as s:
        expiries = await s.scalar(select(func.count()).where(LedgerTransaction.kind == "EXPIRY"))
    assert expiries == 1


async def test_idempotency_keys_are_kept_for_the_retention_period(
    db: Database, settings: Settings
) -> None:
    async with db.transaction() as s:
        s.add(IdempotencyKey(key="old", operation="x", request_hash="h", response={}))
        s.add(IdempotencyKey(key="recent", operation="x", request_hash="h", response={}))
        await s.flush()
        await s.execute(
            IdempotencyKey.__table__.update()
            .where(IdempotencyKey.key == "old")
            .values(
                created_at=func.now() - timedelta(days=settings.idempotency_retention_days, hours=1)
            )
        )
        await s.execute(
            IdempotencyKey.__table__.update()
            .where(IdempotencyKey.key == "recent")
            .values(created_at=func.now() - timedelta(days=settings.idempotency_retention_days - 1))
        )
    purged = await jobs.purge_idempotency_keys({"db": db, "settings": settings})
    assert purged == 1
    async with db.transaction() as s:
        assert (await s.scalars(select(IdempotencyKey.key))).all() == ["recent"]
