"""The metering entry points every adapter calls: GraphQL, the JSON routes, the gateway."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate import errors
from tollgate.db import Database
from tollgate.ledger.spending import LedgerWriter
from tollgate.live import publish as live
from tollgate.metering import holds, subjects
from tollgate.metering.authorize import AuthorizeResult, authorize_batch
from tollgate.metering.committer import GroupCommitter
from tollgate.metering.deps import MeteringDeps
from tollgate.metering.models import Reservation
from tollgate.metering.record import RecordResult, record_batch
from tollgate.metering.requests import MAX_BATCH, AuthorizeRequest, UsageEventInput
from tollgate.metering.results import BatchOutcome, Released


class Metering:
    def __init__(self, db: Database, redis: Redis, deps: MeteringDeps) -> None:
        self.db, self.redis, self.deps = db, redis, deps
        self._authorize = GroupCommitter(db, self._authorize_batch, self._publish)
        self._record = GroupCommitter(db, self._record_batch, self._publish)

    async def authorize(self, request: AuthorizeRequest) -> AuthorizeResult:
        return (await self._authorize.submit([request]))[0]

    async def record(self, events: list[UsageEventInput]) -> list[RecordResult]:
        if len(events) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} events per call")
        if not events:
            return []
        return await self._record.submit(events)

    async def release(self, reservation_id: uuid.UUID) -> Released | errors.NotFound:
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            return await release(session, reservation_id, now)

    async def _authorize_batch(
        self, session: AsyncSession, requests: list[AuthorizeRequest], now: datetime
    ) -> BatchOutcome[AuthorizeResult]:
        return await authorize_batch(session, self.deps, requests, now=now)

    async def _record_batch(
        self, session: AsyncSession, events: list[UsageEventInput], now: datetime
    ) -> BatchOutcome[RecordResult]:
        return await record_batch(session, self.deps, events, now=now)

    async def _publish(self, outcome: BatchOutcome[Any]) -> None:
        await live.after_commit(
            self.redis, alerts=outcome.alerts, usage=outcome.usage, balances=outcome.balances
        )


async def release(
    session: AsyncSession, reservation_id: uuid.UUID, now: datetime
) -> Released | errors.NotFound:
    """Let go of a hold now. Releasing a hold that is already closed releases nothing."""
    account_id = await session.scalar(
        select(Reservation.account_id).where(Reservation.id == reservation_id)
    )
    if account_id is None:
        return errors.NotFound(str(reservation_id), "no reservation with this id")
    found = await subjects.by_ids(session, [account_id])
    locked = await subjects.lock(session, found, now=now)
    reservation = await session.get(Reservation, reservation_id, with_for_update=True)
    assert reservation is not None
    if reservation.status != "HELD":
        return Released(reservation_id, 0)
    writer = LedgerWriter("system:metering")
    holds.give_back(
        writer,
        locked,
        reservation.wallet_id,
        reservation.credits,
        reservation.pool_wallet_id,
        reservation.pool_credits,
    )
    await holds.close(session, reservation_id, "RELEASED", now)
    await writer.flush(session)
    return Released(reservation_id, reservation.credits + reservation.pool_credits)
