"""usageEvents and usageSummary over recorded usage."""

from __future__ import annotations

from tests.conftest import GraphQLClient
from tests.metering_helpers import MODEL, funded_account, price_model, record

EVENTS = """
query($filter: UsageEventFilter, $first: Int!, $after: String) {
  usageEvents(filter: $filter, first: $first, after: $after) {
    nodes { eventId accountExternalId model feature inputTokens costMicros credits occurredAt }
    pageInfo { hasNextPage endCursor }
  }
}"""
SUMMARY = """
query($from: DateTime!, $to: DateTime!, $groupBy: [UsageGrouping!]!, $tz: String!) {
  usageSummary(from: $from, to: $to, groupBy: $groupBy, timezone: $tz) {
    __typename
    ... on UsageSummary {
      rows { accountExternalId model feature period calls inputTokens outputTokens
             costMicros chargeMicros credits uncollectedCredits marginMicros }
    }
    ... on ValidationFailed { field message }
  }
}"""


def usage(event_id: str, account: str, tokens: int, at: str, **extra: object) -> dict:
    return {
        "eventId": event_id,
        "accountExternalId": account,
        "model": extra.pop("model", MODEL),
        "inputTokens": tokens,
        "occurredAt": at,
        **extra,
    }


async def seed(gql: GraphQLClient) -> None:
    await price_model(gql)
    await price_model(gql, "big-model", input="10", output="20")
    await funded_account(gql, "a", 1_000_000)
    await funded_account(gql, "b", 1_000_000)
    results = await record(
        gql,
        [
            usage("e1", "a", 1_000, "2026-11-10T23:30:00Z", feature="chat"),
            usage("e2", "a", 2_000, "2026-11-11T00:30:00Z", feature="chat"),
            usage("e3", "a", 3_000, "2026-11-11T10:00:00Z", model="big-model", feature="search"),
            usage("e4", "b", 4_000, "2026-11-11T10:30:00Z", feature="chat"),
        ],
    )
    assert all(r["__typename"] == "Recorded" for r in results), results


async def test_usage_events_filter_and_paginate(gql: GraphQLClient) -> None:
    await seed(gql)
    page = (await gql.data(EVENTS, filter={"accountExternalId": "a"}, first=2))["usageEvents"]
    assert [n["eventId"] for n in page["nodes"]] == ["e3", "e2"]
    assert page["pageInfo"]["hasNextPage"]
    rest = (
        await gql.data(
            EVENTS, filter={"accountExternalId": "a"}, first=2, after=page["pageInfo"]["endCursor"]
        )
    )["usageEvents"]
    assert [n["eventId"] for n in rest["nodes"]] == ["e1"]
    assert not rest["pageInfo"]["hasNextPage"]
    chat = await gql.data(
        EVENTS, filter={"feature": "chat", "from": "2026-11-11T00:00:00Z"}, first=10
    )
    assert sorted(n["eventId"] for n in chat["usageEvents"]["nodes"]) == ["e2", "e4"]
    big = (await gql.data(EVENTS, filter={"model": "big-model"}, first=10))["usageEvents"]["nodes"]
    assert [(n["eventId"], n["costMicros"], n["credits"]) for n in big] == [("e3", 30_000, 30)]


async def test_usage_summary_groups_and_margin(gql: GraphQLClient) -> None:
    await seed(gql)
    window = {"from": "2026-11-10T00:00:00Z", "to": "2026-11-12T00:00:00Z", "tz": "UTC"}
    by_account = (await gql.data(SUMMARY, groupBy=["ACCOUNT"], **window))["usageSummary"]["rows"]
    assert [
        (r["accountExternalId"], r["calls"], r["inputTokens"], r["costMicros"]) for r in by_account
    ] == [
        ("a", 3, 6_000, 1_000 + 2_000 + 30_000),
        ("b", 1, 4_000, 4_000),
    ]
    assert [r["uncollectedCredits"] for r in by_account] == [0, 0]
    # Passthrough by default: charge equals cost, so the margin is zero.
    assert all(r["marginMicros"] == r["chargeMicros"] - r["costMicros"] == 0 for r in by_account)
    by_day = (await gql.data(SUMMARY, groupBy=["DAY"], **window))["usageSummary"]["rows"]
    assert [(r["period"][:10], r["calls"]) for r in by_day] == [
        ("2026-11-10", 1),
        ("2026-11-11", 3),
    ]
    # In Warsaw (UTC+1) the 23:30 UTC event already belongs to the 11th.
    warsaw = {**window, "tz": "Europe/Warsaw"}
    local = (await gql.data(SUMMARY, groupBy=["DAY"], **warsaw))["usageSummary"]["rows"]
    assert [r["calls"] for r in local] == [4]
    by_model_feature = (await gql.data(SUMMARY, groupBy=["MODEL", "FEATURE"], **window))[
        "usageSummary"
    ]["rows"]
    assert {(r["model"], r["feature"], r["calls"]) for r in by_model_feature} == {
        (MODEL, "chat", 3),
        ("big-model", "search", 1),
    }


async def test_usage_summary_refuses_bad_ranges(gql: GraphQLClient) -> None:
    bad = await gql.data(
        SUMMARY,
        groupBy=["DAY"],
        **{"from": "2026-11-12T00:00:00Z", "to": "2026-11-11T00:00:00Z", "tz": "UTC"},
    )
    assert bad["usageSummary"]["__typename"] == "ValidationFailed"
    zone = await gql.data(
        SUMMARY,
        groupBy=["DAY"],
        **{"from": "2026-11-10T00:00:00Z", "to": "2026-11-11T00:00:00Z", "tz": "Mars/Base"},
    )
    assert zone["usageSummary"]["field"] == "timezone"
