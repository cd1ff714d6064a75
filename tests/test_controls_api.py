"""Controls through GraphQL: emergency stops, overrides and boosts, their alerts and audit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import delete

from tests.conftest import GraphQLClient, new_key
from tests.helpers import FRAGMENTS, create_account, grant
from tollgate.config import Settings
from tollgate.controls.cache import ControlsCache
from tollgate.controls.models import GlobalControls
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus
from tollgate.notifications.service import ALERTS_CHANNEL

STOP = """
mutation($scope: StopScope!, $on: Boolean!, $reason: String!, $account: String) {
  setEmergencyStop(scope: $scope, on: $on, reason: $reason, accountExternalId: $account) {
    __typename
    ... on EmergencyStop { scope accountExternalId on reason updatedBy updatedAt }
    ... on ValidationFailed { field message }
    ... on AccountNotFound { externalId }
  }
}"""
OVERRIDE = """
mutation($account: String!, $exempt: Boolean, $suspended: Boolean) {
  setAccountOverride(
    accountExternalId: $account, exemptFromLimits: $exempt, suspended: $suspended
  ) {
    __typename
    ... on AccountControls { accountExternalId stopped exemptFromLimits suspended }
    ... on ValidationFailed { field message }
    ... on AccountNotFound { externalId }
  }
}"""
CONTROLS = """
query($first: Int!, $after: String) {
  controls {
    globalStop { on reason updatedBy }
    accounts(first: $first, after: $after) {
      nodes { accountExternalId stopped stopReason exemptFromLimits suspended }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""
BOOST = (
    "mutation($input: GrantBoostInput!) { grantBoost(input: $input) { __typename "
    + " ".join(
        f"... on {t} {{ {FRAGMENTS[t]} }}"
        for t in ("LedgerSuccess", "ValidationFailed", "AccountNotFound", "IdempotencyConflict")
    )
    + " } }"
)
GRANTS = """
query { account(externalId: "u1") { balance { available }
  grants { source amount remaining expiresAt } } }"""
NOTIFICATIONS = """
query($account: String, $first: Int!, $after: String) {
  notifications(accountExternalId: $account, first: $first, after: $after) {
    nodes { kind accountExternalId subject window payload }
    pageInfo { hasNextPage endCursor }
  }
}"""
AUDIT = "query { auditLog(first: 50) { nodes { operation input result } } }"


@pytest.fixture(autouse=True)
async def no_global_stop(db: Database) -> AsyncIterator[None]:
    # The global row belongs to no account, so emptying the accounts does not remove it.
    yield
    async with db.transaction() as s:
        await s.execute(delete(GlobalControls))


async def _stop(gql: GraphQLClient, scope: str, on: bool, reason: str = "", **kw: Any) -> dict:
    data = await gql.data(STOP, scope=scope, on=on, reason=reason, **kw)
    result: dict[str, Any] = data["setEmergencyStop"]
    return result


async def _controls(gql: GraphQLClient, first: int = 50, after: str | None = None) -> dict:
    result: dict[str, Any] = (await gql.data(CONTROLS, first=first, after=after))["controls"]
    return result


async def _audit(gql: GraphQLClient, operation: str) -> list[dict[str, Any]]:
    nodes = (await gql.data(AUDIT))["auditLog"]["nodes"]
    return [n for n in nodes if n["operation"] == operation]


async def test_global_stop_reaches_a_cache_and_publishes_an_alert(
    gql: GraphQLClient, db: Database, settings: Settings, redis: Redis
) -> None:
    # Another replica: its own Redis connection and cache.
    other = Redis.from_url(settings.redis_url or "")
    bus = InvalidationBus(other)
    await bus.start()
    cache = ControlsCache(db, bus, refresh_seconds=600)
    await cache.start()
    try:
        async with redis.pubsub() as alerts:
            await alerts.subscribe(ALERTS_CHANNEL)
            await alerts.get_message(timeout=1)
            result = await _stop(gql, "GLOBAL", True, "upstream outage")
            assert result["__typename"] == "EmergencyStop"
            assert (result["on"], result["reason"], result["scope"]) == (
                True,
                "upstream outage",
                "GLOBAL",
            )
            assert result["updatedBy"].startswith("key:")
            message = await alerts.get_message(ignore_subscribe_messages=True, timeout=2)
        assert message is not None
        event = json.loads(message["data"])
        assert (event["kind"], event["subject"], event["accountExternalId"]) == (
            "EMERGENCY_STOP",
            "GLOBAL",
            None,
        )
        assert event["payload"]["on"] is True and event["payload"]["reason"] == "upstream outage"

        deadline = asyncio.get_running_loop().time() + 1.0
        while cache.global_stop() is None:
            assert asyncio.get_running_loop().time() < deadline, "not seen within 1 s"
            await asyncio.sleep(0.01)
        assert cache.global_stop() == "upstream outage"
        assert (await _controls(gql))["globalStop"]["on"] is True

        off = await _stop(gql, "GLOBAL", False, "resolved")
        assert (off["on"], off["reason"]) == (False, "")
        deadline = asyncio.get_running_loop().time() + 1.0
        while cache.global_stop() is not None:
            assert asyncio.get_running_loop().time() < deadline, "not seen within 1 s"
            await asyncio.sleep(0.01)
    finally:
        await cache.stop()
        await bus.stop()
        await other.aclose()

    stops = (await gql.data(NOTIFICATIONS, first=10))["notifications"]["nodes"]
    assert [(n["kind"], n["payload"]["on"]) for n in stops] == [
        ("EMERGENCY_STOP", False),
        ("EMERGENCY_STOP", True),
    ]
    assert [e["result"]["type"] for e in await _audit(gql, "setEmergencyStop")] == [
        "StopChanged",
        "StopChanged",
    ]


async def test_account_stop_and_overrides(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    await create_account(gql, "u2")
    await create_account(gql, "u3")
    stopped = await _stop(gql, "ACCOUNT", True, "abuse", account="u1")
    assert (stopped["accountExternalId"], stopped["on"]) == ("u1", True)
    exempt = (await gql.data(OVERRIDE, account="u2", exempt=True))["setAccountOverride"]
    assert exempt == {
        "__typename": "AccountControls",
        "accountExternalId": "u2",
        "stopped": False,
        "exemptFromLimits": True,
        "suspended": False,
    }
    # Only what is given changes.
    suspended = (await gql.data(OVERRIDE, account="u2", suspended=True))["setAccountOverride"]
    assert (suspended["exemptFromLimits"], suspended["suspended"]) == (True, True)

    page = await _controls(gql, first=1)
    assert page["globalStop"]["on"] is False
    assert page["accounts"]["nodes"] == [
        {
            "accountExternalId": "u1",
            "stopped": True,
            "stopReason": "abuse",
            "exemptFromLimits": False,
            "suspended": False,
        }
    ]
    assert page["accounts"]["pageInfo"]["hasNextPage"] is True
    rest = await _controls(gql, first=5, after=page["accounts"]["pageInfo"]["endCursor"])
    assert [n["accountExternalId"] for n in rest["accounts"]["nodes"]] == ["u2"]

    # Everything off: the account leaves the list.
    await gql.data(OVERRIDE, account="u2", exempt=False, suspended=False)
    await _stop(gql, "ACCOUNT", False, account="u1")
    assert (await _controls(gql))["accounts"]["nodes"] == []

    account_alerts = await gql.data(NOTIFICATIONS, account="u1", first=10)
    assert [n["subject"] for n in account_alerts["notifications"]["nodes"]] == [
        "ACCOUNT",
        "ACCOUNT",
    ]
    assert (await gql.data(NOTIFICATIONS, account="u3", first=10))["notifications"]["nodes"] == []
    assert (await gql.data(NOTIFICATIONS, account="ghost", first=10))["notifications"][
        "nodes"
    ] == []
    assert len(await _audit(gql, "setAccountOverride")) == 3


async def test_control_refusals_change_nothing(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    refusals = [
        (("GLOBAL", True, ""), {}, "reason"),
        (("GLOBAL", True, "   "), {}, "reason"),
        (("GLOBAL", True, "x" * 2_001), {}, "reason"),
        (("GLOBAL", True, "why"), {"account": "u1"}, "accountExternalId"),
        (("ACCOUNT", True, "why"), {}, "accountExternalId"),
    ]
    for (scope, on, reason), extra, field in refusals:
        result = await _stop(gql, scope, on, reason, **extra)
        assert (result["__typename"], result["field"]) == ("ValidationFailed", field)
    ghost = await _stop(gql, "ACCOUNT", True, "why", account="ghost")
    assert ghost == {"__typename": "AccountNotFound", "externalId": "ghost"}
    nothing = (await gql.data(OVERRIDE, account="u1"))["setAccountOverride"]
    assert nothing["__typename"] == "ValidationFailed"
    missing = (await gql.data(OVERRIDE, account="ghost", suspended=True))["setAccountOverride"]
    assert missing["__typename"] == "AccountNotFound"

    controls = await _controls(gql)
    assert controls["globalStop"]["on"] is False and controls["accounts"]["nodes"] == []
    assert (await gql.data(NOTIFICATIONS, first=10))["notifications"]["nodes"] == []
    audited = await _audit(gql, "setEmergencyStop")
    assert len(audited) == 6
    assert all(a["result"]["type"] in ("ValidationFailed", "AccountNotFound") for a in audited)


async def _boost(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    until = datetime.now(UTC) + timedelta(days=7)
    payload = {
        "accountExternalId": "u1",
        "credits": 300,
        "until": until.isoformat(),
        "idempotencyKey": new_key(),
        "reason": "launch week",
        **fields,
    }
    result: dict[str, Any] = (await gql.data(BOOST, input=payload))["grantBoost"]
    return result


async def test_grant_boost(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    await grant(gql, "u1", 100)
    until = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    key = new_key()
    boosted = await _boost(gql, until=until.isoformat(), idempotencyKey=key)
    assert boosted["__typename"] == "LedgerSuccess"
    assert boosted["balance"]["available"] == 400

    replay = await _boost(gql, until=until.isoformat(), idempotencyKey=key)
    assert replay == boosted
    conflict = await _boost(gql, until=until.isoformat(), idempotencyKey=key, credits=301)
    assert conflict["__typename"] == "IdempotencyConflict"

    account = (await gql.data(GRANTS))["account"]
    assert account["balance"]["available"] == 400
    boosts = [g for g in account["grants"] if g["source"] == "BOOST"]
    assert len(boosts) == 1
    assert boosts[0]["amount"] == 300
    assert datetime.fromisoformat(boosts[0]["expiresAt"]) == until

    entries = await _audit(gql, "grantBoost")
    assert [e["result"]["type"] for e in entries] == ["IdempotencyConflict", "Booked", "Booked"]
    assert entries[-1]["input"]["reason"] == "launch week"


async def test_boost_refusals_book_nothing(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    past = datetime.now(UTC) - timedelta(minutes=1)
    far = datetime.now(UTC) + timedelta(days=400)
    refusals = [
        ({"until": past.isoformat()}, "until"),
        ({"until": far.isoformat()}, "until"),
        ({"until": "2030-01-01T00:00:00"}, "until"),  # no timezone
        ({"credits": 0}, "credits"),
        ({"credits": -5}, "credits"),
        ({"idempotencyKey": " "}, "idempotencyKey"),
        ({"reason": "x" * 2_001}, "reason"),
    ]
    for fields, field in refusals:
        result = await _boost(gql, **fields)
        assert (result["__typename"], result["field"]) == ("ValidationFailed", field), fields
    assert (await _boost(gql, accountExternalId="ghost"))["__typename"] == "AccountNotFound"
    account = (await gql.data(GRANTS))["account"]
    assert account["balance"]["available"] == 0 and account["grants"] == []


async def test_controls_need_the_admin_role(gql: GraphQLClient) -> None:
    anonymous = await gql.as_key(None).execute(STOP, scope="GLOBAL", on=True, reason="x")
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await _controls(gql))["globalStop"]["on"] is False
