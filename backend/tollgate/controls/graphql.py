"""GraphQL adapter of controls: emergency stops, per-account overrides and boosts.

Stop and override changes are published on the invalidation bus after commit, so every
replica's ControlsCache reloads; a stop change also publishes an EMERGENCY_STOP alert.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated

import strawberry
from redis.exceptions import RedisError

from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import (
    AccountNotFound,
    IdempotencyConflict,
    ValidationFailed,
    is_domain_error,
    to_graphql,
)
from tollgate.api.pagination import Connection, connection, page_args
from tollgate.api.permissions import READ, WRITE
from tollgate.api.scalars import BigInt
from tollgate.controls import service
from tollgate.ledger.graphql import Balance, LedgerSuccess, publish_booked
from tollgate.ledger.service import Booked
from tollgate.notifications.service import publish_alerts

log = logging.getLogger(__name__)


@strawberry.enum
class StopScope(Enum):
    GLOBAL = "GLOBAL"
    ACCOUNT = "ACCOUNT"


@strawberry.type(description="An emergency stop: while on, every request in its scope is denied.")
class EmergencyStop:
    scope: StopScope
    account_external_id: str | None
    on: bool
    reason: str
    updated_by: str
    updated_at: datetime | None

    @classmethod
    def of(cls, s: service.StopState) -> EmergencyStop:
        return cls(
            scope=StopScope(s.scope),
            account_external_id=s.account_external_id,
            on=s.on,
            reason=s.reason,
            updated_by=s.updated_by,
            updated_at=s.updated_at,
        )


@strawberry.type
class AccountControls:
    account_external_id: str
    stopped: bool = strawberry.field(description="The account's own emergency stop.")
    stop_reason: str
    exempt_from_limits: bool = strawberry.field(
        description="Limit blocks do not apply; the model allow-list still does."
    )
    suspended: bool = strawberry.field(description="Every request is denied ACCOUNT_SUSPENDED.")
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, s: service.AccountState) -> AccountControls:
        return cls(
            account_external_id=s.external_id,
            stopped=s.stopped,
            stop_reason=s.stop_reason,
            exempt_from_limits=s.exempt_from_limits,
            suspended=s.suspended,
            updated_by=s.updated_by,
            updated_at=s.updated_at,
        )


@strawberry.type
class Controls:
    global_stop: EmergencyStop

    @strawberry.field(description="Accounts with a stop, an exemption or a suspension.")
    async def accounts(
        self, info: Info, first: int = 50, after: str | None = None
    ) -> Connection[AccountControls]:
        after_id = page_args(first, after)
        async with info.context.db.transaction() as session:
            rows = await service.account_states(session, first=first, after_id=after_id)
        return connection(rows, first, key=lambda s: s.account_id, node=AccountControls.of)


@strawberry.input
class GrantBoostInput:
    account_external_id: str
    credits: BigInt
    until: datetime = strawberry.field(description="When the boost's unspent credits expire.")
    idempotency_key: str
    reason: str = ""


SetEmergencyStopResult = Annotated[
    EmergencyStop | ValidationFailed | AccountNotFound,
    strawberry.union("SetEmergencyStopResult"),
]
SetAccountOverrideResult = Annotated[
    AccountControls | ValidationFailed | AccountNotFound,
    strawberry.union("SetAccountOverrideResult"),
]
GrantBoostResult = Annotated[
    LedgerSuccess | ValidationFailed | AccountNotFound | IdempotencyConflict,
    strawberry.union("GrantBoostResult"),
]


def _actor(info: Info) -> str:
    principal = info.context.principal
    assert principal is not None
    return principal.actor


async def _tell_replicas(info: Info) -> None:
    # Committed already: if Redis is unreachable now, each cache's periodic refresh catches up.
    try:
        await info.context.bus.publish(service.CONTROLS_TOPIC)
    except RedisError:
        log.exception("could not publish the controls change")


@strawberry.type
class Query:
    @strawberry.field(permission_classes=READ)
    async def controls(self, info: Info) -> Controls:
        async with info.context.db.transaction() as session:
            state = await service.global_state(session)
        return Controls(global_stop=EmergencyStop.of(state))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=WRITE,
        description="Turn the global or an account's emergency stop on or off (reason needed "
        "to turn it on). Every replica applies it within a second.",
    )
    async def set_emergency_stop(
        self,
        info: Info,
        scope: StopScope,
        on: bool,
        reason: str = "",
        account_external_id: str | None = None,
    ) -> SetEmergencyStopResult:
        request = service.StopRequest(
            scope=scope.value, on=on, reason=reason, account_external_id=account_external_id
        )
        actor = _actor(info)
        result = await audited(
            info,
            "setEmergencyStop",
            request,
            lambda s: service.set_emergency_stop(s, request, actor=actor, now=datetime.now(UTC)),
        )
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, service.StopChanged)
        await _tell_replicas(info)
        await publish_alerts(info.context.redis, [result.alert])
        return EmergencyStop.of(result.state)

    @strawberry.mutation(
        permission_classes=WRITE,
        description="Exempt an account from limit blocks, or suspend it; an argument left out "
        "stays as it is.",
    )
    async def set_account_override(
        self,
        info: Info,
        account_external_id: str,
        exempt_from_limits: bool | None = None,
        suspended: bool | None = None,
    ) -> SetAccountOverrideResult:
        request = service.OverrideRequest(
            account_external_id=account_external_id,
            exempt_from_limits=exempt_from_limits,
            suspended=suspended,
        )
        actor = _actor(info)
        result = await audited(
            info,
            "setAccountOverride",
            request,
            lambda s: service.set_account_override(s, request, actor=actor),
        )
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, service.AccountState)
        await _tell_replicas(info)
        return AccountControls.of(result)

    @strawberry.mutation(
        permission_classes=WRITE,
        description="Temporary credits: a BOOST grant whose unspent credits expire at `until`.",
    )
    async def grant_boost(self, info: Info, input: GrantBoostInput) -> GrantBoostResult:
        request = service.BoostRequest(
            account_external_id=input.account_external_id,
            credits=input.credits,
            until=input.until,
            idempotency_key=input.idempotency_key,
            reason=input.reason,
        )
        actor = _actor(info)
        result = await audited(
            info,
            "grantBoost",
            request,
            lambda s: service.grant_boost(s, request, actor=actor, now=datetime.now(UTC)),
        )
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, Booked)
        await publish_booked(info, result, "BOOST", request.account_external_id)
        return LedgerSuccess(
            balance=Balance.of(result.balance),
            transaction_id=strawberry.ID(str(result.transaction_id)),
        )
