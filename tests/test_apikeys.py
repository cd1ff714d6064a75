"""Virtual keys for end users: created through GraphQL and shown once, stored hashed, with an
optional BYOK provider key stored encrypted; authenticated by the gateway's look-up and cache."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from tests.conftest import GraphQLClient
from tests.helpers import create_account, grant
from tests.metering_helpers import MODEL, price_model
from tollgate import crypto
from tollgate.apikeys import service
from tollgate.apikeys.cache import VirtualKeyCache
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.crypto import DecryptionFailed, SecretBox
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus
from tollgate.metering.requests import UsageEventInput
from tollgate.metering.results import Recorded

SECRET_KEY = crypto.generate_key()
BYOK = "sk-user-own-" + "Zq9" * 14

CREATE = """
mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    __typename
    ... on CreatedApiKey {
      secret
      key { id accountExternalId name prefix expiresAt revokedAt allowedModels rpmLimit
            hasByokKey byokProvider spendCredits }
    }
    ... on ValidationFailed { field message }
    ... on AccountNotFound { externalId message }
  }
}"""
REVOKE = """
mutation($id: ID!) {
  revokeApiKey(id: $id) {
    __typename
    ... on ApiKey { id revokedAt }
    ... on NotFound { missing: id message }
  }
}"""
LIST = """
query($account: String!) {
  apiKeys(accountExternalId: $account) {
    id accountExternalId name prefix createdAt expiresAt revokedAt lastUsedAt allowedModels
    rpmLimit hasByokKey byokProvider spendCredits
  }
}"""
AUDIT = "{ auditLog(first: 20) { nodes { actor operation input result } } }"


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[GraphQLClient]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://tollgate.test") as c:
            yield GraphQLClient(c)


@pytest.fixture
def app_settings(settings: Settings, tmp_path: Path) -> Settings:
    return dataclasses.replace(settings, secret_key=SECRET_KEY, data_dir=tmp_path)


@pytest.fixture
async def app(app_settings: Settings) -> AsyncIterator[Any]:
    """The suite's app, with a secret key of its own so BYOK keys can be stored."""
    application = create_app(app_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([SECRET_KEY])


async def create(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    data = await gql.data(CREATE, input={"accountExternalId": "user-1", "name": "laptop", **fields})
    result: dict[str, Any] = data["createApiKey"]
    return result


async def created(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    result = await create(gql, **fields)
    assert result["__typename"] == "CreatedApiKey", result
    return result


async def rows(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        found = await session.execute(text("SELECT to_jsonb(k) FROM api_keys k ORDER BY id"))
        return [r[0] for r in found]


async def test_the_secret_is_shown_once_and_only_its_hash_is_stored(
    gql: GraphQLClient, db: Database
) -> None:
    await create_account(gql, "user-1")
    result = await created(gql, allowedModels=["gpt-4o*", "o?-mini", "gpt-4o*"], rpmLimit=60)
    secret, key = result["secret"], result["key"]
    assert secret.startswith("tg-") and len(secret) >= 40
    assert secret.startswith(key["prefix"]) and key["prefix"] != secret
    assert key == {
        "id": key["id"],
        "accountExternalId": "user-1",
        "name": "laptop",
        "prefix": key["prefix"],
        "expiresAt": None,
        "revokedAt": None,
        "allowedModels": ["gpt-4o*", "o?-mini"],
        "rpmLimit": 60,
        "hasByokKey": False,
        "byokProvider": None,
        "spendCredits": 0,
    }

    (row,) = await rows(db)
    assert row["key_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    random_part = secret[len("tg-") :]
    listed = await gql.data(LIST, account="user-1")
    audit = await gql.data(AUDIT)
    for where, blob in (
        ("api_keys table", json.dumps(row)),
        ("apiKeys", json.dumps(listed)),
        ("auditLog", json.dumps(audit)),
    ):
        assert random_part not in blob, where

    # Two keys never share a secret.
    again = await created(gql)
    assert again["secret"] != secret


async def test_authenticate_ok_revoked_expired_unknown(
    gql: GraphQLClient, db: Database, box: SecretBox
) -> None:
    await create_account(gql, "user-1")
    now = datetime.now(UTC)
    live = await created(gql, allowedModels=["gpt-4o*"], rpmLimit=30)
    expiring = await created(gql, expiresAt=(now + timedelta(hours=1)).isoformat())
    doomed = await created(gql)

    async def authenticate(secret: str, at: datetime = now) -> service.VirtualKey | None:
        async with db.transaction() as session:
            return await service.authenticate_virtual_key(session, secret, at, crypto=box)

    key = await authenticate(live["secret"])
    assert key is not None
    assert key.id == int(live["key"]["id"]) and key.account_external_id == "user-1"
    assert key.allowed_models == ("gpt-4o*",) and key.rpm_limit == 30
    assert key.byok_provider is None and key.byok_secret is None
    assert key.allows("gpt-4o-mini") and not key.allows("claude-3-opus")

    assert await authenticate(expiring["secret"]) is not None
    assert await authenticate(expiring["secret"], now + timedelta(hours=1)) is None
    assert await authenticate(expiring["secret"], now + timedelta(hours=2)) is None

    revoked = await gql.data(REVOKE, id=doomed["key"]["id"])
    assert revoked["revokeApiKey"]["revokedAt"] is not None
    assert await authenticate(doomed["secret"]) is None

    for unknown in (
        "tg-" + "x" * 43,
        live["secret"] + "x",
        live["secret"][:-1],
        live["secret"].upper(),
        hashlib.sha256(live["secret"].encode()).hexdigest(),
        "",
        "tg-" + "y" * 10_000,
    ):
        assert await authenticate(unknown) is None


async def test_last_used_is_touched_at_most_once_a_minute(
    gql: GraphQLClient, db: Database, box: SecretBox
) -> None:
    await create_account(gql, "user-1")
    secret = (await created(gql))["secret"]
    start = datetime.now(UTC)

    async def last_used_after(at: datetime) -> str | None:
        async with db.transaction() as session:
            assert await service.authenticate_virtual_key(session, secret, at, crypto=box)
        (listed,) = (await gql.data(LIST, account="user-1"))["apiKeys"]
        value: str | None = listed["lastUsedAt"]
        return value

    first = await last_used_after(start)
    assert first is not None
    assert await last_used_after(start + timedelta(seconds=30)) == first
    assert await last_used_after(start + timedelta(seconds=61)) != first


async def test_byok_key_is_stored_encrypted_and_decrypted_by_authenticate(
    gql: GraphQLClient, db: Database, box: SecretBox
) -> None:
    await create_account(gql, "user-1")
    result = await created(gql, byokProvider="openai", byokProviderKey=f"  {BYOK}\n")
    assert result["key"]["hasByokKey"] is True
    assert result["key"]["byokProvider"] == "openai"

    (row,) = await rows(db)
    assert BYOK not in json.dumps(row)
    assert box.decrypt(row["byok_secret"]) == BYOK
    audit = json.dumps(await gql.data(AUDIT))
    assert BYOK not in audit and '"byokProviderKey": "***"' in audit

    async with db.transaction() as session:
        key = await service.authenticate_virtual_key(
            session, result["secret"], datetime.now(UTC), crypto=box
        )
    assert key is not None
    assert (key.byok_provider, key.byok_secret) == ("openai", BYOK)
    assert BYOK not in repr(key)

    # Without the key that encrypted it, authenticating must fail loudly: answering without
    # the BYOK secret would bill the call to the operator's own provider key.
    async with db.transaction() as session:
        with pytest.raises(DecryptionFailed):
            await service.authenticate_virtual_key(
                session, result["secret"], datetime.now(UTC), crypto=SecretBox()
            )


async def _record_with_key(app: Any, events: list[dict[str, Any]], key_id: int) -> None:
    """Book usage as the gateway does, attributed to a virtual key."""
    results = await app.state.metering.record(
        [
            UsageEventInput(
                event_id=e["eventId"],
                account_external_id=e["accountExternalId"],
                model=e["model"],
                input_tokens=e["inputTokens"],
                api_key_id=key_id,
            )
            for e in events
        ]
    )
    assert all(isinstance(r, Recorded) for r in results), results


async def test_listing_shows_every_key_of_the_account_with_its_spend(
    gql: GraphQLClient, app: Any
) -> None:
    await create_account(gql, "user-1")
    await create_account(gql, "user-2")
    first = await created(gql, name="first")
    second = await created(gql, name="second", byokProvider="openrouter", byokProviderKey=BYOK)
    await created(gql, accountExternalId="user-2", name="someone else's")
    await gql.data(REVOKE, id=first["key"]["id"])

    # Spend is kept by metering with each booked call made through the key.
    await price_model(gql)
    await grant(gql, "user-1", 1_000)
    key_id = int(second["key"]["id"])
    events = [
        {"eventId": f"k{n}", "accountExternalId": "user-1", "model": MODEL, "inputTokens": tokens}
        for n, tokens in enumerate((120_000, 30_000))
    ]
    await _record_with_key(app, events, key_id)

    listed = (await gql.data(LIST, account="user-1"))["apiKeys"]
    assert [(k["name"], k["revokedAt"] is not None, k["hasByokKey"]) for k in listed] == [
        ("first", True, False),
        ("second", False, True),
    ]
    assert [k["spendCredits"] for k in listed] == [0, 150]
    # A replayed event adds nothing.
    await _record_with_key(app, events, key_id)
    again = (await gql.data(LIST, account="user-1"))["apiKeys"]
    assert [k["spendCredits"] for k in again] == [0, 150]
    assert listed[1]["byokProvider"] == "openrouter"
    assert (await gql.data(LIST, account="nobody"))["apiKeys"] is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"name": "  "}, "name", id="blank-name"),
        pytest.param({"name": "x" * 201}, "name", id="long-name"),
        pytest.param({"allowedModels": []}, "allowedModels", id="no-models"),
        pytest.param({"allowedModels": [" gpt-4o"]}, "allowedModels", id="padded-pattern"),
        pytest.param({"allowedModels": [""]}, "allowedModels", id="empty-pattern"),
        pytest.param({"allowedModels": ["gpt\n4o"]}, "allowedModels", id="control-character"),
        pytest.param({"allowedModels": ["m"] * 201}, "allowedModels", id="too-many-patterns"),
        pytest.param({"expiresAt": "2020-01-01T00:00:00Z"}, "expiresAt", id="expired"),
        pytest.param({"expiresAt": "2999-01-01T00:00:00"}, "expiresAt", id="no-timezone"),
        pytest.param({"rpmLimit": 0}, "rpmLimit", id="rpm-zero"),
        pytest.param({"rpmLimit": 100_001}, "rpmLimit", id="rpm-high"),
        pytest.param({"byokProviderKey": BYOK}, "byokProvider", id="byok-key-only"),
        pytest.param({"byokProvider": "openai"}, "byokProvider", id="byok-provider-only"),
        pytest.param(
            {"byokProvider": "Open AI", "byokProviderKey": BYOK}, "byokProvider", id="bad-provider"
        ),
        pytest.param(
            {"byokProvider": "openai", "byokProviderKey": "sk-a b"},
            "byokProviderKey",
            id="key-with-space",
        ),
        pytest.param(
            {"byokProvider": "openai", "byokProviderKey": "sk-a\r\nX-Evil: 1"},
            "byokProviderKey",
            id="header-injection",
        ),
    ],
)
async def test_bad_input_is_a_typed_refusal_that_writes_nothing(
    gql: GraphQLClient, db: Database, fields: dict[str, Any], field: str
) -> None:
    await create_account(gql, "user-1")
    result = await create(gql, **fields)
    assert result["__typename"] == "ValidationFailed", result
    assert result["field"] == field
    assert await rows(db) == []
    (entry, *_) = (await gql.data(AUDIT))["auditLog"]["nodes"]
    assert entry["operation"] == "createApiKey"
    assert entry["result"]["type"] == "ValidationFailed"


async def test_unknown_account_and_unknown_key(gql: GraphQLClient, db: Database) -> None:
    result = await create(gql, accountExternalId="ghost")
    assert result == {
        "__typename": "AccountNotFound",
        "externalId": "ghost",
        "message": "no account with this external id",
    }
    for key_id in ("424242", "not-a-number", "-1"):
        revoked = (await gql.data(REVOKE, id=key_id))["revokeApiKey"]
        assert revoked["__typename"] == "NotFound", revoked
    assert await rows(db) == []


async def test_create_and_revoke_are_audited(gql: GraphQLClient) -> None:
    await create_account(gql, "user-1")
    made = await created(gql, byokProvider="openai", byokProviderKey=BYOK, rpmLimit=10)
    key_id = made["key"]["id"]
    first = (await gql.data(REVOKE, id=key_id))["revokeApiKey"]
    again = (await gql.data(REVOKE, id=key_id))["revokeApiKey"]
    assert again["revokedAt"] == first["revokedAt"]

    nodes = (await gql.data(AUDIT))["auditLog"]["nodes"]
    revoke_again, revoke, create_entry = nodes[:3]
    assert create_entry["operation"] == "createApiKey"
    assert create_entry["actor"].endswith(":bootstrap")
    assert create_entry["input"]["accountExternalId"] == "user-1"
    assert create_entry["input"]["rpmLimit"] == 10
    assert create_entry["input"]["byokProviderKey"] == "***"
    assert create_entry["result"] == {"type": "CreatedApiKey", "id": key_id}
    for entry in (revoke, revoke_again):
        assert entry["operation"] == "revokeApiKey"
        assert entry["input"] == {"id": key_id}
        assert entry["result"] == {"type": "ApiKey", "id": key_id}
    assert made["secret"] not in json.dumps(nodes)


async def test_production_without_a_secret_key_refuses_byok_only(
    settings: Settings, tmp_path: Path
) -> None:
    production = dataclasses.replace(settings, env="production", data_dir=tmp_path, secret_key=None)
    assert production.secret_key is None
    async with serving(production) as gql:
        await create_account(gql, "user-1")
        refused = await create(gql, byokProvider="openai", byokProviderKey=BYOK)
        assert refused["__typename"] == "ValidationFailed"
        assert refused["field"] == "byokProviderKey"
        assert "TOLLGATE_SECRET_KEY" in refused["message"]
        listed = await gql.data(LIST, account="user-1")
        assert listed["apiKeys"] == []
        # Keys without a secret to store need no encryption key.
        await created(gql)
    assert os.listdir(tmp_path) == []


async def test_dev_without_a_secret_key_keeps_one_in_the_data_dir(
    settings: Settings, tmp_path: Path, db: Database
) -> None:
    dev = dataclasses.replace(settings, env="dev", data_dir=tmp_path, secret_key=None)
    async with serving(dev) as gql:
        await create_account(gql, "user-1")
        result = await created(gql, byokProvider="openai", byokProviderKey=BYOK)
    assert (tmp_path / crypto.KEY_FILE).exists()
    # A restarted process reads the same file and decrypts what was stored.
    restarted = crypto.load(dev)
    async with db.transaction() as session:
        key = await service.authenticate_virtual_key(
            session, result["secret"], datetime.now(UTC), crypto=restarted
        )
    assert key is not None and key.byok_secret == BYOK


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[InvalidationBus]:
    """Another process's bus: its own Redis connection."""
    messages = InvalidationBus(Redis.from_url(settings.redis_url or ""))
    await messages.start()
    yield messages
    await messages.stop()
    await messages.redis.aclose()


async def test_the_cache_forgets_a_revoked_key_through_the_bus(
    gql: GraphQLClient, db: Database, bus: InvalidationBus, box: SecretBox
) -> None:
    await create_account(gql, "user-1")
    made = await created(gql, byokProvider="openai", byokProviderKey=BYOK)
    # A TTL far beyond the test: only the message can explain forgetting.
    cache = VirtualKeyCache(db, bus, box, ttl=3600)
    key = await cache.authenticate(made["secret"])
    assert key is not None and key.byok_secret == BYOK
    assert await cache.authenticate(made["secret"]) is key

    await gql.data(REVOKE, id=made["key"]["id"])
    deadline = asyncio.get_running_loop().time() + 2
    while await cache.authenticate(made["secret"]) is not None:
        assert asyncio.get_running_loop().time() < deadline, "the cache kept a revoked key"
        await asyncio.sleep(0.01)


async def test_the_cache_drops_a_key_the_moment_it_expires(
    gql: GraphQLClient, db: Database, box: SecretBox
) -> None:
    await create_account(gql, "user-1")
    made = await created(gql)
    # Set in the table, so a slow create cannot eat into the time left.
    expires = datetime.now(UTC) + timedelta(milliseconds=400)
    async with db.transaction() as session:
        await session.execute(
            text("UPDATE api_keys SET expires_at = :at WHERE id = :id"),
            {"at": expires, "id": int(made["key"]["id"])},
        )
    # A TTL far beyond the test: only the expiry can explain forgetting.
    cache = VirtualKeyCache(db, None, box, ttl=3600)
    cached = await cache.authenticate(made["secret"])
    assert cached is not None and cached.expires_at == expires
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    assert await cache.authenticate(made["secret"]) is None


async def test_the_cache_never_remembers_failures_and_stays_bounded(
    gql: GraphQLClient, db: Database, box: SecretBox
) -> None:
    await create_account(gql, "user-1")
    cache = VirtualKeyCache(db, None, box, ttl=3600, max_entries=2)
    assert await cache.authenticate("tg-not-yet") is None
    secrets_ = [(await created(gql, name=f"k{n}"))["secret"] for n in range(3)]
    for secret in secrets_:
        assert await cache.authenticate(secret) is not None
    assert len(cache._known) <= 2
