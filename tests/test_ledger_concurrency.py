"""The ledger under concurrent requests: no overselling, one booking per idempotency key, no
deadlock, and afterwards the stored ledger still agrees with itself."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import GraphQLClient, new_key
from tests.helpers import GRANT, REFUND, TRANSFER, create_account, deduct, grant
from tollgate.db import Database
from tollgate.errors import IdempotencyConflict
from tollgate.ledger import service
from tollgate.ledger.requests import DeductRequest
from tollgate.ledger.wallets import Balance

# A gather that has not finished by then is stuck on locks: fail instead of hanging the run.
STUCK_AFTER_SECONDS = 60

CREATE_ORGANIZATION = """
mutation($input: CreateOrganizationInput!) {
  createOrganization(input: $input) {
    __typename
    ... on Organization { id externalId memberCap }
    ... on ValidationFailed { field message }
  }
}"""

# Each query lists the rows that break one rule of the ledger; a consistent ledger yields none.
LEDGER_RULES = {
    "wallet balance differs from the sum of its entries": """
        SELECT w.id, w.balance, COALESCE(SUM(e.amount), 0) AS entries
        FROM wallets w LEFT JOIN ledger_entries e ON e.wallet_id = w.id
        WHERE w.kind <> 'SYSTEM'
        GROUP BY w.id HAVING w.balance <> COALESCE(SUM(e.amount), 0)""",
    "grant remaining differs from the sum of its entries": """
        SELECT g.id, g.remaining, COALESCE(SUM(e.amount), 0) AS entries
        FROM credit_grants g LEFT JOIN ledger_entries e ON e.grant_id = g.id
        GROUP BY g.id HAVING g.remaining <> COALESCE(SUM(e.amount), 0)""",
    "grant entry booked on another wallet than the grant's": """
        SELECT e.id, e.wallet_id, g.wallet_id
        FROM ledger_entries e JOIN credit_grants g ON g.id = e.grant_id
        WHERE e.wallet_id <> g.wallet_id""",
    "transaction whose entries do not sum to zero": """
        SELECT transaction_id, SUM(amount) FROM ledger_entries
        GROUP BY transaction_id HAVING SUM(amount) <> 0""",
    "transaction without entries": """
        SELECT t.id, t.kind FROM ledger_transactions t
        WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id)""",
    "negative balance": """
        SELECT id, kind, balance FROM wallets WHERE kind <> 'SYSTEM' AND balance < 0""",
    "member's pool_drawn differs from its net draws on the pool": """
        SELECT a.id, a.pool_drawn, COALESCE(-SUM(e.amount), 0) AS drawn
        FROM accounts a
        LEFT JOIN wallets p ON p.organization_id = a.organization_id
        LEFT JOIN ledger_transactions t ON t.account_id = a.id
        LEFT JOIN ledger_entries e ON e.transaction_id = t.id AND e.wallet_id = p.id
        GROUP BY a.id HAVING a.pool_drawn <> COALESCE(-SUM(e.amount), 0)""",
}


async def ledger_violations(session: AsyncSession) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    for rule, query in LEDGER_RULES.items():
        rows = [tuple(r) for r in (await session.execute(text(query))).all()]
        if rows:
            found[rule] = rows
    return found


async def assert_ledger_consistent(db: Database) -> None:
    async with db.transaction() as session:
        assert await ledger_violations(session) == {}


async def scalar(db: Database, query: str, **params: Any) -> Any:
    async with db.transaction() as session:
        return await session.scalar(text(query), params)


async def count_transactions(db: Database, kind: str) -> int:
    return int(await scalar(db, "SELECT count(*) FROM ledger_transactions WHERE kind = :k", k=kind))


async def wallet_balance(db: Database, account: str) -> int:
    return int(
        await scalar(
            db,
            "SELECT w.balance FROM wallets w JOIN accounts a ON a.id = w.account_id"
            " WHERE a.external_id = :a",
            a=account,
        )
    )


async def available(gql: GraphQLClient, account: str) -> int:
    data = await gql.data(
        "query($a: String!) { account(externalId: $a) { balance { available } } }", a=account
    )
    return int(data["account"]["balance"]["available"])


async def gather(*calls: Any) -> list[Any]:
    return list(await asyncio.wait_for(asyncio.gather(*calls), STUCK_AFTER_SECONDS))


async def create_organization(gql: GraphQLClient, external_id: str, member_cap: int) -> None:
    data = await gql.data(
        CREATE_ORGANIZATION, input={"externalId": external_id, "memberCap": member_cap}
    )
    assert data["createOrganization"]["__typename"] == "Organization", data


async def grant_pool(gql: GraphQLClient, organization: str, amount: int) -> dict[str, Any]:
    data = await gql.data(
        GRANT,
        input={
            "organizationExternalId": organization,
            "amount": amount,
            "source": "PURCHASE",
            "idempotencyKey": new_key(),
        },
    )
    result: dict[str, Any] = data["grantCredits"]
    return result


async def transfer(gql: GraphQLClient, source: str, target: str, amount: int) -> dict[str, Any]:
    data = await gql.data(
        TRANSFER,
        input={
            "fromAccountExternalId": source,
            "toAccountExternalId": target,
            "amount": amount,
            "idempotencyKey": new_key(),
        },
    )
    result: dict[str, Any] = data["transferCredits"]
    return result


async def refund(gql: GraphQLClient, account: str, deduction: str, amount: int) -> dict[str, Any]:
    data = await gql.data(
        REFUND,
        input={
            "accountExternalId": account,
            "amount": amount,
            "refundOf": deduction,
            "idempotencyKey": new_key(),
        },
    )
    result: dict[str, Any] = data["refundCredits"]
    return result


async def pool_drawn_by(db: Database, member: str) -> int:
    """Net credits a member took from its organisation's pool, by its entries."""
    return int(
        await scalar(
            db,
            "SELECT COALESCE(-SUM(e.amount), 0) FROM ledger_entries e"
            " JOIN ledger_transactions t ON t.id = e.transaction_id"
            " JOIN accounts a ON a.id = t.account_id"
            " JOIN wallets p ON p.id = e.wallet_id AND p.kind = 'ORGANIZATION'"
            " WHERE a.external_id = :m",
            m=member,
        )
    )


async def test_concurrent_deductions_never_oversell(gql: GraphQLClient, db: Database) -> None:
    await create_account(gql, "u1")
    await grant(gql, "u1", 100)

    results = await gather(*(deduct(gql, "u1", 1) for _ in range(200)))

    assert Counter(r["__typename"] for r in results) == {
        "LedgerSuccess": 100,
        "InsufficientCredits": 100,
    }
    # Serialized on the wallet lock, the successes saw every balance from 99 down to 0 once.
    after = sorted(r["balance"]["available"] for r in results if r["__typename"] == "LedgerSuccess")
    assert after == list(range(100))
    refusals = [r for r in results if r["__typename"] == "InsufficientCredits"]
    assert all(r["available"] == 0 and r["requested"] == 1 for r in refusals)
    assert await available(gql, "u1") == 0
    assert await wallet_balance(db, "u1") == 0
    assert await count_transactions(db, "DEDUCT") == 100
    await assert_ledger_consistent(db)


async def test_sequential_replays_book_once(gql: GraphQLClient, db: Database) -> None:
    await create_account(gql, "u1")
    await grant(gql, "u1", 10_000)
    key = new_key()

    first = await deduct(gql, "u1", 7, key=key)
    assert first["__typename"] == "LedgerSuccess"
    for _ in range(200):
        assert await deduct(gql, "u1", 7, key=key) == first
    # The other 800 through the service, which the API adapts one to one: faster, same rule.
    request = DeductRequest(account_external_id="u1", amount=7, idempotency_key=key)
    expected = service.Booked(
        transaction_id=uuid.UUID(first["transactionId"]),
        balance=Balance(
            total=first["balance"]["total"],
            reserved=first["balance"]["reserved"],
            pool=first["balance"]["pool"],
        ),
    )
    for _ in range(800):
        async with db.transaction() as session:
            assert await service.deduct_credits(session, request, actor="test") == expected
    assert expected.balance.available == first["balance"]["available"] == 10_000 - 7

    assert await count_transactions(db, "DEDUCT") == 1
    assert await available(gql, "u1") == 10_000 - 7
    await assert_ledger_consistent(db)


async def test_concurrent_replays_book_once(gql: GraphQLClient, db: Database) -> None:
    await create_account(gql, "u1")
    await grant(gql, "u1", 1_000)
    key = new_key()

    results = await gather(*(deduct(gql, "u1", 9, key=key) for _ in range(50)))

    assert results[0]["__typename"] == "LedgerSuccess"
    assert all(r == results[0] for r in results)
    assert await count_transactions(db, "DEDUCT") == 1
    assert await available(gql, "u1") == 1_000 - 9
    await assert_ledger_consistent(db)


async def test_same_key_with_other_amount_is_a_conflict(gql: GraphQLClient, db: Database) -> None:
    await create_account(gql, "u1")
    await grant(gql, "u1", 1_000)
    key = new_key()
    first = await deduct(gql, "u1", 9, key=key)
    assert first["__typename"] == "LedgerSuccess"

    conflict = await deduct(gql, "u1", 10, key=key)

    assert conflict == {"__typename": "IdempotencyConflict", "idempotencyKey": key}
    async with db.transaction() as session:
        direct = await service.deduct_credits(
            session, DeductRequest("u1", 10, key, reason="other"), actor="test"
        )
    assert direct == IdempotencyConflict(key)
    assert await count_transactions(db, "DEDUCT") == 1
    assert await available(gql, "u1") == 1_000 - 9
    # The first result is still what the key answers.
    assert await deduct(gql, "u1", 9, key=key) == first


async def test_crossing_transfers_neither_deadlock_nor_lose_credits(
    gql: GraphQLClient, db: Database
) -> None:
    await create_account(gql, "a")
    await create_account(gql, "b")
    await grant(gql, "a", 1_000)
    await grant(gql, "b", 1_000)

    calls = []
    for _ in range(50):
        calls += [transfer(gql, "a", "b", 7), transfer(gql, "b", "a", 3)]
    results = await gather(*calls)

    assert Counter(r["__typename"] for r in results) == {"TransferSuccess": 100}
    assert await available(gql, "a") == 1_000 - 50 * 7 + 50 * 3
    assert await available(gql, "b") == 1_000 + 50 * 7 - 50 * 3
    assert await wallet_balance(db, "a") + await wallet_balance(db, "b") == 2_000
    assert await count_transactions(db, "TRANSFER") == 100
    await assert_ledger_consistent(db)


@pytest.mark.parametrize(
    ("pool", "member_cap"),
    [
        pytest.param(1_000, 100, id="member-cap-binds"),
        pytest.param(350, 100, id="pool-binds"),
    ],
)
async def test_concurrent_members_never_oversell_the_pool(
    gql: GraphQLClient, db: Database, pool: int, member_cap: int
) -> None:
    await create_organization(gql, "acme", member_cap)
    members = [f"m{i}" for i in range(4)]
    for member in members:
        await create_account(gql, member, organizationExternalId="acme")
    assert (await grant_pool(gql, "acme", pool))["__typename"] == "LedgerSuccess"

    # Each member asks for more than its cap, all of them at once.
    calls = [deduct(gql, m, 5) for _ in range(30) for m in members]
    results = await gather(*calls)

    spent = Counter(
        m for m, r in zip(members * 30, results, strict=True) if r["__typename"] == "LedgerSuccess"
    )
    assert all(r["__typename"] in {"LedgerSuccess", "InsufficientCredits"} for r in results)
    drawn = {m: await pool_drawn_by(db, m) for m in members}
    left = await scalar(db, "SELECT balance FROM wallets WHERE kind = 'ORGANIZATION'")
    assert drawn == {m: 5 * spent[m] for m in members}
    assert all(d <= member_cap for d in drawn.values()), drawn
    assert left == pool - sum(drawn.values()) >= 0
    if pool >= member_cap * len(members):
        assert drawn == {m: member_cap for m in members}
    else:
        # Refusals only come from an empty pool or a capped member, so the pool runs dry.
        assert sum(drawn.values()) == pool
    await assert_ledger_consistent(db)


async def test_concurrent_refunds_never_exceed_the_deduction(
    gql: GraphQLClient, db: Database
) -> None:
    await create_account(gql, "u1")
    await grant(gql, "u1", 150)
    spent = await deduct(gql, "u1", 100)
    assert spent["__typename"] == "LedgerSuccess"

    results = await gather(*(refund(gql, "u1", spent["transactionId"], 10) for _ in range(20)))

    assert Counter(r["__typename"] for r in results) == {
        "LedgerSuccess": 10,
        "ValidationFailed": 10,
    }
    assert all(r["field"] == "amount" for r in results if r["__typename"] == "ValidationFailed")
    assert await available(gql, "u1") == 150
    assert await count_transactions(db, "REFUND") == 10
    refunded = await scalar(
        db,
        "SELECT SUM(amount) FROM ledger_transactions WHERE kind = 'REFUND' AND refund_of = :d",
        d=uuid.UUID(spent["transactionId"]),
    )
    assert refunded == 100
    # The grant drawn from is still live, so the credits went back into it.
    assert await scalar(db, "SELECT array_agg(remaining) FROM credit_grants") == [150]
    await assert_ledger_consistent(db)


async def test_mixed_concurrent_bookings_keep_the_ledger_whole(
    gql: GraphQLClient, db: Database
) -> None:
    """Every kind of booking at once over wallets they share: the lock order must hold up (a
    deadlock or lock timeout surfaces as a GraphQL error) and no credit may appear or vanish."""
    await create_organization(gql, "acme", 300)
    members = ("m1", "m2")
    for member in members:
        await create_account(gql, member, organizationExternalId="acme")
        await grant(gql, member, 100)
    await create_account(gql, "a")
    await grant(gql, "a", 500)
    await grant_pool(gql, "acme", 1_000)
    # Two deductions per member; the second runs past its own credits into the pool.
    earlier = []
    for member in members:
        for _ in range(2):
            spent = await deduct(gql, member, 80)
            assert spent["__typename"] == "LedgerSuccess"
            earlier.append((member, spent["transactionId"]))
    before = 2 * 100 + 500 + 1_000 - 4 * 80

    calls: list[tuple[str, Any]] = []
    calls += [("deduct", deduct(gql, members[i % 2], 7)) for i in range(40)]
    calls += [("refund", refund(gql, m, tx, 10)) for m, tx in earlier for _ in range(8)]
    calls += [("transfer", transfer(gql, "a", "m1", 5)) for _ in range(10)]
    calls += [("transfer", transfer(gql, "m2", "a", 3)) for _ in range(10)]
    calls += [("transfer", transfer(gql, "m1", "m2", 2)) for _ in range(10)]
    calls += [("grant", grant_pool(gql, "acme", 20)) for _ in range(5)]
    calls += [("grant", grant(gql, "a", 10)) for _ in range(5)]
    results = await gather(*(call for _, call in calls))

    outcomes = Counter((kind, r["__typename"]) for (kind, _), r in zip(calls, results, strict=True))
    allowed = {
        ("deduct", "LedgerSuccess"),
        ("deduct", "InsufficientCredits"),
        ("refund", "LedgerSuccess"),
        ("transfer", "TransferSuccess"),
        ("transfer", "InsufficientCredits"),
        ("grant", "LedgerSuccess"),
    }
    assert set(outcomes) <= allowed, outcomes
    assert outcomes["refund", "LedgerSuccess"] == 32
    assert outcomes["grant", "LedgerSuccess"] == 10
    deducted = 7 * outcomes["deduct", "LedgerSuccess"]
    expected_total = before + 5 * 20 + 5 * 10 - deducted + 32 * 10
    held = await scalar(db, "SELECT SUM(balance) FROM wallets WHERE kind <> 'SYSTEM'")
    assert held == expected_total
    assert await count_transactions(db, "DEDUCT") == 4 + outcomes["deduct", "LedgerSuccess"]
    assert await count_transactions(db, "TRANSFER") == outcomes["transfer", "TransferSuccess"]
    for member in members:
        assert await pool_drawn_by(db, member) <= 300
    await assert_ledger_consistent(db)
