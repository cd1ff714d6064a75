"""GraphQL adapter of upstream providers. Their API keys are never returned, only whether one
is set; a change is published on the invalidation bus after commit so every replica's
ProviderCache reloads."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

import strawberry
from redis.exceptions import RedisError

from tollgate import crypto
from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import ValidationFailed, is_domain_error, to_graphql
from tollgate.api.permissions import READ, WRITE
from tollgate.providers import models as rows
from tollgate.providers import service
from tollgate.providers.cache import TOPIC

log = logging.getLogger(__name__)


@strawberry.type
class ModelMapping:
    model: str = strawberry.field(description="The model name callers ask for.")
    upstream_model: str = strawberry.field(description="The name sent to the upstream.")


@strawberry.type(description="An OpenAI-compatible upstream the gateway routes calls to.")
class Provider:
    id: strawberry.ID
    name: str
    base_url: str
    api_key_env: str | None = strawberry.field(
        description="The environment variable the API key is read from at call time."
    )
    has_api_key: bool = strawberry.field(
        description="Whether an API key is stored (encrypted; it is never returned)."
    )
    models: list[str] = strawberry.field(description="Exact names and glob patterns served.")
    model_map: list[ModelMapping]
    priority: int = strawberry.field(description="Lower is tried first; ties go by name.")
    timeout_seconds: float
    enabled: bool
    created_at: datetime
    updated_at: datetime
    updated_by: str

    @classmethod
    def of(cls, p: rows.Provider) -> Provider:
        return cls(
            id=strawberry.ID(str(p.id)),
            name=p.name,
            base_url=p.base_url,
            api_key_env=p.api_key_env,
            has_api_key=p.api_key_secret is not None,
            models=list(p.models),
            model_map=[ModelMapping(model=m, upstream_model=u) for m, u in p.model_map.items()],
            priority=p.priority,
            timeout_seconds=p.timeout_seconds,
            enabled=p.enabled,
            created_at=p.created_at,
            updated_at=p.updated_at,
            updated_by=p.updated_by,
        )


@strawberry.input
class ModelMappingInput:
    model: str
    upstream_model: str


@strawberry.input(
    description="Creates the provider of this name, or replaces its settings. The API key "
    "is kept unless apiKey, apiKeyEnv or clearApiKey is given."
)
class UpsertProviderInput:
    name: str = strawberry.field(description="Lowercase letters, digits, '.', '_', '-'.")
    base_url: str = strawberry.field(
        description="As the OpenAI SDK takes it, e.g. https://api.openai.com/v1."
    )
    models: list[str] = strawberry.field(
        description='Exact names and glob patterns served, e.g. ["gpt-*", "o*"].'
    )
    api_key_env: str | None = strawberry.field(
        default=None, description="Read the API key from this environment variable."
    )
    api_key: str | None = strawberry.field(
        default=None, description="Store this API key, encrypted."
    )
    clear_api_key: bool = strawberry.field(
        default=False, description="Remove the stored key or variable: the upstream needs none."
    )
    model_map: list[ModelMappingInput] | None = strawberry.field(
        default=None, description="Models the upstream knows under another name."
    )
    priority: int = service.DEFAULT_PRIORITY
    timeout_seconds: float = service.DEFAULT_TIMEOUT_SECONDS
    enabled: bool = True


UpsertProviderResult = Annotated[
    Provider | ValidationFailed, strawberry.union("UpsertProviderResult")
]


@strawberry.type
class Query:
    @strawberry.field(permission_classes=READ, description="In the order the gateway tries them.")
    async def providers(self, info: Info) -> list[Provider]:
        async with info.context.db.transaction() as session:
            return [Provider.of(p) for p in await service.list_providers(session)]


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=WRITE)
    async def upsert_provider(self, info: Info, input: UpsertProviderInput) -> UpsertProviderResult:
        principal = info.context.principal
        assert principal is not None
        provider = service.ProviderInput(
            name=input.name,
            base_url=input.base_url,
            models=tuple(input.models),
            api_key_env=input.api_key_env,
            api_key=input.api_key,
            clear_api_key=input.clear_api_key,
            model_map=tuple((m.model, m.upstream_model) for m in input.model_map or ()),
            priority=input.priority,
            timeout_seconds=input.timeout_seconds,
            enabled=input.enabled,
        )
        # The key file of dev is only created once a secret is to be stored.
        box = (
            crypto.for_settings(info.context.settings)
            if input.api_key is not None
            else crypto.SecretBox()
        )
        params = {
            "name": input.name,
            "baseUrl": input.base_url,
            "models": input.models,
            "apiKeyEnv": input.api_key_env,
            "apiKey": None if input.api_key is None else "***",
            "clearApiKey": input.clear_api_key,
            "modelMap": {m.model: m.upstream_model for m in input.model_map or ()},
            "priority": input.priority,
            "timeoutSeconds": input.timeout_seconds,
            "enabled": input.enabled,
        }
        result = await audited(
            info,
            "upsertProvider",
            params,
            lambda s: service.upsert_provider(s, provider, crypto=box, actor=principal.actor),
        )
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, rows.Provider)
        await _tell_replicas(info)
        return Provider.of(result)


async def _tell_replicas(info: Info) -> None:
    # Committed already: if Redis is unreachable now, each cache's periodic refresh catches up.
    try:
        await info.context.bus.publish(TOPIC)
    except RedisError:
        log.exception("could not publish the provider change")
