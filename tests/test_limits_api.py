"""Limits through GraphQL: setting them, reading them with current usage, typed refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from tests.conftest import GraphQLClient
from tests.helpers import create_account
from tollgate.accounts.models import Account
from tollgate.db import Database
from tollgate.limits import service

LIMITS = """
  accountExternalId tokensPerDay tokensPerMonth callsPerDay callsPerMonth
  costCapPerDayMicros costCapPerMonthMicros maxTokensPerRequest requestsPerMinute
  allowedModels timezone lowBalanceCredits updatedAt
  thresholds { limit warnAtPercent blockAtPercent }
  day { window tokens calls costMicros }
  month { window tokens calls costMicros }
  usage { limit window used limitValue percentUsed warnAtPercent blockAtPercent level }
"""
SET = (
    "mutation($input: SetAccountLimitsInput!) { setAccountLimits(input: $input) { __typename"
    f" ... on AccountLimits {{ {LIMITS} }}"
    " ... on ValidationFailed { field message } ... on AccountNotFound { externalId } } }"
)
GET = f"query($id: String!) {{ accountLimits(accountExternalId: $id) {{ {LIMITS} }} }}"
AUDIT = "query { auditLog(first: 20) { nodes { operation result } } }"


async def _set(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    data = await gql.data(SET, input={"accountExternalId": "u1", **fields})
    result: dict[str, Any] = data["setAccountLimits"]
    return result


async def test_set_and_read_limits_with_usage(gql: GraphQLClient, db: Database) -> None:
    await create_account(gql, "u1")
    result = await _set(
        gql,
        tokensPerDay=1_000,
        callsPerMonth=3_000_000_000,  # above GraphQL's 32-bit Int
        costCapPerMonthMicros=25_000_000,
        maxTokensPerRequest=8_000,
        requestsPerMinute=60,
        allowedModels=["gpt-4o*", "claude-*"],
        timezone="America/New_York",
        lowBalanceCredits=100,
        thresholds=[{"limit": "TOKENS_PER_DAY", "warnAtPercent": 50, "blockAtPercent": 100}],
    )
    assert result["__typename"] == "AccountLimits"
    assert result["callsPerMonth"] == 3_000_000_000
    assert result["allowedModels"] == ["gpt-4o*", "claude-*"]
    assert result["tokensPerMonth"] is None and result["updatedAt"]
    thresholds = {
        t["limit"]: (t["warnAtPercent"], t["blockAtPercent"]) for t in result["thresholds"]
    }
    assert thresholds["TOKENS_PER_DAY"] == (50, 100)
    assert thresholds["COST_CAP_PER_MONTH"] == (80, 95)
    assert len(thresholds) == 6

    async with db.transaction() as s:
        account_id = await s.scalar(select(Account.id).where(Account.external_id == "u1"))
        assert account_id is not None
        await service.add_usage(
            s,
            account_id,
            tokens=600,
            calls=2,
            cost_micros=20_000_000,
            at=datetime.now(UTC),
            timezone="America/New_York",
        )
    data = await gql.data(GET, id="u1")
    limits = data["accountLimits"]
    assert limits["day"]["tokens"] == 600 and limits["month"]["costMicros"] == 20_000_000
    usage = {u["limit"]: u for u in limits["usage"]}
    assert set(usage) == {"TOKENS_PER_DAY", "CALLS_PER_MONTH", "COST_CAP_PER_MONTH"}
    assert (usage["TOKENS_PER_DAY"]["percentUsed"], usage["TOKENS_PER_DAY"]["level"]) == (
        60,
        "WARNING",
    )
    assert usage["COST_CAP_PER_MONTH"]["level"] == "WARNING"
    assert usage["CALLS_PER_MONTH"]["level"] == "OK"
    assert usage["TOKENS_PER_DAY"]["window"] == limits["day"]["window"]


async def test_an_account_without_limits(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    limits = (await gql.data(GET, id="u1"))["accountLimits"]
    assert limits["tokensPerDay"] is None and limits["allowedModels"] is None
    assert limits["updatedAt"] is None and limits["usage"] == []
    assert limits["day"]["window"].startswith("day:") and limits["day"]["tokens"] == 0
    assert (await gql.data(GET, id="ghost"))["accountLimits"] is None


async def test_typed_refusals_change_nothing(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    assert (await _set(gql, tokensPerDay=500))["__typename"] == "AccountLimits"
    refusals = [
        ({"tokensPerDay": -1}, "tokensPerDay"),
        ({"requestsPerMinute": 0}, "requestsPerMinute"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"allowedModels": [""]}, "allowedModels"),
        (
            {"thresholds": [{"limit": "CALLS_PER_DAY", "warnAtPercent": 96, "blockAtPercent": 95}]},
            "thresholds",
        ),
        (
            {
                "thresholds": [
                    {"limit": "CALLS_PER_DAY", "warnAtPercent": 50, "blockAtPercent": 60},
                    {"limit": "CALLS_PER_DAY", "warnAtPercent": 70, "blockAtPercent": 80},
                ]
            },
            "thresholds",
        ),
    ]
    for fields, field in refusals:
        result = await _set(gql, **fields)
        assert (result["__typename"], result["field"]) == ("ValidationFailed", field), fields
    ghost = await gql.data(SET, input={"accountExternalId": "ghost", "tokensPerDay": 1})
    assert ghost["setAccountLimits"] == {"__typename": "AccountNotFound", "externalId": "ghost"}
    limits = (await gql.data(GET, id="u1"))["accountLimits"]
    assert limits["tokensPerDay"] == 500 and limits["timezone"] is None

    bad_enum = await gql.execute(
        SET,
        input={
            "accountExternalId": "u1",
            "thresholds": [
                {"limit": "MAX_TOKENS_PER_REQUEST", "warnAtPercent": 1, "blockAtPercent": 2}
            ],
        },
    )
    assert bad_enum["errors"]


async def test_audited_and_permissioned(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    await _set(gql, callsPerDay=10)
    await _set(gql, timezone="Nowhere")
    entries = (await gql.data(AUDIT))["auditLog"]["nodes"]
    ours = [e["result"]["type"] for e in entries if e["operation"] == "setAccountLimits"]
    assert ours == ["ValidationFailed", "LimitsReport"]  # newest first
    stored = next(
        e for e in entries if e["operation"] == "setAccountLimits" and "external_id" in e["result"]
    )
    assert stored["result"]["external_id"] == "u1"

    anonymous = await gql.as_key(None).execute(GET, id="u1")
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
