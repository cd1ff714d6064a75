"""authorizeUsage, recordUsage and releaseReservation end to end on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import GraphQLClient
from tests.metering_helpers import (
    MODEL,
    RELEASE,
    authorize,
    balance,
    funded_account,
    price_model,
    record,
)
from tollgate import errors
from tollgate.db import Database
from tollgate.metering import subjects
from tollgate.metering.models import UsageEvent
from tollgate.metering.record import record_batch
from tollgate.metering.requests import AuthorizeRequest, UsageEventInput
from tollgate.metering.results import Authorized, Recorded
from tollgate.metering.scope import BatchScope, ConcurrentDuplicate


def event(account: str, input_tokens: int, output_tokens: int, **extra: object) -> dict:
    return {
        "eventId": str(extra.pop("eventId", uuid.uuid4())),
        "accountExternalId": account,
        "model": MODEL,
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        **extra,
    }


async def test_authorize_holds_and_record_settles(gql: GraphQLClient) -> None:
    await price_model(gql)
    await funded_account(gql, "u1", 100)
    # 10,000 in + 20,000 out = 10,000 + 40,000 micro-USD = 50 credits at $0.001.
    held = await authorize(gql, "u1", 10_000, 20_000)
    assert held["__typename"] == "Authorized" and held["creditsHeld"] == 50
    assert await balance(gql, "u1") == {"available": 50, "reserved": 50, "total": 100}
    booked = await record(gql, [event("u1", 10_000, 5_000, reservationId=held["reservationId"])])
    # Actual: 10,000 + 10,000 micro-USD = 20 credits; the other 30 held are released.
    assert booked[0]["__typename"] == "Recorded"
    assert (booked[0]["costMicros"], booked[0]["credits"], booked[0]["flags"]) == (20_000, 20, [])
    assert await balance(gql, "u1") == {"available": 80, "reserved": 0, "total": 80}


async def test_usage_above_the_hold_is_charged_and_flagged(gql: GraphQLClient) -> None:
    await price_model(gql)
    await funded_account(gql, "u1", 100)
    held = await authorize(gql, "u1", 1_000, 1_000)  # 3 credits
    booked = await record(gql, [event("u1", 1_000, 10_000, reservationId=held["reservationId"])])
    assert booked[0]["credits"] == 21 and "ABOVE_HOLD" in booked[0]["flags"]
    assert (await balance(gql, "u1"))["available"] == 79


async def test_usage_beyond_the_balance_is_recorded_as_uncollected(gql: GraphQLClient) -> None:
    await price_model(gql)
    await funded_account(gql, "u1", 5)
    booked = await record(gql, [event("u1", 10_000, 0)])
    assert booked[0]["credits"] == 10 and booked[0]["uncollectedCredits"] == 5
    assert "UNCOLLECTED" in booked[0]["flags"]
    assert (await balance(gql, "u1"))["total"] == 0


async def test_300_concurrent_authorizations_never_oversell(gql: GraphQLClient) -> None:
    await price_model(gql)
    await funded_account(gql, "hot", 1_000)  # covers 100 holds of 10 credits
    answers = await asyncio.gather(*(authorize(gql, "hot", 10_000, 0) for _ in range(300)))
    granted = [a for a in answers if a["__typename"] == "Authorized"]
    denied = [a for a in answers if a["__typename"] == "Denied"]
    assert len(granted) == 100 and len(denied) == 200
    assert {d["reason"] for d in denied} == {"INSUFFICIENT_CREDITS"}
    assert await balance(gql, "hot") == {"available": 0, "reserved": 1_000, "total": 1_000}
    # Each call really used between 1 and 10 credits' worth.
    actual = [(i % 10 + 1) * 1_000 for i in range(100)]
    booked = await record(
        gql,
        [
            event("hot", tokens, 0, reservationId=a["reservationId"])
            for a, tokens in zip(granted, actual)
        ],
    )
    charged = sum(b["credits"] for b in booked)
    assert charged == sum(t // 1_000 for t in actual)
    assert await balance(gql, "hot") == {
        "available": 1_000 - charged,
        "reserved": 0,
        "total": 1_000 - charged,
    }


async def test_release_frees_the_hold_once(gql: GraphQLClient) -> None:
    await price_model(gql)
    await funded_account(gql, "u1", 100)
    held = await authorize(gql, "u1", 10_000, 0)
    first = (await gql.data(RELEASE, id=held["reservationId"]))["releaseReservation"]
    again = (await gql.data(RELEASE, id=held["reservationId"]))["releaseReservation"]
    assert first == {"__typename": "Released", "creditsReleased": 10}
    assert again == {"__typename": "Released", "creditsReleased": 0}
    missing = (await gql.data(RELEASE, id=str(uuid.uuid4())))["releaseReservation"]
    assert missing["__typename"] == "NotFound"
    assert await balance(gql, "u1") == {"available": 100, "reserved": 0, "total": 100}


async def test_replayed_batch_books_nothing_and_one_bad_event_loses_nothing(
    gql: GraphQLClient, db: Database
) -> None:
    await price_model(gql)
    await funded_account(gql, "u1", 1_000_000)
    events = [event("u1", 1_000, 500) for _ in range(1_000)]
    first = await record(gql, events)
    assert all(r["__typename"] == "Recorded" for r in first)
    after_first = await balance(gql, "u1")
    assert after_first["total"] == 1_000_000 - 1_000 * 2
    again = await record(gql, events)
    assert again == first
    assert await balance(gql, "u1") == after_first

    batch = [event("u1", 1_000, 0) for _ in range(999)]
    batch.insert(500, event("u1", -5, 0))
    results = await record(gql, batch)
    assert results[500]["__typename"] == "ValidationFailed"
    assert sum(r["__typename"] == "Recorded" for r in results) == 999
    assert (await balance(gql, "u1"))["total"] == after_first["total"] - 999
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(UsageEvent)) == 1_999
        # The ledger still balances: every wallet's cache equals its entries.
        bad = (
            await s.execute(
                text(
                    "SELECT w.id FROM wallets w LEFT JOIN ledger_entries e ON e.wallet_id = w.id"
                    " WHERE w.kind <> 'SYSTEM' GROUP BY w.id"
                    " HAVING w.balance <> coalesce(sum(e.amount), 0)"
                )
            )
        ).all()
        assert bad == []


async def test_same_event_id_with_other_values_is_a_conflict(gql: GraphQLClient) -> None:
    await price_model(gql)
    await funded_account(gql, "u1", 100)
    e = event("u1", 1_000, 0)
    assert (await record(gql, [e]))[0]["__typename"] == "Recorded"
    changed = {**e, "inputTokens": 2_000}
    assert (await record(gql, [changed]))[0]["__typename"] == "IdempotencyConflict"
    assert (await balance(gql, "u1"))["total"] == 99


async def test_typed_refusals(gql: GraphQLClient) -> None:
    await price_model(gql)
    await funded_account(gql, "u1", 100)
    assert (await authorize(gql, "ghost", 1, 1))["__typename"] == "AccountNotFound"
    assert (await authorize(gql, "u1", 1, 1, model="no-such-model"))["__typename"] == "UnknownModel"
    assert (await authorize(gql, "u1", -1, 1))["__typename"] == "ValidationFailed"
    results = await record(gql, [event("ghost", 1, 1), {**event("u1", 1, 1), "model": "nope"}])
    assert [r["__typename"] for r in results] == ["AccountNotFound", "UnknownModel"]
    # A provider-reported cost prices a model the catalog does not know.
    priced = await record(
        gql, [{**event("u1", 1, 1), "model": "nope", "providerCostMicros": 3_500}]
    )
    assert (priced[0]["costMicros"], priced[0]["credits"]) == (3_500, 4)


async def test_results_carry_what_the_account_may_still_spend(gql: GraphQLClient, app: Any) -> None:
    """In-process callers (the gateway's credits-remaining header) read the balance left from
    the result instead of another transaction; it must equal what the ledger says."""
    await price_model(gql)
    await funded_account(gql, "u-left", 100)
    metering = app.state.metering
    held = await metering.authorize(
        AuthorizeRequest("u-left", MODEL, estimated_input_tokens=10_000, max_output_tokens=20_000)
    )
    assert isinstance(held, Authorized)
    assert held.available_credits == (await balance(gql, "u-left"))["available"] == 50
    [booked] = await metering.record(
        [
            UsageEventInput(
                "e-left", "u-left", MODEL, 10_000, 5_000, reservation_id=held.reservation_id
            )
        ]
    )
    assert isinstance(booked, Recorded)
    assert booked.available_credits == (await balance(gql, "u-left"))["available"] == 80
    [replayed] = await metering.record(
        [
            UsageEventInput(
                "e-left", "u-left", MODEL, 10_000, 5_000, reservation_id=held.reservation_id
            )
        ]
    )
    assert isinstance(replayed, Recorded) and replayed.available_credits is None


async def test_one_event_id_racing_in_two_transactions_is_booked_once(
    gql: GraphQLClient, db: Database, app: Any
) -> None:
    """Replayed ids are read before the wallets are locked, so two transactions may both take
    an event id for new: the INSERT of the second waits for the first, skips the row, and its
    batch fails as a whole, to run again (the committer retries) and find the booking."""
    await price_model(gql)
    await funded_account(gql, "racer-a", 1_000)
    await funded_account(gql, "racer-b", 1_000)
    deps = app.state.metering.deps

    def usage(account: str, event_id: str) -> UsageEventInput:
        return UsageEventInput(event_id, account, MODEL, input_tokens=1_000)

    first_inserted, second_done = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with db.transaction() as session:
            now = datetime.now(UTC)
            booked = await record_batch(session, deps, [usage("racer-a", "shared")], now=now)
            assert isinstance(booked.results[0], Recorded)
            first_inserted.set()
            # Commit only once the second transaction has had time to reach its INSERT.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(second_done.wait(), 0.5)

    async def second() -> None:
        await first_inserted.wait()
        try:
            async with db.transaction() as session:
                batch = [usage("racer-b", "shared"), usage("racer-b", "own")]
                await record_batch(session, deps, batch, now=datetime.now(UTC))
        finally:
            second_done.set()

    results = await asyncio.gather(first(), second(), return_exceptions=True)
    assert results[0] is None and isinstance(results[1], ConcurrentDuplicate)
    async with db.transaction() as session:
        batch = [usage("racer-b", "shared"), usage("racer-b", "own")]
        again = await record_batch(session, deps, batch, now=datetime.now(UTC))
    assert isinstance(again.results[0], errors.IdempotencyConflict)
    assert isinstance(again.results[1], Recorded)
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(UsageEvent)) == 2
    assert (await balance(gql, "racer-a"))["total"] == 999
    assert (await balance(gql, "racer-b"))["total"] == 999


async def test_known_accounts_are_found_without_a_query() -> None:
    known = subjects.Known(limit=2)
    first = subjects.Subject(1, "first", 11, None, None, None)
    known.keep([first])
    # A session that any query would fail on: the scope must not touch it.
    scope = BatchScope(cast(AsyncSession, object()), datetime.now(UTC), known=known)
    found = (await scope.find(["first"]))["first"]
    assert found == first and found is not first
    found.pool_drawn = 7  # a transaction's refresh stays in that transaction
    kept = known.get("first")
    assert kept is not None and kept.pool_drawn == 0
    known.keep([subjects.Subject(2, "second", 12, None, None, None)])
    known.keep([subjects.Subject(3, "third", 13, None, None, None)])
    assert known.get("first") is None and known.get("third") is not None


async def test_an_account_created_after_a_miss_is_found(gql: GraphQLClient) -> None:
    await price_model(gql)
    assert (await authorize(gql, "late", 1, 1))["__typename"] == "AccountNotFound"
    await funded_account(gql, "late", 10)
    assert (await authorize(gql, "late", 1, 1))["__typename"] == "Authorized"
