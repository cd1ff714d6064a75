"""recordUsage: book what calls really used, settle their holds, and keep limits' counters.

One batch is one transaction. Each event is priced at the catalog price in force when it
occurred (or at the provider cost the caller reports), charged under the account's policy,
and booked through the ledger: one DEDUCT per account per batch, drawn in the ledger's order.
The call has already happened, so an event is always recorded; credits the balance cannot
cover are kept on the event as `uncollected_credits` and flagged, never booked below zero.
A replayed `eventId` books nothing and returns the first result. Once the batch commits, its
events and the balances it changed are published for live subscribers (tollgate.live).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate import errors
from tollgate.db import Writes, columns, driver
from tollgate.ledger.wallets import Balance, LockedWallet, pool_headroom
from tollgate.limits import rules as limit_rules
from tollgate.limits import service as limits
from tollgate.live import channels
from tollgate.metering import holds, subjects
from tollgate.metering.deps import MeteringDeps
from tollgate.metering.requests import UsageEventInput, check_event
from tollgate.metering.results import BatchOutcome, Recorded
from tollgate.metering.scope import BatchScope
from tollgate.pricing.charge import CallUsage, Charge, price_call

RecordResult: TypeAlias = (
    Recorded
    | errors.ValidationFailed
    | errors.AccountNotFound
    | errors.UnknownModel
    | errors.IdempotencyConflict
)
Result: TypeAlias = RecordResult


_EARLIER_EVENTS = """
SELECT event_id, request_hash, cost_micros, charge_micros, credits, uncollected_credits, flags,
    transaction_id
FROM usage_events WHERE event_id = ANY($1::text[])
"""
_RESERVATIONS = """
SELECT id, account_id, status, wallet_id, credits, pool_wallet_id, pool_credits
FROM reservations WHERE id = ANY($1::uuid[]) FOR UPDATE
"""
_SETTLE = "UPDATE reservations SET status = 'SETTLED', closed_at = $2 WHERE id = ANY($1::uuid[])"
_ADD_KEY_SPEND = """
UPDATE api_keys t SET spend_credits = t.spend_credits + d.delta
FROM unnest($1::bigint[], $2::bigint[]) AS d(id, delta) WHERE t.id = d.id
"""
# A batch's events as one INSERT of arrays. Flags travel comma-joined: unnest would flatten an
# array of arrays.
_EVENT_FIELDS = (
    "event_id", "request_hash", "account_id", "model", "provider", "feature", "input_tokens",
    "output_tokens", "cached_input_tokens", "images", "cost_micros", "charge_micros", "credits",
    "uncollected_credits", "byok", "flags", "reservation_id", "transaction_id", "api_key_id",
    "details", "occurred_at",
)  # fmt: skip
_INSERT_EVENTS = """
INSERT INTO usage_events (event_id, request_hash, account_id, model, provider, feature,
    input_tokens, output_tokens, cached_input_tokens, images, cost_micros, charge_micros,
    credits, uncollected_credits, byok, flags, reservation_id, transaction_id, api_key_id,
    details, occurred_at)
SELECT e, h, a, m, p, f, i, o, c, im, cm, ch, cr, u, b,
    CASE WHEN fl = '' THEN '{}'::text[] ELSE string_to_array(fl, ',') END, r, t, k, d, at
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
    $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[],
    $13::bigint[], $14::bigint[], $15::bool[], $16::text[], $17::uuid[], $18::uuid[],
    $19::bigint[], $20::jsonb[], $21::timestamptz[])
    AS v(e, h, a, m, p, f, i, o, c, im, cm, ch, cr, u, b, fl, r, t, k, d, at)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""


def _event_columns(rows: list[dict[str, Any]]) -> list[list[Any]]:
    arrays = columns(rows, _EVENT_FIELDS)
    arrays[_EVENT_FIELDS.index("flags")] = [",".join(row["flags"]) for row in rows]
    arrays[_EVENT_FIELDS.index("details")] = [json.dumps(row["details"]) for row in rows]
    return arrays


@dataclass
class _Priced:
    index: int
    event: UsageEventInput
    subject: subjects.Subject
    charge: Charge
    occurred_at: datetime


def _replay(row: Any, event: UsageEventInput) -> Recorded | errors.IdempotencyConflict:
    if row["request_hash"] != event.fingerprint:
        return errors.IdempotencyConflict(
            event.event_id, "this eventId was recorded with different values"
        )
    return _recorded(row)


def _recorded(row: Any, available_credits: int | None = None) -> Recorded:
    """The result of a booked event, from its usage_events row (stored or about to be)."""
    return Recorded(
        event_id=row["event_id"],
        cost_micros=row["cost_micros"],
        charge_micros=row["charge_micros"],
        credits=row["credits"],
        uncollected_credits=row["uncollected_credits"],
        flags=tuple(row["flags"]),
        transaction_id=row["transaction_id"],
        available_credits=available_credits,
    )


async def record_batch(
    session: AsyncSession,
    deps: MeteringDeps,
    events: list[UsageEventInput],
    *,
    now: datetime,
    scope: BatchScope | None = None,
) -> BatchOutcome[Result]:
    owned, scope = scope is None, scope or BatchScope(session, now)
    results: list[RecordResult | None] = [None] * len(events)
    found = await scope.find(e.account_external_id for e in events)
    priced: list[_Priced] = []
    first_index: dict[str, int] = {}
    repeats: list[int] = []
    for i, event in enumerate(events):
        if (invalid := check_event(event, now)) is not None:
            results[i] = invalid
        elif event.event_id in first_index:
            repeats.append(i)
        elif (subject := found.get(event.account_external_id)) is None:
            results[i] = errors.AccountNotFound(event.account_external_id)
        else:
            first_index[event.event_id] = i
            decided = _price(deps, i, event, subject, now)
            if isinstance(decided, _Priced):
                priced.append(decided)
            else:
                results[i] = decided

    outcome = BatchOutcome[Result](results=[])
    if priced:
        await _book(scope, priced, results, outcome)
        if owned:
            await scope.flush()
    for i in repeats:
        first = results[first_index[events[i].event_id]]
        same = events[i].fingerprint == events[first_index[events[i].event_id]].fingerprint
        results[i] = (
            first
            if same
            else errors.IdempotencyConflict(events[i].event_id, "repeated with different values")
        )
    outcome.results = [r for r in results if r is not None]
    assert len(outcome.results) == len(events)
    return outcome


def _price(
    deps: MeteringDeps, index: int, event: UsageEventInput, subject: subjects.Subject, now: datetime
) -> _Priced | errors.UnknownModel:
    occurred_at = event.occurred_at or now
    price = deps.pricing.price_at(event.model, occurred_at, event.provider)
    if price is None and event.provider_cost_micros is None:
        return errors.UnknownModel(event.model)
    usage = CallUsage(
        event.input_tokens, event.output_tokens, event.cached_input_tokens, event.images
    )
    charge = price_call(
        price,
        usage,
        deps.pricing.policy_for(subject.account_id),
        at=occurred_at,
        byok=event.byok,
        credit_value_micros=deps.settings.credit_value_micros,
        model=event.model,
        provider_cost_micros=event.provider_cost_micros,
    )
    return _Priced(index, event, subject, charge, occurred_at)


async def _book(
    scope: BatchScope,
    priced: list[_Priced],
    results: list[RecordResult | None],
    outcome: BatchOutcome[Result],
) -> None:
    session, now = scope.session, scope.now
    chosen = {p.subject.account_id: p.subject for p in priced}
    policies = await scope.limits(chosen)
    locked = await scope.lock(chosen.values())
    conn = await driver(session)
    existing = (
        scope.earlier_events
        if scope.earlier_events is not None
        else await earlier_events(session, [p.event for p in priced])
    )
    writer = scope.writer
    await scope.expire_holds(chosen)
    # Other holds matter here only for a member's share of its organisation's pool.
    members = [a for a, subject in chosen.items() if subject.pool_wallet_id is not None]
    in_flight = defaultdict(holds.Held, await holds.held(session, members) if members else {})
    wanted = [p.event.reservation_id for p in priced if p.event.reservation_id is not None]
    reservations = {r["id"]: r for r in (await conn.fetch(_RESERVATIONS, wanted) if wanted else [])}

    own_spent: dict[int, int] = defaultdict(int)
    pool_spent: dict[int, int] = defaultdict(int)  # by pool wallet
    member_pool: dict[int, int] = defaultdict(int)  # by account
    rows: list[dict[str, Any]] = []
    closed: set[uuid.UUID] = set()
    for p in priced:
        if (earlier := existing.get(p.event.event_id)) is not None:
            results[p.index] = _replay(earlier, p.event)
            continue
        subject = p.subject
        account_id = subject.account_id
        wallet = locked[subject.wallet_id]
        pool = locked.get(subject.pool_wallet_id) if subject.pool_wallet_id else None
        held = in_flight[account_id]
        flags: list[str] = []
        hold = 0
        settles = False
        reservation = reservations.get(p.event.reservation_id) if p.event.reservation_id else None
        if p.event.reservation_id is not None:
            if (
                reservation is None
                or reservation["account_id"] != account_id
                or reservation["status"] != "HELD"
                or reservation["id"] in closed
            ):
                flags.append("HOLD_NOT_ACTIVE")
            else:
                holds.give_back(
                    writer,
                    locked,
                    reservation["wallet_id"],
                    reservation["credits"],
                    reservation["pool_wallet_id"],
                    reservation["pool_credits"],
                )
                held.pool_credits -= reservation["pool_credits"]
                hold = reservation["credits"] + reservation["pool_credits"]
                # A hold named by two events of the batch settles once: the first closes it.
                closed.add(reservation["id"])
                settles = True
        credits = p.charge.credits
        if settles and credits > hold:
            flags.append("ABOVE_HOLD")
        take_own = min(credits, max(0, wallet.available - own_spent[account_id]))
        pool_room = 0
        if pool is not None:
            room = pool_headroom(
                pool,
                subject.member_cap,
                subject.pool_drawn + held.pool_credits + member_pool[account_id],
            )
            pool_room = max(0, room - pool_spent[pool.id])
        take_pool = min(credits - take_own, pool_room)
        uncollected = credits - take_own - take_pool
        if uncollected:
            flags.append("UNCOLLECTED")
        if p.event.provider_cost_micros is None and p.charge.cost_micros == 0 and credits == 0:
            flags.append("FREE")
        own_spent[account_id] += take_own
        if pool is not None and take_pool:
            pool_spent[pool.id] += take_pool
            member_pool[account_id] += take_pool
        rows.append(
            {
                "event_id": p.event.event_id,
                "request_hash": p.event.fingerprint,
                "account_id": account_id,
                "model": p.event.model,
                "provider": p.event.provider,
                "feature": p.event.feature,
                "input_tokens": p.event.input_tokens,
                "output_tokens": p.event.output_tokens,
                "cached_input_tokens": p.event.cached_input_tokens,
                "images": p.event.images,
                "cost_micros": p.charge.cost_micros,
                "charge_micros": p.charge.charge_micros,
                "credits": credits,
                "uncollected_credits": uncollected,
                "byok": p.event.byok,
                "flags": flags,
                "reservation_id": p.event.reservation_id,
                "transaction_id": None,
                "api_key_id": p.event.api_key_id,
                "details": p.event.metadata,
                "occurred_at": p.occurred_at,
                "_index": p.index,
            }
        )

    transactions = {}
    events_of = Counter(r["account_id"] for r in rows)
    for account_id, subject in chosen.items():
        own, from_pool = own_spent[account_id], member_pool[account_id]
        if own + from_pool:
            pool = locked.get(subject.pool_wallet_id) if subject.pool_wallet_id else None
            transactions[account_id] = writer.spend(
                account_id=account_id,
                wallet=locked[subject.wallet_id],
                own=own,
                pool=pool,
                pool_take=from_pool,
                reason="usage",
                details={"events": events_of[account_id]},
            )
    for row in rows:
        row["transaction_id"] = transactions.get(row["account_id"])
    # Written with the rest of the transaction's writes, in one round trip (scope.flush).
    if rows:
        scope.insert_events(_INSERT_EVENTS, _event_columns(rows), len(rows))
    if closed:
        scope.writes.add(_SETTLE, list(closed), now)
    limits.usage_additions(scope.writes, _increments(rows, policies))
    _key_spend(scope.writes, rows)
    balances = _balances_after(rows, chosen, locked, member_pool)
    for row in rows:
        results[row["_index"]] = _recorded(row, balances[row["account_id"]].available)
    if any(policies.get(a) is not None for a in chosen):
        await scope.flush()  # the alerts read the windows this batch adds to
    outcome.alerts += await _alerts(session, policies, chosen, locked, now)
    outcome.usage += [channels.usage_event(r, chosen[r["account_id"]].external_id) for r in rows]
    outcome.balances += [
        channels.balance_change(chosen[a].external_id, balance, "USAGE", now)
        for a, balance in balances.items()
    ]
    # Holds decided later in this transaction must count this batch's draws on the pools.
    for account_id, taken in member_pool.items():
        chosen[account_id].pool_drawn += taken


def _balances_after(
    rows: list[dict[str, Any]],
    chosen: dict[int, subjects.Subject],
    locked: dict[int, LockedWallet],
    member_pool: dict[int, int],
) -> dict[int, Balance]:
    """Each booking account's balance after the batch, from what is already in memory: the
    locked wallets were updated as the batch drew from them."""
    balances = {}
    for account_id in {r["account_id"] for r in rows}:
        subject = chosen[account_id]
        wallet = locked[subject.wallet_id]
        pool = locked.get(subject.pool_wallet_id) if subject.pool_wallet_id else None
        drawn = subject.pool_drawn + member_pool[account_id]
        balances[account_id] = Balance(
            total=wallet.balance,
            reserved=wallet.reserved,
            pool=pool_headroom(pool, subject.member_cap, drawn),
        )
    return balances


async def earlier_events(
    session: AsyncSession, events: Iterable[UsageEventInput]
) -> dict[str, Any]:
    """Bookings of these event ids that exist already, by event id. Read before the wallets
    are locked, an earlier booking committed in between is caught by the INSERT's ON CONFLICT
    (ConcurrentDuplicate: the batch runs again and finds it then)."""
    rows = await (await driver(session)).fetch(_EARLIER_EVENTS, [e.event_id for e in events])
    return {row["event_id"]: row for row in rows}


def _key_spend(writes: Writes, rows: list[dict[str, Any]]) -> None:
    """Virtual keys' spend, in the booking's transaction: one row per key per batch."""
    spend: dict[int, int] = defaultdict(int)
    for row in rows:
        if row["api_key_id"] is not None:
            spend[row["api_key_id"]] += row["credits"]
    writes.add_deltas(_ADD_KEY_SPEND, spend)


def _increments(
    rows: list[dict[str, Any]], policies: dict[int, limit_rules.Limits | None]
) -> list[limits.UsageIncrement]:
    """The batch as additions to the day and month counters of the windows it occurred in."""
    increments = []
    for row in rows:
        rules = policies.get(row["account_id"])
        increments.append(
            limits.UsageIncrement(
                account_id=row["account_id"],
                tokens=row["input_tokens"] + row["output_tokens"] + row["cached_input_tokens"],
                calls=1,
                cost_micros=row["cost_micros"],
                at=row["occurred_at"],
                timezone=rules.timezone if rules is not None else None,
            )
        )
    return increments


async def _alerts(
    session: AsyncSession,
    policies: dict[int, limit_rules.Limits | None],
    chosen: dict[int, subjects.Subject],
    locked: dict[int, Any],
    now: datetime,
) -> list[dict[str, Any]]:
    """Thresholds reached and low balances after this batch: one notification per window."""
    alerts: list[dict[str, Any]] = []
    for account_id, subject in chosen.items():
        rules = policies.get(account_id)
        if rules is None:
            continue
        day, month = await limits.window_usage(session, account_id, now, rules.timezone)
        day_key, month_key, _, _ = limit_rules.windows_for(now, rules.timezone)
        crossings = limit_rules.reached(rules, day=day, month=month, windows=(day_key, month_key))
        available = locked[subject.wallet_id].available
        if (low := limit_rules.low_balance(rules, available, day_key)) is not None:
            crossings.append(low)
        alerts += await limits.notify_crossings(session, account_id, crossings)
    return alerts
