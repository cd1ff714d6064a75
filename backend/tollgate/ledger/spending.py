"""Spending credits from locked wallets: one booking, or many in one transaction.

The plan is made in memory: drawing from a locked wallet updates its grants there, so several
spends from one wallet in a batch see each other. `flush` then writes each table with one
statement, whatever the number of bookings: the hot path's cost per booking stays small.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.db import Writes, columns
from tollgate.ledger import booking, wallets

# One INSERT of arrays per table, whatever the number of bookings.
_TX_FIELDS = (
    "id", "kind", "amount", "actor", "reason", "account_id", "organization_id",
    "counterparty_account_id", "refund_of", "idempotency_key", "details",
)  # fmt: skip
_INSERT_TRANSACTIONS = """
INSERT INTO ledger_transactions (id, kind, amount, actor, reason, account_id, organization_id,
    counterparty_account_id, refund_of, idempotency_key, details)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[],
    $6::bigint[], $7::bigint[], $8::bigint[], $9::uuid[], $10::text[], $11::jsonb[])
"""
_ENTRY_FIELDS = ("transaction_id", "wallet_id", "grant_id", "amount")
_INSERT_ENTRIES = """
INSERT INTO ledger_entries (transaction_id, wallet_id, grant_id, amount)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[])
"""


def _transaction_columns(rows: list[dict[str, Any]]) -> list[list[Any]]:
    arrays = columns(rows, _TX_FIELDS)
    details = _TX_FIELDS.index("details")
    arrays[details] = [json.dumps(d) for d in arrays[details]]
    return arrays


@dataclass
class LedgerWriter:
    actor: str
    transactions: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    grant_deltas: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    balance_deltas: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    reserved_deltas: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    pool_drawn_deltas: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def spend(
        self,
        *,
        account_id: int,
        wallet: wallets.LockedWallet,
        own: int,
        pool: wallets.LockedWallet | None = None,
        pool_take: int = 0,
        reason: str = "",
        idempotency_key: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        """Book a DEDUCT of `own` credits from the account's wallet and `pool_take` from its
        organisation's pool. The caller has checked both are available."""
        tx_id = uuid.uuid4()
        amount = own + pool_take
        self.transactions.append(
            {
                "id": tx_id,
                "kind": "DEDUCT",
                "amount": amount,
                "actor": self.actor,
                "reason": reason,
                "account_id": account_id,
                "organization_id": pool.organization_id if pool and pool_take else None,
                "counterparty_account_id": None,
                "refund_of": None,
                "idempotency_key": idempotency_key,
                "details": details or {},
            }
        )
        self._entry(tx_id, booking.CONSUMPTION_WALLET, amount, None)
        for source, take in ((wallet, own), (pool, pool_take)):
            if source is None or take == 0:
                continue
            for grant, portion in wallets.draw(source.grants, take):
                self._entry(tx_id, source.id, -portion, grant.id)
                grant.remaining -= portion
                self.grant_deltas[grant.id] -= portion
            source.grants = [g for g in source.grants if g.remaining > 0]
            source.balance -= take
            self.balance_deltas[source.id] -= take
        if pool_take:
            self.pool_drawn_deltas[account_id] += pool_take
        return tx_id

    def reserve(self, wallet: wallets.LockedWallet, credits: int) -> None:
        """Hold (positive) or release (negative) credits of a locked wallet."""
        wallet.reserved += credits
        self.reserved_deltas[wallet.id] += credits

    def _entry(self, tx_id: uuid.UUID, wallet_id: int, amount: int, grant_id: int | None) -> None:
        if amount:
            self.entries.append(
                {
                    "transaction_id": tx_id,
                    "wallet_id": wallet_id,
                    "grant_id": grant_id,
                    "amount": amount,
                }
            )

    async def flush(self, session: AsyncSession) -> None:
        """Write everything planned so far, in one round trip."""
        writes = Writes()
        self.add_to(writes)
        await writes.run(session)

    def add_to(self, writes: Writes) -> None:
        """Hand everything planned so far to `writes`, to go with other writes in one statement."""
        if self.transactions:
            writes.add(_INSERT_TRANSACTIONS, *_transaction_columns(self.transactions))
        if self.entries:
            writes.add(_INSERT_ENTRIES, *columns(self.entries, _ENTRY_FIELDS))
        booking.grant_changes(writes, self.grant_deltas)
        booking.wallet_changes(
            writes,
            {
                wid: (self.balance_deltas.get(wid, 0), self.reserved_deltas.get(wid, 0))
                for wid in set(self.balance_deltas) | set(self.reserved_deltas)
            },
        )
        booking.pool_drawn_changes(writes, self.pool_drawn_deltas)
        self.transactions, self.entries = [], []
        self.grant_deltas.clear()
        self.balance_deltas.clear()
        self.reserved_deltas.clear()
        self.pool_drawn_deltas.clear()
