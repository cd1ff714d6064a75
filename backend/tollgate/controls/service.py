"""Emergency stops, per-account overrides and temporary boosts.

Stops and overrides are read on every request from each process's ControlsCache
(tollgate.controls.cache); after committing a change, publish CONTROLS_TOPIC on the
invalidation bus so every replica reloads. A boost is a ledger grant of source BOOST that
expires at its end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account
from tollgate.accounts.service import get_account
from tollgate.controls.models import GLOBAL_ROW, AccountControls, GlobalControls
from tollgate.errors import AccountNotFound, ValidationFailed
from tollgate.ledger import service as ledger
from tollgate.ledger.requests import MAX_AMOUNT, MAX_REASON_LENGTH, GrantRequest
from tollgate.notifications.service import notify_once

CONTROLS_TOPIC = "controls"
SCOPES = ("GLOBAL", "ACCOUNT")
# A boost is temporary: credits meant to last longer are an ordinary grant.
MAX_BOOST = timedelta(days=366)


@dataclass(frozen=True)
class StopRequest:
    scope: str
    on: bool
    reason: str = ""
    account_external_id: str | None = None


@dataclass(frozen=True)
class OverrideRequest:
    account_external_id: str
    exempt_from_limits: bool | None = None
    suspended: bool | None = None


@dataclass(frozen=True)
class BoostRequest:
    account_external_id: str
    credits: int
    until: datetime
    idempotency_key: str
    reason: str = ""


@dataclass(frozen=True)
class StopState:
    scope: str
    on: bool
    reason: str
    account_external_id: str | None
    updated_by: str
    updated_at: datetime | None


@dataclass(frozen=True)
class StopChanged:
    state: StopState
    # The EMERGENCY_STOP alert to publish after commit.
    alert: dict[str, Any] | None


@dataclass(frozen=True)
class AccountState:
    account_id: int
    external_id: str
    stopped: bool
    stop_reason: str
    exempt_from_limits: bool
    suspended: bool
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class Snapshot:
    """What each process keeps in memory: the global stop, and accounts with any control on."""

    global_stop: str | None
    accounts: Mapping[int, AccountState]


def _check_reason(reason: str, *, required: bool) -> ValidationFailed | None:
    if len(reason) > MAX_REASON_LENGTH:
        return ValidationFailed("reason", f"at most {MAX_REASON_LENGTH} characters")
    if "\x00" in reason:
        # PostgreSQL text cannot hold NUL.
        return ValidationFailed("reason", "must not contain NUL characters")
    if required and not reason.strip():
        return ValidationFailed("reason", "say why the stop is on")
    return None


async def global_state(session: AsyncSession) -> StopState:
    row = await session.get(GlobalControls, GLOBAL_ROW, populate_existing=True)
    if row is None:
        return StopState("GLOBAL", False, "", None, "", None)
    return StopState("GLOBAL", row.stopped, row.stop_reason, None, row.updated_by, row.updated_at)


async def set_emergency_stop(
    session: AsyncSession, request: StopRequest, *, actor: str, now: datetime
) -> StopChanged | ValidationFailed | AccountNotFound:
    if request.scope not in SCOPES:
        return ValidationFailed("scope", f"one of {', '.join(SCOPES)}")
    if (invalid := _check_reason(request.reason, required=request.on)) is not None:
        return invalid
    changes = {
        "stopped": request.on,
        "stop_reason": request.reason if request.on else "",
        "updated_by": actor,
        "updated_at": func.now(),
    }
    account: Account | None = None
    if request.scope == "GLOBAL":
        if request.account_external_id is not None:
            return ValidationFailed("accountExternalId", "a GLOBAL stop names no account")
        stmt = insert(GlobalControls).values(id=GLOBAL_ROW, **changes)
        await session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=changes))
        state = await global_state(session)
    else:
        if request.account_external_id is None:
            return ValidationFailed("accountExternalId", "an ACCOUNT stop needs the account")
        account = await get_account(session, request.account_external_id)
        if account is None:
            return AccountNotFound(request.account_external_id)
        row = await _upsert_account(session, account.id, changes)
        state = StopState(
            "ACCOUNT", row.stopped, row.stop_reason, account.external_id, actor, row.updated_at
        )
    alert = await notify_once(
        session,
        account_id=None if account is None else account.id,
        kind="EMERGENCY_STOP",
        subject=request.scope,
        # Every change is its own alert.
        window="at:" + now.isoformat(),
        payload={"scope": request.scope, "on": request.on, "reason": request.reason, "by": actor},
    )
    return StopChanged(state, alert)


async def _upsert_account(
    session: AsyncSession, account_id: int, changes: dict[str, Any]
) -> AccountControls:
    stmt = insert(AccountControls).values(account_id=account_id, **changes)
    await session.execute(stmt.on_conflict_do_update(index_elements=["account_id"], set_=changes))
    row = await session.get(AccountControls, account_id, populate_existing=True)
    assert row is not None
    return row


def _account_state(row: AccountControls, external_id: str) -> AccountState:
    return AccountState(
        account_id=row.account_id,
        external_id=external_id,
        stopped=row.stopped,
        stop_reason=row.stop_reason,
        exempt_from_limits=row.exempt_from_limits,
        suspended=row.suspended,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


async def set_account_override(
    session: AsyncSession, request: OverrideRequest, *, actor: str
) -> AccountState | ValidationFailed | AccountNotFound:
    """Change the given overrides; one left out (None) stays as it is."""
    if request.exempt_from_limits is None and request.suspended is None:
        return ValidationFailed("exemptFromLimits", "give exemptFromLimits, suspended or both")
    account = await get_account(session, request.account_external_id)
    if account is None:
        return AccountNotFound(request.account_external_id)
    changes: dict[str, Any] = {"updated_by": actor, "updated_at": func.now()}
    if request.exempt_from_limits is not None:
        changes["exempt_from_limits"] = request.exempt_from_limits
    if request.suspended is not None:
        changes["suspended"] = request.suspended
    row = await _upsert_account(session, account.id, changes)
    return _account_state(row, account.external_id)


async def account_states(
    session: AsyncSession, *, first: int | None = None, after_id: int | None = None
) -> Sequence[AccountState]:
    """Accounts with any control on, by account id; with `first`, one extra row tells the
    caller whether another page exists."""
    query = (
        select(AccountControls, Account.external_id)
        .join(Account, Account.id == AccountControls.account_id)
        .where(
            or_(
                AccountControls.stopped,
                AccountControls.suspended,
                AccountControls.exempt_from_limits,
            )
        )
        .order_by(AccountControls.account_id)
    )
    if after_id is not None:
        query = query.where(AccountControls.account_id > after_id)
    if first is not None:
        query = query.limit(first + 1)
    rows = (await session.execute(query)).all()
    return [_account_state(row, external_id) for row, external_id in rows]


async def load_snapshot(session: AsyncSession) -> Snapshot:
    glob = await global_state(session)
    return Snapshot(
        global_stop=(glob.reason or "emergency stop") if glob.on else None,
        accounts={s.account_id: s for s in await account_states(session)},
    )


def _check_boost(request: BoostRequest, now: datetime) -> ValidationFailed | None:
    if isinstance(request.credits, bool) or not isinstance(request.credits, int):
        return ValidationFailed("credits", "must be a whole number of credits")
    if not 0 < request.credits <= MAX_AMOUNT:
        return ValidationFailed("credits", f"between 1 and {MAX_AMOUNT}")
    if request.until.tzinfo is None:
        return ValidationFailed("until", "must carry a timezone")
    if request.until <= now:
        return ValidationFailed("until", "must be in the future")
    if request.until > now + MAX_BOOST:
        return ValidationFailed("until", f"at most {MAX_BOOST.days} days ahead")
    return None


# The ledger names these fields differently.
_LEDGER_FIELDS = {"amount": "credits", "expiresAt": "until"}


async def grant_boost(
    session: AsyncSession, request: BoostRequest, *, actor: str, now: datetime
) -> ledger.GrantResult:
    """Temporary credits: a BOOST grant that expires at `until`, idempotent by its key."""
    if (invalid := _check_boost(request, now)) is not None:
        return invalid
    result = await ledger.grant_credits(
        session,
        GrantRequest(
            amount=request.credits,
            source="BOOST",
            idempotency_key=request.idempotency_key,
            account_external_id=request.account_external_id,
            reason=request.reason,
            expires_at=request.until,
        ),
        actor=actor,
    )
    if isinstance(result, ValidationFailed) and result.field in _LEDGER_FIELDS:
        return ValidationFailed(_LEDGER_FIELDS[result.field], result.message)
    return result
