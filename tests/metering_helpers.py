"""Shared set-up for metering tests: a priced model, a funded account, GraphQL documents."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient
from tests.helpers import create_account, grant

# $1 per 1M input tokens and $2 per 1M output tokens: 1 token in = 1 micro-USD, out = 2.
MODEL = "test-model"
UPSERT_PRICE = """
mutation($input: UpsertModelPriceInput!) { upsertModelPrice(input: $input) { __typename } }
"""
AUTHORIZE = """
mutation($input: AuthorizeUsageInput!) {
  authorizeUsage(input: $input) {
    __typename
    ... on Authorized { reservationId creditsHeld expiresAt warnings { limit level } }
    ... on Denied { reason message limit retryAfterSeconds }
    ... on ValidationFailed { field message }
    ... on AccountNotFound { externalId }
    ... on UnknownModel { model }
  }
}"""
RECORD = """
mutation($events: [UsageEventInput!]!) {
  recordUsage(events: $events) {
    __typename
    ... on Recorded {
      eventId costMicros chargeMicros credits uncollectedCredits flags transactionId
    }
    ... on ValidationFailed { field message }
    ... on AccountNotFound { externalId }
    ... on UnknownModel { model }
    ... on IdempotencyConflict { idempotencyKey }
  }
}"""
RELEASE = """
mutation($id: ID!) {
  releaseReservation(reservationId: $id) {
    __typename ... on Released { creditsReleased } ... on NotFound { id }
  }
}"""
BALANCE = (
    "query($id: String!) { account(externalId: $id) { balance { available reserved total } } }"
)


async def price_model(gql: GraphQLClient, model: str = MODEL, **prices: Any) -> None:
    data = await gql.data(
        UPSERT_PRICE,
        input={
            "provider": "test",
            "model": model,
            "aliases": [],
            "inputPerMillion": prices.get("input", "1"),
            "outputPerMillion": prices.get("output", "2"),
            "cachedInputPerMillion": prices.get("cached", "0.5"),
            "perImage": "0",
            "perRequest": "0",
            "effectiveFrom": prices.get("effective_from", "2020-01-01T00:00:00Z"),
        },
    )
    assert data["upsertModelPrice"]["__typename"] != "ValidationFailed", data


async def funded_account(gql: GraphQLClient, external_id: str, credits: int) -> None:
    await create_account(gql, external_id)
    if credits:
        granted = await grant(gql, external_id, credits)
        assert granted["__typename"] == "LedgerSuccess"


async def authorize(
    gql: GraphQLClient, account: str, input_tokens: int, output_tokens: int, **extra: Any
) -> dict[str, Any]:
    data = await gql.data(
        AUTHORIZE,
        input={
            "accountExternalId": account,
            "model": extra.pop("model", MODEL),
            "estimatedInputTokens": input_tokens,
            "maxOutputTokens": output_tokens,
            **extra,
        },
    )
    result: dict[str, Any] = data["authorizeUsage"]
    return result


async def record(gql: GraphQLClient, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    data = await gql.data(RECORD, events=events)
    results: list[dict[str, Any]] = data["recordUsage"]
    return results


async def balance(gql: GraphQLClient, account: str) -> dict[str, int]:
    data = await gql.data(BALANCE, id=account)
    result: dict[str, int] = data["account"]["balance"]
    return result
