"""Small GraphQL helpers the ledger tests share."""

from __future__ import annotations

from typing import Any

from tests.conftest import GraphQLClient, new_key

BALANCE = "balance { available reserved total pool }"
FRAGMENTS = {
    "LedgerSuccess": f"{BALANCE} transactionId",
    "TransferSuccess": f"{BALANCE} transactionId toBalance {{ available total }}",
    "InsufficientCredits": "available requested",
    "ValidationFailed": "field message",
    "AccountNotFound": "externalId",
    "OrganizationNotFound": "externalId",
    "IdempotencyConflict": "idempotencyKey",
}


def result(*types: str) -> str:
    return "__typename " + " ".join(f"... on {t} {{ {FRAGMENTS[t]} }}" for t in types)


COMMON = ("ValidationFailed", "AccountNotFound", "IdempotencyConflict")
CREATE_ACCOUNT = """
mutation($input: CreateAccountInput!) {
  createAccount(input: $input) {
    __typename
    ... on Account { id externalId }
    ... on ValidationFailed { field message }
    ... on AlreadyExists { field message }
    ... on OrganizationNotFound { externalId }
  }
}"""
GRANT = (
    "mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { "
    + result("LedgerSuccess", "OrganizationNotFound", *COMMON)
    + " } }"
)
DEDUCT = (
    "mutation($input: DeductCreditsInput!) { deductCredits(input: $input) { "
    + result("LedgerSuccess", "InsufficientCredits", *COMMON)
    + " } }"
)
REFUND = (
    "mutation($input: RefundCreditsInput!) { refundCredits(input: $input) { "
    + result("LedgerSuccess", *COMMON)
    + " } }"
)
TRANSFER = (
    "mutation($input: TransferCreditsInput!) { transferCredits(input: $input) { "
    + result("TransferSuccess", "InsufficientCredits", *COMMON)
    + " } }"
)


async def create_account(gql: GraphQLClient, external_id: str, **extra: Any) -> dict[str, Any]:
    data = await gql.data(CREATE_ACCOUNT, input={"externalId": external_id, **extra})
    result: dict[str, Any] = data["createAccount"]
    assert result["__typename"] == "Account", result
    return result


async def grant(
    gql: GraphQLClient, account: str, amount: int, *, key: str | None = None, **extra: Any
) -> dict[str, Any]:
    data = await gql.data(
        GRANT,
        input={
            "accountExternalId": account,
            "amount": amount,
            "source": extra.pop("source", "PURCHASE"),
            "idempotencyKey": key or new_key(),
            **extra,
        },
    )
    result: dict[str, Any] = data["grantCredits"]
    return result


async def deduct(
    gql: GraphQLClient, account: str, amount: int, *, key: str | None = None
) -> dict[str, Any]:
    data = await gql.data(
        DEDUCT,
        input={"accountExternalId": account, "amount": amount, "idempotencyKey": key or new_key()},
    )
    result: dict[str, Any] = data["deductCredits"]
    return result
