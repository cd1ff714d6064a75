"""GraphQL adapter of virtual keys: admins create and revoke them, readers list them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

import strawberry
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate import crypto, errors
from tollgate.accounts.service import get_account
from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import (
    AccountNotFound,
    NotFound,
    ValidationFailed,
    is_domain_error,
    to_graphql,
)
from tollgate.api.permissions import READ, WRITE
from tollgate.api.scalars import BigInt
from tollgate.apikeys import models, service
from tollgate.apikeys.cache import TOPIC
from tollgate.pagination import parse_id

log = logging.getLogger(__name__)


@strawberry.type(description="A gateway key of an end user. The secret itself is never shown.")
class ApiKey:
    id: strawberry.ID
    account_external_id: str
    name: str
    prefix: str = strawberry.field(
        description="The first characters of the secret, to tell keys apart."
    )
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = strawberry.field(description="Updated at most once a minute.")
    allowed_models: list[str] | None = strawberry.field(
        description="Exact names and glob patterns; null allows every model."
    )
    rpm_limit: int | None = strawberry.field(description="Requests per minute; null: no limit.")
    has_byok_key: bool = strawberry.field(
        description="Whether the end user's own provider key is stored (it is never returned)."
    )
    byok_provider: str | None
    spend_credits: BigInt = strawberry.field(description="Credits charged through this key.")

    @classmethod
    def of(cls, k: models.ApiKey, account_external_id: str) -> ApiKey:
        return cls(
            id=strawberry.ID(str(k.id)),
            account_external_id=account_external_id,
            name=k.name,
            prefix=k.prefix,
            created_at=k.created_at,
            expires_at=k.expires_at,
            revoked_at=k.revoked_at,
            last_used_at=k.last_used_at,
            allowed_models=None if k.allowed_models is None else list(k.allowed_models),
            rpm_limit=k.rpm_limit,
            has_byok_key=k.byok_secret is not None,
            byok_provider=k.byok_provider,
            spend_credits=BigInt(k.spend_credits),
        )


@strawberry.type(description="The secret is shown this once and never again.")
class CreatedApiKey:
    key: ApiKey
    secret: str


@strawberry.input
class CreateApiKeyInput:
    account_external_id: str
    name: str
    expires_at: datetime | None = None
    allowed_models: list[str] | None = strawberry.field(
        default=None,
        description="Exact names and glob patterns (gpt-4o*, o?-mini); null allows every model.",
    )
    rpm_limit: int | None = strawberry.field(
        default=None, description="Requests per minute through this key; null: no limit."
    )
    byok_provider: str | None = strawberry.field(
        default=None, description="The name of the provider the end user's own key is for."
    )
    byok_provider_key: str | None = strawberry.field(
        default=None, description="The end user's own provider key: stored encrypted."
    )


CreateApiKeyResult = Annotated[
    CreatedApiKey | ValidationFailed | AccountNotFound, strawberry.union("CreateApiKeyResult")
]
RevokeApiKeyResult = Annotated[ApiKey | NotFound, strawberry.union("RevokeApiKeyResult")]


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=READ,
        description="The account's gateway keys, revoked ones too, oldest first; null when "
        "there is no such account.",
    )
    async def api_keys(self, info: Info, account_external_id: str) -> list[ApiKey] | None:
        async with info.context.db.transaction() as session:
            account = await get_account(session, account_external_id)
            if account is None:
                return None
            keys = await service.list_api_keys(session, account.id)
        return [ApiKey.of(k, account.external_id) for k in keys]


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=WRITE)
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyResult:
        principal = info.context.principal
        assert principal is not None
        new = service.NewApiKey(
            account_external_id=input.account_external_id,
            name=input.name,
            expires_at=input.expires_at,
            allowed_models=None if input.allowed_models is None else tuple(input.allowed_models),
            rpm_limit=input.rpm_limit,
            byok_provider=input.byok_provider,
            byok_provider_key=input.byok_provider_key,
        )
        # The key file of dev is only created once a secret is to be stored.
        box = (
            crypto.for_settings(info.context.settings)
            if input.byok_provider_key is not None
            else crypto.SecretBox()
        )
        params = {
            "accountExternalId": input.account_external_id,
            "name": input.name,
            "expiresAt": input.expires_at,
            "allowedModels": input.allowed_models,
            "rpmLimit": input.rpm_limit,
            "byokProvider": input.byok_provider,
            "byokProviderKey": None if input.byok_provider_key is None else "***",
        }
        result = await audited(
            info,
            "createApiKey",
            params,
            lambda s: service.create_api_key(
                s, new, crypto=box, now=datetime.now(UTC), created_by=principal.actor
            ),
        )
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, service.CreatedApiKey)
        return CreatedApiKey(
            key=ApiKey.of(result.key, result.account_external_id), secret=result.secret
        )

    @strawberry.mutation(
        permission_classes=WRITE,
        description="The key stops working on every replica within moments; revoking again "
        "keeps the first time.",
    )
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> RevokeApiKeyResult:
        key_id = parse_id(str(id))

        async def work(session: AsyncSession) -> ApiKey | errors.NotFound:
            if key_id is None:
                return errors.NotFound(str(id), "no API key with this id")
            revoked = await service.revoke_api_key(session, key_id)
            if isinstance(revoked, errors.NotFound):
                return revoked
            owner = await service.account_external_id(session, revoked.account_id)
            return ApiKey.of(revoked, owner)

        result = await audited(info, "revokeApiKey", {"id": str(id)}, work)
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        await _tell_replicas(info)
        return result  # type: ignore[return-value]


async def _tell_replicas(info: Info) -> None:
    # Committed already: if Redis is unreachable now, each cache's TTL bounds the staleness.
    try:
        await info.context.bus.publish(TOPIC)
    except RedisError:
        log.exception("could not publish the API key revocation")
