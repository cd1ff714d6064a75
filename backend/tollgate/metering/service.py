"""The metering entry points every adapter calls: GraphQL, the JSON routes, the gateway."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TypeAlias, cast

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate import errors
from tollgate.db import Database
from tollgate.ledger.spending import LedgerWriter
from tollgate.live import publish as live
from tollgate.metering import holds, subjects
from tollgate.metering.authorize import AuthorizeResult, authorize_batch, screen
from tollgate.metering.committer import GroupCommitter
from tollgate.metering.deps import MeteringDeps
from tollgate.metering.models import Reservation
from tollgate.metering.record import RecordResult, earlier_events, record_batch
from tollgate.metering.requests import MAX_BATCH, AuthorizeRequest, UsageEventInput, hash_ahead
from tollgate.metering.results import Authorized, BatchOutcome, Denied, Recorded, Released
from tollgate.metering.scope import BatchScope

Request: TypeAlias = AuthorizeRequest | UsageEventInput
Response: TypeAlias = AuthorizeResult | RecordResult


class Metering:
    def __init__(self, db: Database, redis: Redis, deps: MeteringDeps) -> None:
        self.db, self.redis, self.deps = db, redis, deps
        # One committer for both: a hot account's bookings and holds share one transaction,
        # one lookup and one lock instead of queueing for its wallet row in two.
        self._committer = GroupCommitter(db, self._run, self._publish, _account_of)
        self._known = subjects.Known()

    async def authorize(self, request: AuthorizeRequest) -> AuthorizeResult:
        result = (await self._committer.submit([request]))[0]
        assert not isinstance(result, Recorded | errors.IdempotencyConflict)
        return result

    async def record(self, events: list[UsageEventInput]) -> list[RecordResult]:
        if len(events) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} events per call")
        if not events:
            return []
        hash_ahead(events)
        results = await self._committer.submit(list(events))
        assert not any(isinstance(r, Authorized | Denied) for r in results)
        return cast(list[RecordResult], results)

    async def wait_idle(self) -> None:
        await self._committer.wait_idle()

    async def release(self, reservation_id: uuid.UUID) -> Released | errors.NotFound:
        now = datetime.now(UTC)
        async with self.db.transaction() as session:
            return await release(session, reservation_id, now)

    async def _run(
        self, session: AsyncSession, requests: list[Request], now: datetime
    ) -> BatchOutcome[Response]:
        """Bookings first, so that the holds decided after them see the credits they freed."""
        scope = BatchScope(session, now, known=self._known)
        found = await scope.find(r.account_external_id for r in requests)
        events = [r for r in requests if isinstance(r, UsageEventInput)]
        asks = [r for r in requests if isinstance(r, AuthorizeRequest)]
        # Limits, replayed events and the checks authorizations need no lock for (Redis rate
        # windows) come before the locks: every round trip saved while a hot account's wallet
        # is locked is time the next batch does not wait. Then everything the batch may touch
        # is locked at once, in the ledger's order.
        await scope.limits(s.account_id for s in found.values())
        if events:
            scope.earlier_events = await earlier_events(session, events)
        screened = await screen(scope, self.deps, asks)
        await scope.lock(found.values())
        booked = await record_batch(session, self.deps, events, now=now, scope=scope)
        held = await authorize_batch(
            session, self.deps, asks, now=now, scope=scope, screened=screened
        )
        await scope.flush()
        answers: Iterator[Response] = iter(booked.results)
        decisions: Iterator[Response] = iter(held.results)
        return BatchOutcome(
            results=[
                next(answers if isinstance(r, UsageEventInput) else decisions) for r in requests
            ],
            alerts=booked.alerts + held.alerts,
            usage=booked.usage + held.usage,
            balances=booked.balances + held.balances,
        )

    async def _publish(self, outcome: BatchOutcome[Any]) -> None:
        await live.after_commit(
            self.redis, alerts=outcome.alerts, usage=outcome.usage, balances=outcome.balances
        )


def _account_of(request: Request) -> str:
    return request.account_external_id


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
