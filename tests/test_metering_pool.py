"""Holds on an organisation's shared pool: members never oversell it, nor pass their cap."""

from __future__ import annotations

import asyncio

from tests.conftest import GraphQLClient, new_key
from tests.helpers import GRANT, create_account
from tests.metering_helpers import MODEL, authorize, balance, price_model, record

CREATE_ORG = """
mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { __typename } }
"""


async def test_members_share_the_pool_within_their_caps(gql: GraphQLClient) -> None:
    await price_model(gql)
    await gql.data(CREATE_ORG, input={"externalId": "acme", "memberCap": 300})
    for member in ("m1", "m2", "m3"):
        await create_account(gql, member, organizationExternalId="acme")
    granted = await gql.data(
        GRANT,
        input={
            "organizationExternalId": "acme",
            "amount": 700,
            "source": "PURCHASE",
            "idempotencyKey": new_key(),
        },
    )
    assert granted["grantCredits"]["__typename"] == "LedgerSuccess"
    # 3 members, 20 holds each, of 50 credits: caps allow 6 each (300), the pool 14 in all (700).
    answers = await asyncio.gather(
        *(authorize(gql, m, 50_000, 0) for m in ("m1", "m2", "m3") for _ in range(20))
    )
    per_member = {m: answers[i * 20 : (i + 1) * 20] for i, m in enumerate(("m1", "m2", "m3"))}
    held = {m: [a for a in got if a["__typename"] == "Authorized"] for m, got in per_member.items()}
    assert all(len(h) <= 6 for h in held.values()), {m: len(h) for m, h in held.items()}
    assert sum(len(h) for h in held.values()) == 14
    # Settle every hold at 10 credits: the pool pays 140, each member within its cap.
    for member, holds in held.items():
        results = await record(
            gql,
            [
                {
                    "eventId": new_key(),
                    "accountExternalId": member,
                    "model": MODEL,
                    "inputTokens": 10_000,
                    "reservationId": h["reservationId"],
                }
                for h in holds
            ],
        )
        assert all(r["credits"] == 10 and r["uncollectedCredits"] == 0 for r in results)
    pool = await gql.data(
        'query { organization(externalId: "acme") { balance { total reserved } } }'
    )
    assert pool["organization"]["balance"] == {"total": 700 - 140, "reserved": 0}
    for member, holds in held.items():
        assert (await balance(gql, member))["reserved"] == 0
