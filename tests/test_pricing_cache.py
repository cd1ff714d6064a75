"""The in-memory pricing cache: loads from PostgreSQL, follows other writers through the
"pricing" topic on Redis, and resolves an account's policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from redis.asyncio import Redis

from tests.conftest import GraphQLClient
from tests.helpers import create_account
from tests.test_pricing_catalog import GPT_4O, truncate_pricing
from tollgate.accounts.service import get_account
from tollgate.config import Settings
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus, publish
from tollgate.pricing import policies
from tollgate.pricing.cache import TOPIC, PricingCache
from tollgate.pricing.catalog import upsert_model_price
from tollgate.pricing.charge import Policy
from tollgate.pricing.policy_input import PolicyInput

# No periodic refresh during a test: only a message can explain a reload.
NEVER = 3600.0
WITHIN = 1.0
NOW = datetime(2025, 7, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def clean_pricing(db: Database) -> AsyncIterator[None]:
    await truncate_pricing(db)
    yield
    await truncate_pricing(db)


@pytest.fixture
async def caches(db: Database, settings: Settings) -> AsyncIterator[list[PricingCache]]:
    """Two processes' worth: each cache with its own bus and Redis connection."""
    buses = [InvalidationBus(Redis.from_url(settings.redis_url or "")) for _ in range(2)]
    made = [PricingCache(db, bus, refresh_seconds=NEVER) for bus in buses]
    for bus, cache in zip(buses, made, strict=True):
        await bus.start()
        await cache.start()
    yield made
    for bus, cache in zip(buses, made, strict=True):
        await cache.stop()
        await bus.stop()
        await bus.redis.aclose()


async def eventually(condition: Callable[[], bool], within: float = WITHIN) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def test_a_cache_sees_another_writers_change(
    db: Database, redis: Redis, caches: list[PricingCache]
) -> None:
    writer, reader = caches
    assert reader.price_at("gpt-4o", NOW) is None
    async with db.transaction() as s:
        await upsert_model_price(s, GPT_4O)
    await asyncio.sleep(0.05)
    # Committed but not announced: the caches keep what they had.
    assert reader.price_at("gpt-4o", NOW) is None
    await publish(redis, TOPIC)
    assert await eventually(lambda: reader.price_at("gpt-4o-2024-08-06", NOW) is not None)
    assert await eventually(lambda: writer.price_at("gpt-4o", NOW) is not None)
    price = reader.price_at("GPT-4O", NOW, provider="openai")
    assert price is not None and price.input_per_million == D("2.5")
    assert reader.price_at("gpt-4o", NOW, provider="anthropic") is None
    assert reader.price_at("gpt-4o", datetime(2024, 12, 31, tzinfo=UTC)) is None


async def test_graphql_mutations_announce_their_changes(
    gql: GraphQLClient, db: Database, caches: list[PricingCache]
) -> None:
    _, reader = caches
    await create_account(gql, "u1")
    async with db.transaction() as s:
        account = await get_account(s, "u1")
    assert account is not None
    set_policy = """mutation($input: SetPricingPolicyInput!) {
        setPricingPolicy(input: $input) { __typename } }"""
    await gql.data(set_policy, input={"kind": "MULTIPLIER", "multiplier": "2"})
    assert await eventually(lambda: reader.policy_for(account.id).kind == "MULTIPLIER")
    await gql.data(
        set_policy,
        input={"accountExternalId": "u1", "kind": "FIXED_PER_CALL", "fixedPerCallUsd": "0.01"},
    )
    assert await eventually(lambda: reader.policy_for(account.id).kind == "FIXED_PER_CALL")
    assert reader.policy_for(account.id).fixed_per_call_usd == D("0.01")
    assert reader.policy_for(None) == Policy(kind="MULTIPLIER", multiplier=D(2))
    assert reader.policy_for(account.id + 1).kind == "MULTIPLIER"

    clear = "mutation { clearPricingPolicy(accountExternalId: null) { __typename } }"
    await gql.data(clear)
    assert await eventually(lambda: reader.policy_for(None) == Policy())
    assert reader.policy_for(account.id).kind == "FIXED_PER_CALL"

    upsert = """mutation($input: UpsertModelPriceInput!) {
        upsertModelPrice(input: $input) { __typename } }"""
    await gql.data(
        upsert,
        input={"provider": "x", "model": "m", "inputPerMillion": "1", "outputPerMillion": "2"},
    )
    assert await eventually(lambda: reader.price_at("m", datetime.now(UTC)) is not None)


async def test_refusals_are_not_announced(gql: GraphQLClient, settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url or "")
    pubsub = redis.pubsub()
    await pubsub.subscribe("tollgate:invalidate")
    try:
        await gql.data("mutation { setPricingPolicy(input: {kind: MULTIPLIER}) { __typename } }")
        await gql.data('mutation { clearPricingPolicy(accountExternalId: "ghost") { __typename } }')
        messages = []
        while (message := await pubsub.get_message(timeout=0.2)) is not None:
            if message["type"] == "message":
                messages.append(message["data"])
        assert b"pricing" not in messages
    finally:
        await pubsub.aclose()
        await redis.aclose()


async def test_periodic_refresh_without_messages(db: Database) -> None:
    cache = PricingCache(db, None, refresh_seconds=0.05)
    await cache.start()
    try:
        async with db.transaction() as s:
            await policies.set_policy(s, PolicyInput(None, "MULTIPLIER", multiplier=D("1.5")))
        assert await eventually(lambda: cache.policy_for(7).multiplier == D("1.5"), within=5)
    finally:
        await cache.stop()
    async with db.transaction() as s:
        await policies.clear_policy(s, None)
    await asyncio.sleep(0.2)
    # Stopped: it no longer follows.
    assert cache.policy_for(7).multiplier == D("1.5")


async def test_built_in_policy_before_anything_is_set(db: Database) -> None:
    cache = PricingCache(db, None)
    assert cache.policy_for(1) == Policy()
    await cache.start()
    await cache.stop()
    assert cache.policy_for(None) == Policy(kind="PASSTHROUGH", platform_fee_usd=D(0))
