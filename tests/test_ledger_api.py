"""The ledger through GraphQL: the happy paths and every typed refusal."""

from __future__ import annotations

from tests.conftest import GraphQLClient, new_key
from tests.helpers import DEDUCT, GRANT, REFUND, TRANSFER, create_account, deduct, grant


async def test_grant_then_deduct_updates_balance(gql: GraphQLClient) -> None:
    await create_account(gql, "u1", name="Ada", email="ada@example.com")
    granted = await grant(gql, "u1", 500)
    assert granted["__typename"] == "LedgerSuccess"
    assert granted["balance"] == {"available": 500, "reserved": 0, "total": 500, "pool": 0}
    spent = await deduct(gql, "u1", 120)
    assert spent["balance"]["available"] == 380
    data = await gql.data(
        """query { account(externalId: "u1") { balance { available total }
            ledger(first: 10) { edges { node { delta transaction { kind amount } } } } } }"""
    )
    lines = [e["node"] for e in data["account"]["ledger"]["edges"]]
    assert [(line["delta"], line["transaction"]["kind"]) for line in lines] == [
        (-120, "DEDUCT"),
        (500, "GRANT"),
    ]


async def test_insufficient_credits_books_nothing(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    await grant(gql, "u1", 10)
    result = await deduct(gql, "u1", 11)
    assert result == {"__typename": "InsufficientCredits", "available": 10, "requested": 11}
    data = await gql.data('query { account(externalId: "u1") { balance { available } } }')
    assert data["account"]["balance"]["available"] == 10


async def test_typed_refusals(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    await create_account(gql, "u2")
    for amount in (0, -5):
        r = await deduct(gql, "u1", amount)
        assert r["__typename"] == "ValidationFailed" and r["field"] == "amount"
    assert (await deduct(gql, "ghost", 1))["__typename"] == "AccountNotFound"
    same = await gql.data(
        TRANSFER,
        input={
            "fromAccountExternalId": "u1",
            "toAccountExternalId": "u1",
            "amount": 1,
            "idempotencyKey": new_key(),
        },
    )
    assert same["transferCredits"]["__typename"] == "ValidationFailed"
    bad_source = await gql.execute(
        GRANT,
        input={"accountExternalId": "u1", "amount": 1, "source": "FREE", "idempotencyKey": "k"},
    )
    assert bad_source["errors"]


async def test_refund_restores_and_refuses_above_deducted(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    await grant(gql, "u1", 100)
    spent = await deduct(gql, "u1", 40)
    tx = spent["transactionId"]

    async def refund(amount: int) -> dict:
        data = await gql.data(
            REFUND,
            input={
                "accountExternalId": "u1",
                "amount": amount,
                "refundOf": tx,
                "idempotencyKey": new_key(),
            },
        )
        return data["refundCredits"]

    assert (await refund(30))["balance"]["available"] == 90
    over = await refund(11)
    assert over["__typename"] == "ValidationFailed" and over["field"] == "amount"
    assert (await refund(10))["balance"]["available"] == 100
    assert (await refund(1))["__typename"] == "ValidationFailed"


async def test_transfer_moves_credits(gql: GraphQLClient) -> None:
    await create_account(gql, "a")
    await create_account(gql, "b")
    await grant(gql, "a", 50)
    data = await gql.data(
        TRANSFER,
        input={
            "fromAccountExternalId": "a",
            "toAccountExternalId": "b",
            "amount": 20,
            "idempotencyKey": new_key(),
        },
    )
    result = data["transferCredits"]
    assert result["__typename"] == "TransferSuccess"
    assert result["balance"]["available"] == 30
    assert result["toBalance"]["available"] == 20


async def test_replay_and_conflict(gql: GraphQLClient) -> None:
    await create_account(gql, "u1")
    await grant(gql, "u1", 100)
    first = await deduct(gql, "u1", 5, key="k-1")
    again = await deduct(gql, "u1", 5, key="k-1")
    assert first == again
    conflict = await deduct(gql, "u1", 6, key="k-1")
    assert conflict["__typename"] == "IdempotencyConflict"
    data = await gql.data(
        DEDUCT.replace("deductCredits(input: $input)", "x: deductCredits(input: $input)"),
        input={"accountExternalId": "u1", "amount": 1, "idempotencyKey": "k-2"},
    )
    assert data["x"]["balance"]["available"] == 94
