"""authorizeUsage: may this account spend on this call? If so, hold the worst-case charge.

A batch of requests is decided in one transaction under the accounts' wallet locks, in
arrival order, so concurrent authorizations see each other's holds and never oversell. Checks
run cheapest first: emergency stop and suspension (in memory), model access and rate limit
(Redis), all before any lock (`screen`), then limits and credits under the lock.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate import errors
from tollgate.db import columns
from tollgate.ledger.wallets import pool_headroom
from tollgate.limits import rules as limit_rules
from tollgate.limits import service as limits
from tollgate.metering import holds, subjects
from tollgate.metering.deps import MeteringDeps
from tollgate.metering.requests import AuthorizeRequest, check_authorize
from tollgate.metering.results import Authorized, BatchOutcome, Denied, UsageWarning
from tollgate.metering.scope import BatchScope
from tollgate.pricing.charge import CallUsage, price_call

AuthorizeResult: TypeAlias = (
    Authorized | Denied | errors.ValidationFailed | errors.AccountNotFound | errors.UnknownModel
)
Result: TypeAlias = AuthorizeResult


@dataclass
class _Pending:
    index: int
    request: AuthorizeRequest
    subject: subjects.Subject
    credits: int
    tokens: int
    cost_micros: int


@dataclass
class Screened:
    """A batch's requests after the checks that need no lock: answers already decided, by
    position, and the requests left for the locked part."""

    results: list[AuthorizeResult | None]
    admitted: list[_Pending]


async def authorize_batch(
    session: AsyncSession,
    deps: MeteringDeps,
    requests: list[AuthorizeRequest],
    *,
    now: datetime,
    scope: BatchScope | None = None,
    screened: Screened | None = None,
) -> BatchOutcome[Result]:
    """Decide a batch. A caller that screened it already (before taking locks) passes that."""
    owned, scope = scope is None, scope or BatchScope(session, now)
    screened = screened or await screen(scope, deps, requests)
    results = screened.results
    outcome = BatchOutcome[Result](results=[])
    if screened.admitted:
        await _decide(scope, deps, screened.admitted, results, outcome)
        if owned:
            await scope.flush()
    outcome.results = [r for r in results if r is not None]
    assert len(outcome.results) == len(requests)
    return outcome


async def screen(
    scope: BatchScope, deps: MeteringDeps, requests: list[AuthorizeRequest]
) -> Screened:
    """Everything decided without a lock: input, stops and suspension (in memory), model access
    and the per-minute rate (Redis). None of it waits on, or holds, a wallet lock."""
    results: list[AuthorizeResult | None] = [None] * len(requests)
    found = await scope.find(r.account_external_id for r in requests)
    pending: list[_Pending] = []
    for i, request in enumerate(requests):
        decided = _precheck(deps, request, found.get(request.account_external_id), scope.now)
        if isinstance(decided, _Pending):
            decided.index = i
            pending.append(decided)
        else:
            results[i] = decided
    policy = await scope.limits(p.subject.account_id for p in pending)
    admitted: list[_Pending] = []
    for p in pending:
        rules = policy[p.subject.account_id]
        exempt = deps.controls.exempt_from_limits(p.subject.account_id)
        if rules is not None and not limit_rules.model_allowed(rules, p.request.model):
            results[p.index] = Denied(
                "MODEL_NOT_ALLOWED",
                f"{p.request.model} is not allowed for this account",
                "ALLOWED_MODELS",
            )
            continue
        if rules is not None and rules.requests_per_minute and not exempt:
            wait = await deps.rate.hit(p.subject.account_id, rules.requests_per_minute)
            if wait is not None:
                results[p.index] = Denied(
                    "RATE_LIMITED",
                    f"more than {rules.requests_per_minute} requests per minute",
                    "REQUESTS_PER_MINUTE",
                    retry_after_seconds=max(1, int(wait + 0.999)),
                )
                continue
        admitted.append(p)
    return Screened(results, admitted)


def _precheck(
    deps: MeteringDeps, request: AuthorizeRequest, subject: subjects.Subject | None, now: datetime
) -> _Pending | AuthorizeResult:
    if (invalid := check_authorize(request)) is not None:
        return invalid
    if (reason := deps.controls.global_stop()) is not None:
        return Denied("EMERGENCY_STOP", f"all usage is stopped: {reason}")
    if subject is None:
        return errors.AccountNotFound(request.account_external_id)
    account_id = subject.account_id
    if deps.controls.suspended(account_id):
        return Denied("ACCOUNT_SUSPENDED", "this account is suspended")
    if (reason := deps.controls.account_stop(account_id)) is not None:
        return Denied("EMERGENCY_STOP", f"usage of this account is stopped: {reason}")
    price = deps.pricing.price_at(request.model, now, request.provider)
    # BYOK too: recordUsage needs a price (or the provider's reported cost) to book the call.
    if price is None:
        return errors.UnknownModel(request.model)
    usage = CallUsage(request.estimated_input_tokens, request.max_output_tokens)
    charge = price_call(
        price,
        usage,
        deps.pricing.policy_for(account_id),
        at=now,
        byok=request.byok,
        credit_value_micros=deps.settings.credit_value_micros,
        model=request.model,
    )
    return _Pending(
        index=-1,
        request=request,
        subject=subject,
        credits=charge.credits,
        tokens=request.estimated_input_tokens + request.max_output_tokens,
        cost_micros=charge.cost_micros,
    )


async def _decide(
    scope: BatchScope,
    deps: MeteringDeps,
    admitted: list[_Pending],
    results: list[AuthorizeResult | None],
    outcome: BatchOutcome[Result],
) -> None:
    session, now = scope.session, scope.now
    policy = await scope.limits(p.subject.account_id for p in admitted)
    chosen = {p.subject.account_id: p.subject for p in admitted}
    locked = await scope.lock(chosen.values())
    writer = scope.writer
    await scope.expire_holds(chosen)
    # Holds in flight count against limits and a member's pool share; skip the query otherwise.
    needy = [a for a, subject in chosen.items() if policy[a] is not None or subject.pool_wallet_id]
    if needy:
        await scope.flush()  # holds settled and windows added earlier in this transaction
    in_flight = defaultdict(holds.Held, await holds.held(session, needy) if needy else {})
    windows: dict[int, tuple[limit_rules.WindowUsage, limit_rules.WindowUsage]] = {}
    ttl = timedelta(seconds=deps.settings.hold_ttl_seconds)
    reservations: list[dict[str, Any]] = []

    for p in admitted:
        subject = p.subject
        account_id = subject.account_id
        rules = policy[account_id]
        held = in_flight[account_id]
        warnings: list[UsageWarning] = []
        if rules is not None:
            tz = rules.timezone
            if account_id not in windows:
                windows[account_id] = await limits.window_usage(session, account_id, now, tz)
            day, month = windows[account_id]
            day_key, month_key, _, _ = limit_rules.windows_for(now, tz)
            exempt = deps.controls.exempt_from_limits(account_id)
            denial, crossings = limit_rules.evaluate(
                rules,
                day=_plus(day, held),
                month=_plus(month, held),
                request_tokens=p.tokens,
                request_cost_micros=p.cost_micros,
                model=p.request.model,
                windows=(day_key, month_key),
                exempt=exempt,
            )
            outcome.alerts += await limits.notify_crossings(session, account_id, crossings)
            warnings = [UsageWarning(c.limit, c.level, c.used, c.limit_value) for c in crossings]
            if denial is not None and not exempt:
                results[p.index] = Denied(denial.reason, denial.message, denial.limit)
                continue

        wallet = locked[subject.wallet_id]
        pool = locked.get(subject.pool_wallet_id) if subject.pool_wallet_id else None
        own = min(max(0, wallet.available), p.credits)
        headroom = pool_headroom(pool, subject.member_cap, subject.pool_drawn + held.pool_credits)
        if own + headroom < p.credits:
            results[p.index] = Denied(
                "INSUFFICIENT_CREDITS",
                f"this call may cost up to {_credits(p.credits)}; {_credits(own + headroom)}"
                " available",
            )
            continue
        pool_take = p.credits - own
        writer.reserve(wallet, own)
        if pool is not None and pool_take:
            writer.reserve(pool, pool_take)
        held.credits += own
        held.pool_credits += pool_take
        held.tokens += p.tokens
        held.cost_micros += p.cost_micros
        held.calls += 1
        reservation_id = uuid.uuid4()
        expires_at = now + ttl
        reservations.append(
            {
                "id": reservation_id,
                "account_id": account_id,
                "wallet_id": wallet.id,
                "credits": own,
                "pool_wallet_id": pool.id if pool is not None and pool_take else None,
                "pool_credits": pool_take,
                "estimated_tokens": p.tokens,
                "estimated_cost_micros": p.cost_micros,
                "model": p.request.model,
                "feature": p.request.feature,
                "byok": p.request.byok,
                "expires_at": expires_at,
            }
        )
        results[p.index] = Authorized(
            reservation_id,
            p.credits,
            expires_at,
            tuple(warnings),
            available_credits=max(0, wallet.available) + headroom - pool_take,
        )

    if reservations:
        scope.writes.add(_INSERT_HOLDS, *columns(reservations, _HOLD_FIELDS))


_HOLD_FIELDS = (
    "id", "account_id", "wallet_id", "credits", "pool_wallet_id", "pool_credits",
    "estimated_tokens", "estimated_cost_micros", "model", "feature", "byok", "expires_at",
)  # fmt: skip
_INSERT_HOLDS = """
INSERT INTO reservations (id, account_id, wallet_id, credits, pool_wallet_id, pool_credits,
    estimated_tokens, estimated_cost_micros, model, feature, byok, expires_at, status)
SELECT *, 'HELD' FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[],
    $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[],
    $11::bool[], $12::timestamptz[])
"""


def _plus(usage: limit_rules.WindowUsage, held: holds.Held) -> limit_rules.WindowUsage:
    """Usage so far plus what calls in flight may still add."""
    return limit_rules.WindowUsage(
        tokens=usage.tokens + held.tokens,
        calls=usage.calls + held.calls,
        cost_micros=usage.cost_micros + held.cost_micros,
    )


def _credits(n: int) -> str:
    return f"{n} credit" if n == 1 else f"{n} credits"
