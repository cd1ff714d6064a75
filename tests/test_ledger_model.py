"""The ledger against a plain Python model of its documented rules.

Random grants, deductions, refunds, transfers, expiry runs, replays and key conflicts on two
accounts and a member of an organisation with a shared pool. After every step the balances and
every grant must match the model, and the stored ledger must agree with itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from tests.conftest import reset_database
from tests.test_ledger_concurrency import ledger_violations
from tollgate.accounts import service as accounts
from tollgate.accounts.models import Account
from tollgate.config import Settings
from tollgate.db import Database, create_engine
from tollgate.errors import IdempotencyConflict, InsufficientCredits, Rejected, ValidationFailed
from tollgate.ledger import service, wallets
from tollgate.ledger.expiry import expire_due_grants
from tollgate.ledger.models import GRANT_SOURCES
from tollgate.ledger.requests import (
    DeductRequest,
    GrantRequest,
    LedgerRequest,
    RefundRequest,
    TransferRequest,
)

T = TypeVar("T")

ORG = "org"
POOL = "pool"  # the organisation's wallet
MEMBER = "m"
ACCOUNTS = ("a", "b", MEMBER)
ACTOR = "test:model"
# Lets sorting put grants without expiry after every dated one.
NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass
class Grant:
    id: int  # the database's: among equal expiry and priority, the older is consumed first
    wallet: str
    source: str
    priority: int
    expires_at: datetime | None
    remaining: int
    expired: bool = False

    def order(self) -> tuple[datetime, int, int]:
        return (self.expires_at or NEVER, self.priority, self.id)


@dataclass
class Deduction:
    tx_id: uuid.UUID
    account: str
    amount: int
    draws: list[tuple[Grant, int]]  # in the order they were taken
    refunded: int = 0

    def __repr__(self) -> str:
        taken = [(grant.id, credits) for grant, credits in self.draws]
        return (
            f"Deduction({self.tx_id}, account={self.account!r}, amount={self.amount},"
            f" drawn (grant, credits)={taken}, refunded={self.refunded})"
        )


@dataclass
class Model:
    member_cap: int | None
    grants: dict[int, Grant] = field(default_factory=dict)
    pool_drawn: int = 0

    def live(self, wallet: str) -> list[Grant]:
        found = [g for g in self.grants.values() if g.wallet == wallet and g.remaining > 0]
        return sorted(found, key=Grant.order)

    def total(self, wallet: str) -> int:
        return sum(g.remaining for g in self.live(wallet))

    def pool_headroom(self) -> int:
        headroom = self.total(POOL)
        if self.member_cap is not None:
            headroom = min(headroom, self.member_cap - self.pool_drawn)
        return max(0, headroom)

    def balance(self, account: str) -> wallets.Balance:
        pool = self.pool_headroom() if account == MEMBER else 0
        return wallets.Balance(total=self.total(account), reserved=0, pool=pool)

    def draw(self, wallet: str, amount: int) -> list[tuple[Grant, int]]:
        taken = []
        for grant in self.live(wallet):
            if amount == 0:
                break
            portion = min(grant.remaining, amount)
            grant.remaining -= portion
            amount -= portion
            taken.append((grant, portion))
        assert amount == 0, "the model drew more than its grants hold"
        return taken


SERVICES: dict[type, Callable[..., Awaitable[Any]]] = {
    GrantRequest: service.grant_credits,
    DeductRequest: service.deduct_credits,
    RefundRequest: service.refund_credits,
    TransferRequest: service.transfer_credits,
}


@dataclass(frozen=True)
class GrantSpec:
    receiver: str
    amount: int
    source: str
    priority: int
    expires_in_hours: int | None


GRANT_SPECS = st.builds(
    GrantSpec,
    receiver=st.sampled_from((*ACCOUNTS, POOL)),
    amount=st.integers(1, 100),
    source=st.sampled_from(GRANT_SOURCES),
    priority=st.sampled_from((0, 50, 100, 150)),
    expires_in_hours=st.none() | st.integers(1, 4),
)


def key() -> str:
    return str(uuid.uuid4())


class LedgerMachine(RuleBasedStateMachine):
    # Bound by the test: the machine is synchronous and drives the async services on this loop.
    loop: asyncio.AbstractEventLoop
    db: Database
    database_url: str

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def _send(self, request: LedgerRequest) -> Any:
        try:
            async with self.db.transaction() as session:
                return await SERVICES[type(request)](session, request, actor=ACTOR)
        except Rejected as rejected:
            return rejected.error

    def send(self, request: LedgerRequest) -> Any:
        return self.run(self._send(request))

    async def _created_grants(self, tx_id: uuid.UUID) -> list[tuple[int, str]]:
        async with self.db.transaction() as session:
            rows = await session.execute(
                text(
                    "SELECT id, wallet_id FROM credit_grants WHERE transaction_id = :t ORDER BY id"
                ),
                {"t": tx_id},
            )
            return [(gid, self.wallet_names[wid]) for gid, wid in rows.all()]

    def created_grants(self, tx_id: uuid.UUID) -> list[tuple[int, str]]:
        return self.run(self._created_grants(tx_id))

    def remember(self, request: LedgerRequest, result: Any) -> None:
        """Only stored outcomes are replayable: a refusal before the key is claimed is not."""
        if isinstance(result, service.Booked | InsufficientCredits):
            self.sent.append((request, result))

    # -- setup --------------------------------------------------------------------------------

    async def _setup(self, member_cap: int | None) -> None:
        await reset_database(self.database_url)
        async with self.db.transaction() as session:
            org = await accounts.create_organization(
                session, external_id=ORG, member_cap=member_cap
            )
            assert not isinstance(org, ValidationFailed)
            for name in ACCOUNTS:
                made = await accounts.create_account(
                    session,
                    accounts.NewAccount(
                        external_id=name, organization_external_id=ORG if name == MEMBER else None
                    ),
                )
                assert isinstance(made, Account), made
            rows = await session.execute(
                text(
                    "SELECT w.id, COALESCE(a.external_id, :pool) FROM wallets w"
                    " LEFT JOIN accounts a ON a.id = w.account_id WHERE w.kind <> 'SYSTEM'"
                ),
                {"pool": POOL},
            )
            self.wallet_names = {wid: name for wid, name in rows.all()}

    # Starting with some credits everywhere makes most later steps book something.
    @initialize(
        member_cap=st.none() | st.integers(0, 80),
        grants=st.lists(GRANT_SPECS, min_size=3, max_size=8),
    )
    def setup(self, member_cap: int | None, grants: list[GrantSpec]) -> None:
        self.model = Model(member_cap=member_cap)
        self.deductions: list[Deduction] = []
        self.sent: list[tuple[LedgerRequest, Any]] = []
        self.wallet_names: dict[int, str] = {}
        self.now = datetime.now(UTC)
        self.run(self._setup(member_cap))
        for spec in grants:
            self._grant(spec)

    # -- operations ---------------------------------------------------------------------------

    def _grant(self, spec: GrantSpec) -> None:
        expires_at = None
        if spec.expires_in_hours is not None:
            expires_at = self.now + timedelta(hours=spec.expires_in_hours)
        to_pool = spec.receiver == POOL
        request = GrantRequest(
            amount=spec.amount,
            source=spec.source,
            idempotency_key=key(),
            account_external_id=None if to_pool else spec.receiver,
            organization_external_id=ORG if to_pool else None,
            expires_at=expires_at,
            priority=spec.priority,
        )
        result = self.send(request)
        assert isinstance(result, service.Booked), result
        ((grant_id, wallet),) = self.created_grants(result.transaction_id)
        assert wallet == spec.receiver
        self.model.grants[grant_id] = Grant(
            grant_id, wallet, spec.source, spec.priority, expires_at, remaining=spec.amount
        )
        if to_pool:
            assert result.balance == wallets.Balance(total=self.model.total(POOL), reserved=0)
        else:
            assert result.balance == self.model.balance(wallet)
        self.remember(request, result)

    @rule(spec=GRANT_SPECS)
    def grant(self, spec: GrantSpec) -> None:
        self._grant(spec)

    @rule(account=st.sampled_from(ACCOUNTS), amount=st.integers(1, 60))
    def deduct(self, account: str, amount: int) -> None:
        request = DeductRequest(account_external_id=account, amount=amount, idempotency_key=key())
        result = self.send(request)
        own = min(self.model.total(account), amount)
        headroom = 0
        if own < amount and account == MEMBER:
            headroom = self.model.pool_headroom()
        if own + headroom < amount:
            assert result == InsufficientCredits(available=own + headroom, requested=amount)
        else:
            assert isinstance(result, service.Booked), result
            draws = self.model.draw(account, own)
            if amount > own:
                draws += self.model.draw(POOL, amount - own)
                self.model.pool_drawn += amount - own
            self.deductions.append(Deduction(result.transaction_id, account, amount, draws))
            assert result.balance == self.model.balance(account)
        self.remember(request, result)

    @precondition(lambda self: self.deductions)
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        deduction = data.draw(st.sampled_from(self.deductions), label="deduction")
        amount = data.draw(st.integers(1, deduction.amount), label="amount")
        request = RefundRequest(
            account_external_id=deduction.account,
            amount=amount,
            refund_of=deduction.tx_id,
            idempotency_key=key(),
        )
        result = self.send(request)
        if amount > deduction.amount - deduction.refunded:
            assert isinstance(result, ValidationFailed) and result.field == "amount", result
            return
        assert isinstance(result, service.Booked), result
        # Latest drawn first; what was refunded before is skipped in the same order.
        skip, want = deduction.refunded, amount
        revived: dict[str, int] = defaultdict(int)
        for grant, drawn in reversed(deduction.draws):
            portion = min(max(0, drawn - skip), want)
            skip = max(0, skip - drawn)
            if portion == 0:
                continue
            want -= portion
            if grant.expired:
                revived[grant.wallet] += portion
            else:
                grant.remaining += portion
            if grant.wallet == POOL:
                self.model.pool_drawn -= portion
        deduction.refunded += amount
        created = self.created_grants(result.transaction_id)
        assert [w for _, w in created] == list(revived), (
            "a refund makes a new grant only for the share of expired grants",
            created,
            dict(revived),
        )
        for (grant_id, wallet), credits in zip(created, revived.values(), strict=True):
            self.model.grants[grant_id] = Grant(
                grant_id, wallet, "ADJUSTMENT", 100, None, remaining=credits
            )
        assert result.balance == self.model.balance(deduction.account)
        self.remember(request, result)

    @rule(
        accounts_=st.permutations(ACCOUNTS).map(lambda p: p[:2]),
        amount=st.integers(1, 60),
    )
    def transfer(self, accounts_: tuple[str, str], amount: int) -> None:
        sender, receiver = accounts_
        request = TransferRequest(
            from_account_external_id=sender,
            to_account_external_id=receiver,
            amount=amount,
            idempotency_key=key(),
        )
        result = self.send(request)
        own = self.model.total(sender)
        if own < amount:
            assert result == InsufficientCredits(available=own, requested=amount)
        else:
            assert isinstance(result, service.Booked), result
            draws = self.model.draw(sender, amount)
            created = self.created_grants(result.transaction_id)
            assert [w for _, w in created] == [receiver] * len(draws), created
            for (grant_id, _), (origin, portion) in zip(created, draws, strict=True):
                self.model.grants[grant_id] = Grant(
                    grant_id,
                    receiver,
                    origin.source,
                    origin.priority,
                    origin.expires_at,
                    remaining=portion,
                )
            assert result.balance == self.model.balance(sender)
            assert result.counterparty_balance == self.model.balance(receiver)
        self.remember(request, result)

    # Zero hours runs the job again at the same time: it must find nothing more to expire.
    @precondition(
        lambda self: any(g.expires_at and g.remaining for g in self.model.grants.values())
    )
    @rule(hours=st.integers(0, 3))
    def expire(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        expired = self.run(expire_due_grants(self.db, now=self.now))
        due = [
            g
            for g in self.model.grants.values()
            if g.remaining > 0 and g.expires_at is not None and g.expires_at <= self.now
        ]
        for grant in due:
            grant.remaining = 0
            grant.expired = True
        assert expired == len(due)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        request, first = data.draw(st.sampled_from(self.sent), label="earlier request")
        assert self.send(request) == first, "a replay answers the first result"

    @precondition(lambda self: self.sent)
    @rule(data=st.data(), change=st.sampled_from(("reason", "amount", "operation")))
    def conflict(self, data: st.DataObject, change: str) -> None:
        request, _ = data.draw(st.sampled_from(self.sent), label="earlier request")
        changed: LedgerRequest
        if change == "operation":
            # The key of a grant, refund or transfer reused for a deduction, and the reverse.
            if isinstance(request, DeductRequest):
                changed = TransferRequest("a", "b", 1, request.idempotency_key)
            else:
                changed = DeductRequest("a", 1, request.idempotency_key)
        elif change == "amount" and not isinstance(request, RefundRequest):
            changed = dataclasses.replace(request, amount=request.amount + 1)
        else:
            changed = dataclasses.replace(request, reason="changed")
        assert self.send(changed) == IdempotencyConflict(request.idempotency_key)

    # -- after every step ---------------------------------------------------------------------

    async def _check(self) -> None:
        async with self.db.transaction() as session:
            for name in ACCOUNTS:
                account = await accounts.get_account(session, name)
                assert account is not None
                balance = await wallets.account_balance(session, account)
                assert balance == self.model.balance(name), name
            org = await accounts.get_organization(session, ORG)
            assert org is not None
            pool = await wallets.organization_balance(session, org)
            assert pool == wallets.Balance(total=self.model.total(POOL), reserved=0)
            drawn = await session.scalar(
                text("SELECT pool_drawn FROM accounts WHERE external_id = :m"), {"m": MEMBER}
            )
            assert drawn == self.model.pool_drawn
            rows = await session.execute(
                text(
                    "SELECT id, wallet_id, source, priority, expires_at, remaining,"
                    " expired_at IS NOT NULL FROM credit_grants"
                )
            )
            stored = {
                gid: Grant(gid, self.wallet_names[wid], src, prio, exp, rem, gone)
                for gid, wid, src, prio, exp, rem, gone in rows.all()
            }
            # Only the grants that differ, as (stored, model), so a failure reads easily.
            differ = {
                gid: (stored.get(gid), self.model.grants.get(gid))
                for gid in stored.keys() | self.model.grants.keys()
                if stored.get(gid) != self.model.grants.get(gid)
            }
            assert differ == {}
            assert await ledger_violations(session) == {}

    @invariant()
    def matches_model(self) -> None:
        self.run(self._check())


def test_ledger_follows_the_model(settings: Settings) -> None:
    assert settings.database_url is not None
    loop = asyncio.new_event_loop()
    db = Database(create_engine(settings))
    machine = type(
        "BoundLedgerMachine",
        (LedgerMachine,),
        {"loop": loop, "db": db, "database_url": settings.database_url},
    )
    try:
        run_state_machine_as_test(
            machine,
            settings=hypothesis.settings(
                max_examples=40,
                stateful_step_count=25,
                deadline=None,
                # Every step talks to PostgreSQL, so shrinking a failure would run for minutes;
                # the steps of the failing run are printed unshrunk instead.
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                # The same examples on every run: a failure here always reproduces.
                derandomize=True,
                database=None,
                suppress_health_check=[hypothesis.HealthCheck.too_slow],
            ),
        )
    finally:
        loop.run_until_complete(db.dispose())
        loop.close()
