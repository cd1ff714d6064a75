"""Ledger rules at the service layer: append-only storage, consumption order, expiry, pools."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import func, select, text

from tests.conftest import _plain, new_key
from tollgate.accounts.service import NewAccount, create_account, create_organization, get_account
from tollgate.db import Database
from tollgate.errors import InsufficientCredits, Rejected, ValidationFailed
from tollgate.ledger import service
from tollgate.ledger.expiry import expire_due_grants
from tollgate.ledger.models import CreditGrant, LedgerTransaction
from tollgate.ledger.requests import DeductRequest, GrantRequest, RefundRequest
from tollgate.ledger.wallets import account_balance

ACTOR = "test"


async def _account(db: Database, external_id: str, org: str | None = None) -> None:
    async with db.transaction() as s:
        await create_account(s, NewAccount(external_id, organization_external_id=org))


async def _grant(db: Database, account: str, amount: int, **kw: object) -> service.GrantResult:
    async with db.transaction() as s:
        return await service.grant_credits(
            s,
            GrantRequest(
                amount=amount,
                source=str(kw.pop("source", "PURCHASE")),
                idempotency_key=new_key(),
                account_external_id=account,
                **kw,  # type: ignore[arg-type]
            ),
            actor=ACTOR,
        )


async def _deduct(db: Database, account: str, amount: int) -> service.DeductResult:
    async with db.transaction() as s:
        return await service.deduct_credits(
            s, DeductRequest(account, amount, new_key()), actor=ACTOR
        )


async def _grants(db: Database) -> dict[int, tuple[int, datetime | None]]:
    async with db.transaction() as s:
        rows = (
            await s.execute(
                select(CreditGrant.amount, CreditGrant.remaining, CreditGrant.expires_at)
            )
        ).all()
    return {amount: (remaining, expires) for amount, remaining, expires in rows}


async def test_database_refuses_to_change_ledger_rows(db: Database, settings) -> None:
    await _account(db, "u1")
    await _grant(db, "u1", 10)
    conn = await asyncpg.connect(_plain(settings.database_url))
    try:
        for statement in (
            "UPDATE ledger_entries SET amount = amount + 1",
            "DELETE FROM ledger_entries",
            "UPDATE ledger_transactions SET amount = 1",
            "DELETE FROM ledger_transactions",
            "TRUNCATE ledger_entries CASCADE",
        ):
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(statement)
        # Unbalanced entries are refused at commit.
        with pytest.raises(asyncpg.PostgresError, match="does not balance"):
            async with conn.transaction():
                tx = await conn.fetchval(
                    "INSERT INTO ledger_transactions (id, kind, amount, reason, actor)"
                    " VALUES (gen_random_uuid(), 'GRANT', 5, '', 'x') RETURNING id"
                )
                await conn.execute(
                    "INSERT INTO ledger_entries (transaction_id, wallet_id, amount)"
                    " VALUES ($1, -1, -5)",
                    tx,
                )
        # And a wallet can never go below zero, whatever writes it.
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE wallets SET balance = -1 WHERE kind = 'ACCOUNT'")
    finally:
        await conn.close()


async def test_deduction_consumes_earliest_expiry_then_priority_then_oldest(db: Database) -> None:
    await _account(db, "u1")
    soon = datetime.now(UTC) + timedelta(days=1)
    later = datetime.now(UTC) + timedelta(days=30)
    await _grant(db, "u1", 100)  # never expires: last
    await _grant(db, "u1", 20, expires_at=later, priority=5)
    await _grant(db, "u1", 30, expires_at=later, priority=1)
    await _grant(db, "u1", 40, expires_at=soon, priority=50)
    await _deduct(db, "u1", 60)  # 40 (soon) + 20 of the priority-1 grant
    grants = await _grants(db)
    assert grants[40][0] == 0
    assert grants[30][0] == 10
    assert grants[20][0] == 20
    assert grants[100][0] == 100


async def test_expiry_job_run_twice_and_concurrently_books_once(db: Database) -> None:
    for n in range(5):
        await _account(db, f"u{n}")
        await _grant(db, f"u{n}", 50, expires_at=datetime.now(UTC) + timedelta(hours=1))
        await _grant(db, f"u{n}", 7)
    future = datetime.now(UTC) + timedelta(hours=2)
    counts = await asyncio.gather(*(expire_due_grants(db, now=future) for _ in range(4)))
    counts += [await expire_due_grants(db, now=future)]
    assert sum(counts) == 5
    async with db.transaction() as s:
        expiries = await s.scalar(select(func.count()).where(LedgerTransaction.kind == "EXPIRY"))
        assert expiries == 5
        for n in range(5):
            account = await get_account(s, f"u{n}")
            assert account is not None
            assert (await account_balance(s, account)).total == 7


async def test_overdue_grants_are_not_spendable_before_the_job_runs(db: Database) -> None:
    await _account(db, "u1")
    await _grant(db, "u1", 50, expires_at=datetime.now(UTC) + timedelta(seconds=1))
    await _grant(db, "u1", 5)
    await asyncio.sleep(1.1)
    async with db.transaction() as s:
        account = await get_account(s, "u1")
        assert account is not None
        assert (await account_balance(s, account)).available == 5
    result = await _deduct(db, "u1", 6)
    assert result == InsufficientCredits(available=5, requested=6)
    # The refused deduction still expired the overdue grant under its lock.
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).where(LedgerTransaction.kind == "EXPIRY")) == 1


async def test_grant_validation(db: Database) -> None:
    await _account(db, "u1")
    past = datetime.now(UTC) - timedelta(seconds=1)
    # Found once the key is claimed: the transaction is rolled back, key and all.
    with pytest.raises(Rejected) as rejected:
        await _grant(db, "u1", 5, expires_at=past)
    assert rejected.value.error.field == "expiresAt"
    assert isinstance(await _grant(db, "u1", 5, priority=-1), ValidationFailed)
    assert isinstance(await _grant(db, "u1", 5, source="FREE"), ValidationFailed)
    assert isinstance(await _grant(db, "u1", 10**16), ValidationFailed)
    async with db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(LedgerTransaction)) == 0


async def test_organization_pool_within_member_cap(db: Database) -> None:
    async with db.transaction() as s:
        await create_organization(s, external_id="acme", member_cap=30)
    await _account(db, "m1", org="acme")
    async with db.transaction() as s:
        await service.grant_credits(
            s,
            GrantRequest(
                amount=100,
                source="PURCHASE",
                idempotency_key=new_key(),
                organization_external_id="acme",
            ),
            actor=ACTOR,
        )
    await _grant(db, "m1", 10)
    ok = await _deduct(db, "m1", 35)  # 10 own + 25 pool
    assert isinstance(ok, service.Booked)
    assert ok.balance.total == 0 and ok.balance.pool == 5
    assert await _deduct(db, "m1", 6) == InsufficientCredits(available=5, requested=6)
    # A refund of the deduction gives the pool share back to the pool and the cap room back.
    async with db.transaction() as s:
        refunded = await service.refund_credits(
            s, RefundRequest("m1", 35, ok.transaction_id, new_key()), actor=ACTOR
        )
    assert isinstance(refunded, service.Booked)
    assert refunded.balance.total == 10 and refunded.balance.pool == 30


async def test_refund_of_an_expired_grant_comes_back_as_adjustment(db: Database) -> None:
    await _account(db, "u1")
    await _grant(db, "u1", 20, expires_at=datetime.now(UTC) + timedelta(hours=1))
    spent = await _deduct(db, "u1", 15)
    assert isinstance(spent, service.Booked)
    await expire_due_grants(db, now=datetime.now(UTC) + timedelta(hours=2))
    async with db.transaction() as s:
        refunded = await service.refund_credits(
            s, RefundRequest("u1", 15, spent.transaction_id, new_key()), actor=ACTOR
        )
        assert isinstance(refunded, service.Booked)
        assert refunded.balance.available == 15
        sources = (
            await s.execute(
                select(CreditGrant.source, CreditGrant.remaining, CreditGrant.expires_at).where(
                    CreditGrant.remaining > 0
                )
            )
        ).all()
    assert sources == [("ADJUSTMENT", 15, None)]


async def test_sum_of_entries_equals_every_cached_balance(db: Database) -> None:
    await _account(db, "a")
    await _account(db, "b")
    await _grant(db, "a", 100)
    await _deduct(db, "a", 30)
    async with db.transaction() as s:
        mismatches = (
            await s.execute(
                text(
                    "SELECT w.id FROM wallets w LEFT JOIN ledger_entries e ON e.wallet_id = w.id"
                    " WHERE w.kind <> 'SYSTEM' GROUP BY w.id, w.balance"
                    " HAVING w.balance <> coalesce(sum(e.amount), 0)"
                )
            )
        ).all()
    assert mismatches == []
