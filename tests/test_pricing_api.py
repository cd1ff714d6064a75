"""Pricing through GraphQL: catalog upserts and listing, policies, quotes, typed refusals that
change nothing, audit rows and permissions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import GraphQLClient
from tests.helpers import create_account
from tests.test_pricing_catalog import truncate_pricing
from tollgate.auth.service import CreatedKey, create_key
from tollgate.db import Database

UPSERT = """
mutation($input: UpsertModelPriceInput!) {
  upsertModelPrice(input: $input) {
    __typename
    ... on ModelPrice { id provider model aliases inputPerMillion outputPerMillion
                        cachedInputPerMillion perImage perRequest effectiveFrom }
    ... on ValidationFailed { field message }
  }
}"""
PRICES = """
query($first: Int!, $after: String, $model: String, $history: Boolean!) {
  modelPrices(first: $first, after: $after, model: $model, includeHistory: $history) {
    nodes { model inputPerMillion effectiveFrom }
    pageInfo { hasNextPage endCursor }
  }
}"""
POLICY_FIELDS = """
    __typename
    ... on PricingPolicy {
      scope accountExternalId kind multiplier fixedPerCallUsd defaultMarkup platformFeeUsd
      modelRules { model markup minChargeUsd }
      timeRules { start end timezone multiplier weekdays }
    }
    ... on ValidationFailed { field message }
    ... on AccountNotFound { externalId }
"""
SET_POLICY = (
    "mutation($input: SetPricingPolicyInput!) { setPricingPolicy(input: $input) {"
    + POLICY_FIELDS
    + "} }"
)
CLEAR_POLICY = (
    "mutation($account: String) { clearPricingPolicy(accountExternalId: $account) {"
    + POLICY_FIELDS
    + "} }"
)
GET_POLICY = (
    "query($account: String) { pricingPolicy(accountExternalId: $account) {" + POLICY_FIELDS + "} }"
)
QUOTE = """
query($model: String!, $in: Int! = 0, $out: Int! = 0, $cached: Int! = 0, $images: Int! = 0,
      $byok: Boolean! = false, $account: String, $provider: String, $at: DateTime) {
  quoteCall(model: $model, inputTokens: $in, outputTokens: $out, cachedInputTokens: $cached,
            images: $images, byok: $byok, accountExternalId: $account, provider: $provider,
            at: $at) {
    __typename
    ... on Quote { costMicros chargeMicros credits policyKind policyScope priceEffectiveFrom
                   price { model provider } }
    ... on UnknownModel { model provider message }
    ... on AccountNotFound { externalId }
    ... on ValidationFailed { field message }
  }
}"""
AUDIT = "query { auditLog(first: 1) { nodes { operation input result } } }"
GPT_4O = {
    "provider": "openai",
    "model": "gpt-4o",
    "aliases": ["gpt-4o-2024-08-06"],
    "inputPerMillion": "2.50",
    "outputPerMillion": "10",
    "cachedInputPerMillion": "1.25",
    "effectiveFrom": "2025-01-01T00:00:00+00:00",
}


@pytest.fixture(autouse=True)
async def clean_pricing(db: Database) -> AsyncIterator[None]:
    await truncate_pricing(db)
    yield
    await truncate_pricing(db)


async def upsert(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(UPSERT, input={**GPT_4O, **fields}))[
        "upsertModelPrice"
    ]
    return result


async def set_policy(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(SET_POLICY, input=fields))["setPricingPolicy"]
    return result


async def quote(gql: GraphQLClient, model: str = "gpt-4o", **variables: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(QUOTE, model=model, **variables))["quoteCall"]
    return result


async def last_audit(gql: GraphQLClient) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = (await gql.data(AUDIT))["auditLog"]["nodes"]
    return nodes[0]


async def test_upsert_model_price_and_its_audit_row(gql: GraphQLClient) -> None:
    created = await upsert(gql)
    assert created == {
        "__typename": "ModelPrice",
        "id": created["id"],
        "provider": "openai",
        "model": "gpt-4o",
        "aliases": ["gpt-4o-2024-08-06"],
        "inputPerMillion": "2.5",
        "outputPerMillion": "10",
        "cachedInputPerMillion": "1.25",
        "perImage": "0",
        "perRequest": "0",
        "effectiveFrom": "2025-01-01T00:00:00+00:00",
    }
    audit = await last_audit(gql)
    assert audit["operation"] == "upsertModelPrice"
    assert audit["input"]["input_per_million"] == "2.50"
    assert audit["result"] == {"type": "ModelPriceVersion", "id": created["id"]}

    replaced = await upsert(gql, inputPerMillion="3", aliases=None)
    assert replaced["id"] == created["id"]
    assert (replaced["inputPerMillion"], replaced["aliases"]) == ("3", ["gpt-4o-2024-08-06"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"inputPerMillion": "-1"}, "inputPerMillion"),
        ({"outputPerMillion": "NaN"}, "outputPerMillion"),
        ({"perImage": "0.00000000001"}, "perImage"),
        ({"model": " "}, "model"),
        ({"aliases": ["claude-sonnet-4"]}, "aliases"),
        ({"effectiveFrom": "2025-06-01T00:00:00"}, "effectiveFrom"),
        ({"effectiveFrom": "0001-01-01T00:00:00+05:00"}, "effectiveFrom"),
    ],
)
async def test_upsert_refusals_change_nothing(
    gql: GraphQLClient, fields: dict[str, Any], field: str
) -> None:
    await upsert(gql, provider="anthropic", model="claude-sonnet-4", aliases=[])
    await upsert(gql)
    before = await gql.data(PRICES, first=50, history=True)
    refused = await upsert(gql, **{"effectiveFrom": "2025-06-01T00:00:00Z", **fields})
    assert refused["__typename"] == "ValidationFailed" and refused["field"] == field, refused
    assert await gql.data(PRICES, first=50, history=True) == before
    audit = await last_audit(gql)
    assert audit["result"]["type"] == "ValidationFailed" and audit["result"]["field"] == field


async def test_model_prices_pages_with_cursors(gql: GraphQLClient) -> None:
    for i in range(5):
        await upsert(gql, model=f"m{i}", aliases=[], effectiveFrom="2025-01-01T00:00:00Z")
        await upsert(
            gql, model=f"m{i}", aliases=None, inputPerMillion="1", effectiveFrom="2025-02-01T00:00Z"
        )
    page = await gql.data(PRICES, first=2, history=False)
    names = [n["model"] for n in page["modelPrices"]["nodes"]]
    after = page["modelPrices"]["pageInfo"]["endCursor"]
    while page["modelPrices"]["pageInfo"]["hasNextPage"]:
        page = await gql.data(PRICES, first=2, after=after, history=False)
        names += [n["model"] for n in page["modelPrices"]["nodes"]]
        after = page["modelPrices"]["pageInfo"]["endCursor"]
    assert names == ["m0", "m1", "m2", "m3", "m4"]
    current = await gql.data(PRICES, first=50, history=False, model="M3")
    assert [n["inputPerMillion"] for n in current["modelPrices"]["nodes"]] == ["1"]
    history = await gql.data(PRICES, first=50, history=True, model="m3")
    assert [n["inputPerMillion"] for n in history["modelPrices"]["nodes"]] == ["2.5", "1"]
    bad = await gql.execute(PRICES, first=2, after="nonsense", history=False)
    assert bad["errors"][0]["message"] == "after is not a cursor this API gave out"


async def test_policies_global_and_per_account(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    await create_account(gql, "u2")
    builtin = (await gql.data(GET_POLICY, account="u1"))["pricingPolicy"]
    assert (builtin["scope"], builtin["kind"], builtin["platformFeeUsd"]) == (
        "BUILT_IN",
        "PASSTHROUGH",
        "0",
    )
    default = await set_policy(gql, kind="MULTIPLIER", multiplier="1.5", platformFeeUsd="0.001")
    assert (default["scope"], default["multiplier"], default["accountExternalId"]) == (
        "GLOBAL",
        "1.5",
        None,
    )
    assert (await last_audit(gql))["operation"] == "setPricingPolicy"
    own = await set_policy(
        gql,
        accountExternalId="u1",
        kind="PER_MODEL",
        defaultMarkup="1.2",
        modelRules=[{"model": "gpt-4-turbo", "markup": "1.5", "minChargeUsd": "0.01"}],
        timeRules=[
            {
                "start": "09:00",
                "end": "17:00",
                "timezone": "Europe/Warsaw",
                "multiplier": "1.5",
                "weekdays": [5, 1, 2],
            }
        ],
    )
    assert own == {
        "__typename": "PricingPolicy",
        "scope": "ACCOUNT",
        "accountExternalId": "u1",
        "kind": "PER_MODEL",
        "multiplier": None,
        "fixedPerCallUsd": None,
        "defaultMarkup": "1.2",
        "platformFeeUsd": "0",
        "modelRules": [{"model": "gpt-4-turbo", "markup": "1.5", "minChargeUsd": "0.01"}],
        "timeRules": [
            {
                "start": "09:00",
                "end": "17:00",
                "timezone": "Europe/Warsaw",
                "multiplier": "1.5",
                "weekdays": [1, 2, 5],
            }
        ],
    }
    assert (await gql.data(GET_POLICY, account="u1"))["pricingPolicy"] == own
    assert (await gql.data(GET_POLICY, account="u2"))["pricingPolicy"] == default
    assert (await gql.data(GET_POLICY))["pricingPolicy"] == default
    # Setting again replaces the account's policy.
    again = await set_policy(
        gql, accountExternalId="u1", kind="FIXED_PER_CALL", fixedPerCallUsd="0.02"
    )
    assert (again["kind"], again["fixedPerCallUsd"], again["modelRules"]) == (
        "FIXED_PER_CALL",
        "0.02",
        [],
    )

    cleared = (await gql.data(CLEAR_POLICY, account="u1"))["clearPricingPolicy"]
    assert cleared == default
    assert (await gql.data(CLEAR_POLICY, account="u1"))["clearPricingPolicy"] == default
    assert (await last_audit(gql))["operation"] == "clearPricingPolicy"
    assert (await gql.data(CLEAR_POLICY))["clearPricingPolicy"]["scope"] == "BUILT_IN"
    missing = (await gql.data(CLEAR_POLICY, account="ghost"))["clearPricingPolicy"]
    assert missing == {"__typename": "AccountNotFound", "externalId": "ghost"}


RULE = {"model": "gpt-*", "markup": "2"}
WINDOW = {"start": "22:00", "end": "06:00", "timezone": "UTC", "multiplier": "2"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "MULTIPLIER"}, "multiplier"),
        ({"kind": "MULTIPLIER", "multiplier": "-1"}, "multiplier"),
        ({"kind": "MULTIPLIER", "multiplier": "1.0000001"}, "multiplier"),
        ({"kind": "PASSTHROUGH", "multiplier": "2"}, "multiplier"),
        ({"kind": "FIXED_PER_CALL"}, "fixedPerCallUsd"),
        ({"kind": "MULTIPLIER", "multiplier": "2", "fixedPerCallUsd": "1"}, "fixedPerCallUsd"),
        ({"kind": "PASSTHROUGH", "modelRules": [RULE]}, "modelRules"),
        ({"kind": "PASSTHROUGH", "defaultMarkup": "2"}, "defaultMarkup"),
        ({"kind": "PASSTHROUGH", "platformFeeUsd": "-0.01"}, "platformFeeUsd"),
        (
            {"kind": "PER_MODEL", "modelRules": [RULE, {**RULE, "model": "GPT-*"}]},
            "modelRules[1].model",
        ),
        ({"kind": "PER_MODEL", "modelRules": [{**RULE, "model": ""}]}, "modelRules[0].model"),
        ({"kind": "PER_MODEL", "modelRules": [{**RULE, "markup": "-2"}]}, "modelRules[0].markup"),
        (
            {"kind": "PER_MODEL", "modelRules": [{**RULE, "minChargeUsd": "-1"}]},
            "modelRules[0].minChargeUsd",
        ),
        ({"kind": "PASSTHROUGH", "timeRules": [{**WINDOW, "start": "9:00"}]}, "timeRules[0].start"),
        ({"kind": "PASSTHROUGH", "timeRules": [{**WINDOW, "end": "24:00"}]}, "timeRules[0].end"),
        ({"kind": "PASSTHROUGH", "timeRules": [{**WINDOW, "end": "22:00"}]}, "timeRules[0].end"),
        (
            {"kind": "PASSTHROUGH", "timeRules": [{**WINDOW, "timezone": "Mars/Olympus"}]},
            "timeRules[0].timezone",
        ),
        (
            {"kind": "PASSTHROUGH", "timeRules": [{**WINDOW, "timezone": "../../etc/passwd"}]},
            "timeRules[0].timezone",
        ),
        *(
            (
                {"kind": "PASSTHROUGH", "timeRules": [{**WINDOW, "timezone": zone}]},
                "timeRules[0].timezone",
            )
            for zone in ("America", "localtime", "zone.tab", "x" * 300, "")
        ),
        (
            {"kind": "PASSTHROUGH", "timeRules": [{**WINDOW, "start": "\u0660\u0669:00"}]},
            "timeRules[0].start",
        ),
        (
            {"kind": "PASSTHROUGH", "timeRules": [WINDOW, {**WINDOW, "weekdays": [0]}]},
            "timeRules[1].weekdays",
        ),
        (
            {"kind": "PASSTHROUGH", "timeRules": [{**WINDOW, "multiplier": "Infinity"}]},
            "timeRules[0].multiplier",
        ),
    ],
)
async def test_policy_refusals_change_nothing(
    gql: GraphQLClient, fields: dict[str, Any], field: str
) -> None:
    await create_account(gql, "u1")
    await set_policy(gql, accountExternalId="u1", kind="MULTIPLIER", multiplier="3")
    refused = await set_policy(gql, accountExternalId="u1", **fields)
    assert refused["__typename"] == "ValidationFailed" and refused["field"] == field, refused
    policy = (await gql.data(GET_POLICY, account="u1"))["pricingPolicy"]
    assert (policy["kind"], policy["multiplier"]) == ("MULTIPLIER", "3")


async def test_policy_for_an_unknown_account(gql: GraphQLClient) -> None:
    refused = await set_policy(gql, accountExternalId="ghost", kind="PASSTHROUGH")
    assert refused == {"__typename": "AccountNotFound", "externalId": "ghost"}
    found = (await gql.data(GET_POLICY, account="ghost"))["pricingPolicy"]
    assert found == {"__typename": "AccountNotFound", "externalId": "ghost"}


async def test_quote_call(gql: GraphQLClient) -> None:
    await upsert(gql)
    await upsert(gql, inputPerMillion="2", effectiveFrom="2025-06-01T00:00:00Z")
    await create_account(gql, "u1")
    await set_policy(gql, accountExternalId="u1", kind="MULTIPLIER", multiplier="2")
    await set_policy(gql, kind="PASSTHROUGH", platformFeeUsd="0.0001")
    march = "2025-03-01T12:00:00Z"
    own = await quote(gql, "gpt-4o-2024-08-06", account="u1", at=march, **{"in": 1000, "out": 500})
    assert own == {
        "__typename": "Quote",
        "costMicros": 7500,
        "chargeMicros": 15000,
        "credits": 15,
        "policyKind": "MULTIPLIER",
        "policyScope": "ACCOUNT",
        "priceEffectiveFrom": "2025-01-01T00:00:00+00:00",
        "price": {"model": "gpt-4o", "provider": "openai"},
    }
    # After the price change: (2,000 + 5,000) micros + the global $0.0001 fee.
    default = await quote(gql, **{"in": 1000, "out": 500})
    assert (default["costMicros"], default["chargeMicros"], default["credits"]) == (7000, 7100, 8)
    assert (default["policyKind"], default["policyScope"]) == ("PASSTHROUGH", "GLOBAL")
    byok = await quote(gql, account="u1", byok=True, at=march, cached=2000)
    assert (byok["costMicros"], byok["chargeMicros"], byok["policyKind"]) == (
        2500,
        2500,
        "PASSTHROUGH",
    )

    unknown = await quote(gql, "gpt-99")
    assert unknown == {
        "__typename": "UnknownModel",
        "model": "gpt-99",
        "provider": None,
        "message": "no price for this model at that time",
    }
    too_early = await quote(gql, at="2024-12-31T23:59:59Z")
    assert too_early["__typename"] == "UnknownModel"
    wrong_provider = await quote(gql, provider="anthropic")
    assert (wrong_provider["__typename"], wrong_provider["provider"]) == (
        "UnknownModel",
        "anthropic",
    )
    assert (await quote(gql, account="ghost"))["__typename"] == "AccountNotFound"
    negative = await quote(gql, **{"in": -1})
    assert (negative["__typename"], negative["field"]) == ("ValidationFailed", "inputTokens")
    naive = await quote(gql, at="2025-03-01T12:00:00")
    assert (naive["__typename"], naive["field"]) == ("ValidationFailed", "at")
    ancient = await quote(gql, at="0001-01-01T00:00:00Z")
    assert (ancient["__typename"], ancient["field"]) == ("ValidationFailed", "at")


async def test_text_postgresql_cannot_store_is_refused_up_front(gql: GraphQLClient) -> None:
    await upsert(gql)
    for query, variables in (
        (PRICES, {"first": 5, "history": True, "model": "gpt-4o\x00"}),
        (GET_POLICY, {"account": "u\x00"}),
    ):
        body = await gql.execute(query, **variables)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_reads_need_a_key_and_writes_need_admin(gql: GraphQLClient, db: Database) -> None:
    async with db.transaction() as s:
        analyst = await create_key(s, name="viewer", role="analyst")
    assert isinstance(analyst, CreatedKey)
    viewer = gql.as_key(analyst.secret)
    assert (await viewer.data(PRICES, first=5, history=False))["modelPrices"]["nodes"] == []
    assert (await viewer.data(GET_POLICY))["pricingPolicy"]["scope"] == "BUILT_IN"
    for query, variables in (
        (UPSERT, {"input": GPT_4O}),
        (SET_POLICY, {"input": {"kind": "PASSTHROUGH"}}),
        (CLEAR_POLICY, {}),
    ):
        refused = await viewer.execute(query, **variables)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await gql.as_key(None).execute(QUOTE, model="gpt-4o")
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await gql.data(PRICES, first=5, history=True))["modelPrices"]["nodes"] == []
