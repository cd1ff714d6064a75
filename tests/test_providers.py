"""Upstream providers as data: upserted by name through GraphQL with their keys stored
encrypted and never returned, and routed by priority, glob patterns and model maps from each
process's cache, which follows changes through the invalidation bus."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from tests.conftest import GraphQLClient
from tollgate import crypto
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.crypto import SecretBox
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus, publish
from tollgate.providers import service
from tollgate.providers.cache import TOPIC, ProviderCache
from tollgate.providers.routing import Route

SECRET_KEY = crypto.generate_key()
OPENAI_KEY = "sk-proj-" + "Qw7" * 16
OPENROUTER_KEY = "sk-or-v1-" + "e5" * 24
# No periodic refresh during a test: only a message can explain a reload.
NEVER = 3600.0

UPSERT = """
mutation($input: UpsertProviderInput!) {
  upsertProvider(input: $input) {
    __typename
    ... on Provider {
      id name baseUrl apiKeyEnv hasApiKey models modelMap { model upstreamModel }
      priority timeoutSeconds enabled updatedBy createdAt updatedAt
    }
    ... on ValidationFailed { field message }
  }
}"""
LIST = """
{ providers { name baseUrl apiKeyEnv hasApiKey models modelMap { model upstreamModel }
              priority timeoutSeconds enabled } }"""


@pytest.fixture
def app_settings(settings: Settings, tmp_path: Path) -> Settings:
    return dataclasses.replace(settings, secret_key=SECRET_KEY, data_dir=tmp_path)


@pytest.fixture
async def app(app_settings: Settings) -> AsyncIterator[Any]:
    """The suite's app, with a secret key of its own so provider keys can be stored."""
    application = create_app(app_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([SECRET_KEY])


async def upsert(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    data = await gql.data(
        UPSERT,
        input={"name": "openai", "baseUrl": "https://api.openai.com/v1", "models": ["gpt-*"]}
        | fields,
    )
    result: dict[str, Any] = data["upsertProvider"]
    return result


async def upserted(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    result = await upsert(gql, **fields)
    assert result["__typename"] == "Provider", result
    return result


async def stored(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        found = await session.execute(text("SELECT to_jsonb(p) FROM providers p ORDER BY id"))
        return [r[0] for r in found]


async def test_upsert_creates_then_updates_by_name(gql: GraphQLClient) -> None:
    made = await upserted(
        gql,
        baseUrl="HTTPS://api.openai.com/v1/",
        models=["gpt-*", "o*", "gpt-*"],
        apiKeyEnv="OPENAI_API_KEY",
        modelMap=[{"model": "gpt-4o-latest", "upstreamModel": "chatgpt-4o-latest"}],
    )
    assert made | {"id": "x", "createdAt": "t", "updatedAt": "t"} == {
        "__typename": "Provider",
        "id": "x",
        "name": "openai",
        "baseUrl": "https://api.openai.com/v1",
        "apiKeyEnv": "OPENAI_API_KEY",
        "hasApiKey": False,
        "models": ["gpt-*", "o*"],
        "modelMap": [{"model": "gpt-4o-latest", "upstreamModel": "chatgpt-4o-latest"}],
        "priority": 100,
        "timeoutSeconds": 60.0,
        "enabled": True,
        "updatedBy": made["updatedBy"],
        "createdAt": "t",
        "updatedAt": "t",
    }
    assert made["updatedBy"].endswith(":bootstrap")

    changed = await upserted(
        gql, baseUrl="http://localhost:4000", models=["*"], priority=5, timeoutSeconds=12.5
    )
    assert changed["id"] == made["id"] and changed["createdAt"] == made["createdAt"]
    assert (changed["baseUrl"], changed["models"], changed["priority"]) == (
        "http://localhost:4000",
        ["*"],
        5,
    )
    assert changed["timeoutSeconds"] == 12.5
    # Everything given is replaced; the key source, never sent back, is kept.
    assert changed["modelMap"] == []
    assert changed["apiKeyEnv"] == "OPENAI_API_KEY"

    await upserted(gql, name="ollama", baseUrl="http://127.0.0.1:11434/v1", models=["llama*"])
    listed = (await gql.data(LIST))["providers"]
    assert [p["name"] for p in listed] == ["openai", "ollama"]


async def test_api_key_is_stored_encrypted_never_returned_and_kept_until_replaced(
    gql: GraphQLClient, db: Database, box: SecretBox
) -> None:
    made = await upserted(gql, apiKey=f" {OPENAI_KEY} ")
    assert made["hasApiKey"] is True and made["apiKeyEnv"] is None

    (row,) = await stored(db)
    assert OPENAI_KEY not in json.dumps(row)
    assert box.decrypt(row["api_key_secret"]) == OPENAI_KEY

    # An update that does not mention the key keeps it.
    kept = await upserted(gql, priority=7)
    assert kept["hasApiKey"] is True
    (row,) = await stored(db)
    assert box.decrypt(row["api_key_secret"]) == OPENAI_KEY

    # An environment variable replaces the stored key, and clearApiKey removes both.
    by_env = await upserted(gql, apiKeyEnv="OPENAI_API_KEY")
    assert (by_env["hasApiKey"], by_env["apiKeyEnv"]) == (False, "OPENAI_API_KEY")
    (row,) = await stored(db)
    assert row["api_key_secret"] is None
    again = await upserted(gql, apiKey=OPENAI_KEY)
    assert (again["hasApiKey"], again["apiKeyEnv"]) == (True, None)
    cleared = await upserted(gql, clearApiKey=True)
    assert (cleared["hasApiKey"], cleared["apiKeyEnv"]) == (False, None)
    (row,) = await stored(db)
    assert row["api_key_secret"] is None and row["api_key_env"] is None

    audit = await gql.data("{ auditLog(first: 20) { nodes { operation input result } } }")
    nodes = audit["auditLog"]["nodes"]
    assert {n["operation"] for n in nodes} == {"upsertProvider"}
    assert all(n["result"]["type"] == "Provider" for n in nodes)
    assert OPENAI_KEY not in json.dumps(audit)
    assert OPENAI_KEY not in json.dumps(await gql.data(LIST))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"name": "Open AI"}, "name", id="name-with-space"),
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"name": "x" * 65}, "name", id="long-name"),
        pytest.param({"baseUrl": "ftp://example.com"}, "baseUrl", id="ftp"),
        pytest.param({"baseUrl": "api.openai.com/v1"}, "baseUrl", id="no-scheme"),
        pytest.param({"baseUrl": "https://"}, "baseUrl", id="no-host"),
        pytest.param({"baseUrl": "https://u:p@example.com/v1"}, "baseUrl", id="credentials"),
        pytest.param({"baseUrl": "https://example.com/v1?key=1"}, "baseUrl", id="query"),
        pytest.param({"baseUrl": "https://example.com:99999"}, "baseUrl", id="bad-port"),
        pytest.param({"baseUrl": "https://exa mple.com"}, "baseUrl", id="space"),
        pytest.param({"models": []}, "models", id="no-models"),
        pytest.param({"models": ["gpt-*", " o*"]}, "models", id="padded-pattern"),
        pytest.param({"timeoutSeconds": 0.5}, "timeoutSeconds", id="timeout-low"),
        pytest.param({"timeoutSeconds": 601}, "timeoutSeconds", id="timeout-high"),
        pytest.param({"priority": -1}, "priority", id="priority-negative"),
        pytest.param({"priority": 10_001}, "priority", id="priority-high"),
        pytest.param({"apiKey": "sk-1", "apiKeyEnv": "KEY"}, "apiKey", id="two-key-sources"),
        pytest.param({"apiKeyEnv": "KEY", "clearApiKey": True}, "apiKeyEnv", id="env-and-clear"),
        pytest.param({"apiKeyEnv": "1KEY"}, "apiKeyEnv", id="bad-env-name"),
        pytest.param({"apiKeyEnv": "MY-KEY"}, "apiKeyEnv", id="env-with-dash"),
        pytest.param({"apiKey": "sk 1"}, "apiKey", id="key-with-space"),
        pytest.param({"apiKey": ""}, "apiKey", id="empty-key"),
        pytest.param(
            {"modelMap": [{"model": "claude-3", "upstreamModel": "anthropic/claude-3"}]},
            "modelMap",
            id="map-outside-patterns",
        ),
        pytest.param(
            {
                "modelMap": [
                    {"model": "gpt-4o", "upstreamModel": "a"},
                    {"model": "gpt-4o", "upstreamModel": "b"},
                ]
            },
            "modelMap",
            id="mapped-twice",
        ),
        pytest.param(
            {"modelMap": [{"model": "gpt-4o", "upstreamModel": ""}]}, "modelMap", id="empty-target"
        ),
    ],
)
async def test_bad_input_is_a_typed_refusal_that_writes_nothing(
    gql: GraphQLClient, db: Database, fields: dict[str, Any], field: str
) -> None:
    result = await upsert(gql, **fields)
    assert result["__typename"] == "ValidationFailed", result
    assert result["field"] == field
    assert await stored(db) == []


async def test_a_refused_update_leaves_the_provider_as_it_was(
    gql: GraphQLClient, db: Database
) -> None:
    await upserted(gql, apiKey=OPENAI_KEY, priority=3)
    before = await stored(db)
    assert (await upsert(gql, priority=3, timeoutSeconds=0))["__typename"] == "ValidationFailed"
    assert await stored(db) == before


async def test_production_without_a_secret_key_refuses_a_stored_key(
    settings: Settings, tmp_path: Path, db: Database
) -> None:
    production = dataclasses.replace(settings, env="production", data_dir=tmp_path, secret_key=None)
    application = create_app(production)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://tollgate.test") as c:
            gql = GraphQLClient(c)
            refused = await upsert(gql, apiKey=OPENAI_KEY)
            assert (refused["__typename"], refused["field"]) == ("ValidationFailed", "apiKey")
            assert "TOLLGATE_SECRET_KEY" in refused["message"]
            assert await stored(db) == []
            # An environment variable needs no encryption key.
            assert (await upsert(gql, apiKeyEnv="OPENAI_API_KEY"))["__typename"] == "Provider"
    assert os.listdir(tmp_path) == []


async def test_routes_by_priority_then_name_with_patterns_and_model_map(
    gql: GraphQLClient, db: Database, box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TG_TEST_OPENAI_KEY", "sk-from-env")
    await upserted(
        gql,
        name="openai",
        models=["gpt-*", "o?-mini"],
        apiKeyEnv="TG_TEST_OPENAI_KEY",
        priority=10,
        timeoutSeconds=30,
    )
    await upserted(
        gql,
        name="openrouter",
        baseUrl="https://openrouter.ai/api/v1",
        models=["gpt-4o*", "claude-*"],
        apiKey=OPENROUTER_KEY,
        modelMap=[
            {"model": "gpt-4o", "upstreamModel": "openai/gpt-4o"},
            {"model": "claude-3-5-sonnet", "upstreamModel": "anthropic/claude-3.5-sonnet"},
        ],
        priority=10,
    )
    await upserted(gql, name="litellm", baseUrl="http://litellm:4000", models=["*"], priority=50)
    await upserted(gql, name="backup", models=["gpt-4o"], priority=1, enabled=False)

    cache = ProviderCache(db, None, box, refresh_seconds=NEVER)
    await cache.start()
    try:
        gpt = cache.routes("gpt-4o")
        assert [(r.provider_name, r.upstream_model) for r in gpt] == [
            ("openai", "gpt-4o"),
            ("openrouter", "openai/gpt-4o"),
            ("litellm", "gpt-4o"),
        ]
        openai, openrouter, litellm = gpt
        assert openai == Route(
            provider_id=openai.provider_id,
            provider_name="openai",
            base_url="https://api.openai.com/v1",
            api_key="sk-from-env",
            upstream_model="gpt-4o",
            timeout_seconds=30.0,
        )
        assert openrouter.api_key == OPENROUTER_KEY
        assert openrouter.base_url == "https://openrouter.ai/api/v1"
        assert litellm.api_key is None and litellm.timeout_seconds == 60.0
        assert OPENROUTER_KEY not in repr(gpt)

        def names(model: str) -> list[str]:
            return [r.provider_name for r in cache.routes(model)]

        assert names("gpt-4o-mini") == ["openai", "openrouter", "litellm"]
        assert names("o1-mini") == ["openai", "litellm"]
        assert names("o1-preview") == ["litellm"]
        assert [r.upstream_model for r in cache.routes("claude-3-5-sonnet")] == [
            "anthropic/claude-3.5-sonnet",
            "claude-3-5-sonnet",
        ]
        # Case matters, as upstreams treat model names.
        assert names("GPT-4O") == ["litellm"]
        # What a model listing can name: exact entries and mapped names, not wildcards.
        assert cache.models() == ["claude-3-5-sonnet", "gpt-4o"]

        # The environment is read at call time, so a rotated variable needs no reload.
        monkeypatch.setenv("TG_TEST_OPENAI_KEY", "sk-rotated")
        assert cache.routes("gpt-4o")[0].api_key == "sk-rotated"
        monkeypatch.delenv("TG_TEST_OPENAI_KEY")
        assert cache.routes("gpt-4o")[0].api_key is None

        # Nothing serves it: no routes, not an error.
        await upserted(gql, name="litellm", baseUrl="http://litellm:4000", models=["x"])
        await cache.reload()
        assert cache.routes("mistral-large") == []
    finally:
        await cache.stop()


async def test_a_provider_whose_key_cannot_be_decrypted_is_left_out(
    gql: GraphQLClient, db: Database
) -> None:
    await upserted(gql, name="openai", apiKey=OPENAI_KEY)
    await upserted(gql, name="local", baseUrl="http://127.0.0.1:8001/v1", models=["gpt-*"])
    cache = ProviderCache(db, None, SecretBox([crypto.generate_key()]), refresh_seconds=NEVER)
    await cache.start()
    try:
        assert [r.provider_name for r in cache.routes("gpt-4o")] == ["local"]
    finally:
        await cache.stop()


@pytest.fixture
async def caches(
    db: Database, settings: Settings, box: SecretBox
) -> AsyncIterator[list[ProviderCache]]:
    """Two processes' worth: each cache with its own bus and Redis connection."""
    buses = [InvalidationBus(Redis.from_url(settings.redis_url or "")) for _ in range(2)]
    made = [ProviderCache(db, bus, box, refresh_seconds=NEVER) for bus in buses]
    for bus, cache in zip(buses, made, strict=True):
        await bus.start()
        await cache.start()
    yield made
    for bus, cache in zip(buses, made, strict=True):
        await cache.stop()
        await bus.stop()
        await bus.redis.aclose()


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def test_caches_reload_through_the_bus(
    gql: GraphQLClient, db: Database, redis: Redis, box: SecretBox, caches: list[ProviderCache]
) -> None:
    first, second = caches

    def served_by(cache: ProviderCache) -> list[str]:
        return [r.provider_name for r in cache.routes("gpt-4o")]

    assert served_by(first) == served_by(second) == []

    # Through the API: committed, then published by the mutation.
    await upserted(gql, name="openai", apiKey=OPENAI_KEY)
    assert await eventually(lambda: served_by(first) == served_by(second) == ["openai"])
    assert second.routes("gpt-4o")[0].api_key == OPENAI_KEY

    # Another writer: committed but not announced, the caches keep what they had.
    async with db.transaction() as session:
        saved = await service.upsert_provider(
            session,
            service.ProviderInput(
                name="openai",
                base_url="https://api.openai.com/v1",
                models=("gpt-*",),
                enabled=False,
            ),
            crypto=box,
            actor="test",
        )
    assert not isinstance(saved, service.ValidationFailed)
    await asyncio.sleep(0.05)
    assert served_by(first) == ["openai"]
    await publish(redis, TOPIC)
    assert await eventually(lambda: served_by(first) == served_by(second) == [])
