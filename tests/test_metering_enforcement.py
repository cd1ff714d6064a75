"""Enforcement around authorizeUsage: limits, rate, emergency stop across replicas, the JSON
routes, and holds that run out."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from redis.asyncio import Redis

from tests.conftest import OWNER_KEY, GraphQLClient
from tests.metering_helpers import MODEL, authorize, balance, funded_account, price_model, record
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.db import Database
from tollgate.metering import holds
from tollgate.metering.models import Reservation
from tollgate.metering.record import record_batch
from tollgate.metering.requests import UsageEventInput
from tollgate.metering.results import Recorded
from tollgate.notifications.service import ALERTS_CHANNEL

SET_LIMITS = """
mutation($input: SetAccountLimitsInput!) { setAccountLimits(input: $input) { __typename } }
"""
STOP = """
mutation($on: Boolean!) {
  setEmergencyStop(scope: GLOBAL, on: $on, reason: "incident 42") { __typename }
}"""
NOTIFICATIONS = """
query($id: String) { notifications(accountExternalId: $id) { nodes { kind subject window } } }
"""


async def set_limits(gql: GraphQLClient, account: str, **limits: Any) -> None:
    data = await gql.data(SET_LIMITS, input={"accountExternalId": account, **limits})
    assert data["setAccountLimits"]["__typename"] == "AccountLimits", data


async def test_token_limit_warns_once_then_blocks(gql: GraphQLClient) -> None:
    await price_model(gql)
    await funded_account(gql, "u1", 1_000_000)
    await set_limits(gql, "u1", tokensPerDay=10_000)
    # 8,000 recorded: at the 80 % warning threshold.
    await record(
        gql, [{"eventId": "e1", "accountExternalId": "u1", "model": MODEL, "inputTokens": 8_000}]
    )
    warned = await authorize(gql, "u1", 500, 500)
    assert warned["__typename"] == "Authorized"
    assert {(w["limit"], w["level"]) for w in warned["warnings"]} == {("TOKENS_PER_DAY", "WARNING")}
    # Would reach 9,000 + 1,000 in flight: above 95 % of 10,000 → blocked.
    blocked = await authorize(gql, "u1", 1_000, 0)
    assert blocked["__typename"] == "Denied" and blocked["reason"] == "LIMIT_EXCEEDED"
    await authorize(gql, "u1", 10, 10)
    kinds = [
        (n["kind"], n["subject"])
        for n in (await gql.data(NOTIFICATIONS, id="u1"))["notifications"]["nodes"]
    ]
    assert kinds.count(("WARNING", "TOKENS_PER_DAY")) == 1


async def test_model_not_allowed_and_max_tokens(gql: GraphQLClient) -> None:
    await price_model(gql)
    await price_model(gql, "other-model")
    await funded_account(gql, "u1", 1_000)
    await set_limits(gql, "u1", allowedModels=["test-*"], maxTokensPerRequest=100)
    refused = await authorize(gql, "u1", 1, 1, model="other-model")
    assert (refused["__typename"], refused["reason"]) == ("Denied", "MODEL_NOT_ALLOWED")
    too_big = await authorize(gql, "u1", 100, 1)
    assert (too_big["__typename"], too_big["reason"]) == ("Denied", "LIMIT_EXCEEDED")
    assert (await authorize(gql, "u1", 50, 50))["__typename"] == "Authorized"


async def test_requests_per_minute_answer_rate_limited_with_retry_after(
    gql: GraphQLClient, redis: Redis
) -> None:
    await redis.flushdb()
    await price_model(gql)
    await funded_account(gql, "u1", 1_000)
    await set_limits(gql, "u1", requestsPerMinute=3)
    answers = [await authorize(gql, "u1", 1, 1) for _ in range(4)]
    assert [a["__typename"] for a in answers] == ["Authorized"] * 3 + ["Denied"]
    assert answers[3]["reason"] == "RATE_LIMITED"
    assert 1 <= answers[3]["retryAfterSeconds"] <= 60


@asynccontextmanager
async def replica(settings: Settings) -> AsyncIterator[GraphQLClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as http:
            yield GraphQLClient(http)


async def test_emergency_stop_reaches_another_replica_within_a_second(
    settings: Settings, redis: Redis
) -> None:
    alerts = redis.pubsub()
    await alerts.subscribe(ALERTS_CHANNEL)
    async with replica(settings) as one, replica(settings) as two:
        await price_model(one)
        await funded_account(one, "u1", 1_000)
        assert (await authorize(two, "u1", 1, 1))["__typename"] == "Authorized"
        await one.data(STOP, on=True)
        started = time.monotonic()
        while True:
            answer = await authorize(two, "u1", 1, 1)
            if answer["__typename"] == "Denied":
                break
            assert time.monotonic() - started < 1.0, "the stop did not reach the other replica"
            await asyncio.sleep(0.02)
        assert answer["reason"] == "EMERGENCY_STOP" and "incident 42" in answer["message"]
        await one.data(STOP, on=False)
        started = time.monotonic()
        while (await authorize(two, "u1", 1, 1))["__typename"] != "Authorized":
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.02)
    message = None
    for _ in range(50):
        message = await alerts.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            break
    await alerts.aclose()
    assert message is not None and b"EMERGENCY_STOP" in message["data"]


async def test_json_routes_give_the_graphql_results(
    gql: GraphQLClient, client: httpx.AsyncClient
) -> None:
    await price_model(gql)
    await funded_account(gql, "u1", 100)
    auth = {"Authorization": f"Bearer {OWNER_KEY}"}
    held = (
        await client.post(
            "/api/v1/authorize",
            json={"accountExternalId": "u1", "model": MODEL, "estimatedInputTokens": 10_000},
            headers=auth,
        )
    ).json()
    assert held["__typename"] == "Authorized" and held["creditsHeld"] == 10
    booked = await client.post(
        "/api/v1/usage",
        json={
            "events": [
                {
                    "eventId": "j1",
                    "accountExternalId": "u1",
                    "model": MODEL,
                    "inputTokens": 4_000,
                    "reservationId": held["reservationId"],
                },
                {"eventId": "j2", "accountExternalId": "u1", "model": MODEL, "inputTokens": "x"},
            ]
        },
        headers=auth,
    )
    first, second = booked.json()["results"]
    assert first["__typename"] == "Recorded" and first["credits"] == 4
    assert second == {
        "__typename": "ValidationFailed",
        "field": "inputTokens",
        "message": "must be a whole number",
    }
    # The same event through GraphQL is a replay with the same numbers.
    again = await record(
        gql,
        [
            {
                "eventId": "j1",
                "accountExternalId": "u1",
                "model": MODEL,
                "inputTokens": 4_000,
                "reservationId": held["reservationId"],
            }
        ],
    )
    assert again[0]["credits"] == 4 and again[0]["transactionId"] == first["transactionId"]
    assert await balance(gql, "u1") == {"available": 96, "reserved": 0, "total": 96}
    assert (await client.post("/api/v1/authorize", json={})).status_code == 401
    bad = await client.post("/api/v1/usage", content=b"not json", headers=auth)
    assert bad.status_code == 400


async def test_expired_holds_are_released_by_the_sweep(
    gql: GraphQLClient, db: Database, settings: Settings
) -> None:
    await price_model(gql)
    await funded_account(gql, "u1", 100)
    held = await authorize(gql, "u1", 30_000, 0)
    assert (await balance(gql, "u1"))["reserved"] == 30
    later = datetime.now(UTC) + timedelta(seconds=settings.hold_ttl_seconds + 1)
    assert await holds.release_expired(db, now=later) == 1
    assert await holds.release_expired(db, now=later) == 0
    assert await balance(gql, "u1") == {"available": 100, "reserved": 0, "total": 100}
    # Settling after expiry still books the usage, flagged.
    booked = await record(
        gql,
        [
            {
                "eventId": str(uuid.uuid4()),
                "accountExternalId": "u1",
                "model": MODEL,
                "inputTokens": 1_000,
                "reservationId": held["reservationId"],
            }
        ],
    )
    assert booked[0]["flags"] == ["HOLD_NOT_ACTIVE"]


async def test_a_hold_that_ran_out_is_given_back_once_when_its_usage_arrives(
    gql: GraphQLClient, db: Database, settings: Settings, app: Any
) -> None:
    """No sweep ran: the booking's own transaction closes the expired hold before it reads the
    hold to settle it. The credits go back once, and the usage is booked, flagged."""
    await price_model(gql)
    await funded_account(gql, "u1", 100)
    held = await authorize(gql, "u1", 30_000, 0)
    later = datetime.now(UTC) + timedelta(seconds=settings.hold_ttl_seconds + 1)
    hold_id = uuid.UUID(held["reservationId"])
    usage = UsageEventInput("late-1", "u1", MODEL, input_tokens=1_000, reservation_id=hold_id)
    async with db.transaction() as session:
        booked = await record_batch(session, app.state.metering.deps, [usage], now=later)
    result = booked.results[0]
    assert isinstance(result, Recorded) and result.flags == ("HOLD_NOT_ACTIVE",)
    assert await balance(gql, "u1") == {"available": 99, "reserved": 0, "total": 99}
    async with db.transaction() as session:
        closed = await session.get(Reservation, hold_id)
    assert closed is not None and closed.status == "EXPIRED"
