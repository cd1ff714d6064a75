"""The OpenAI-compatible gateway end to end: the official openai SDK calls a real Tollgate over
HTTP on loopback, which calls a fake provider over HTTP, on real PostgreSQL and Redis.

Prices, policies and controls are seeded before the Tollgate server starts, so its caches load
them at start-up; what changes later is waited for, as any replica would.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import openai
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from tests.conftest import GraphQLClient
from tests.gateway_upstream import FakeUpstream, ServedApp
from tests.metering_helpers import MODEL, balance, funded_account, price_model
from tollgate.accounts.models import Account
from tollgate.apikeys.service import CreatedApiKey, NewApiKey, create_api_key
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.crypto import SecretBox
from tollgate.db import Database
from tollgate.gateway import Gateway, GatewayDeps, LedgerAccounts
from tollgate.gateway import estimate as estimates
from tollgate.metering.models import UsageEvent

T = TypeVar("T")
UPSTREAM_MODEL = "fake-gpt"
MESSAGES = [{"role": "user", "content": "Say something about foxes."}]


@dataclass(frozen=True)
class Key:
    id: int
    account_id: int
    account_external_id: str
    allowed_models: tuple[str, ...] | None = None
    rpm_limit: int | None = None
    byok_provider: str | None = None
    byok_secret: str | None = None


class Keys:
    def __init__(self) -> None:
        self.by_secret: dict[str, Key] = {}

    async def authenticate(self, secret: str) -> Key | None:
        return self.by_secret.get(secret)


@dataclass(frozen=True)
class UpRoute:
    provider_id: int
    provider_name: str
    base_url: str
    api_key: str
    upstream_model: str = UPSTREAM_MODEL
    timeout_seconds: float = 10.0


@dataclass
class Routes:
    table: dict[str, list[UpRoute]] = field(default_factory=dict)

    def routes(self, model: str) -> list[UpRoute]:
        return list(self.table.get(model, []))

    def models(self) -> list[str]:
        return list(self.table)


def route(upstream: FakeUpstream, name: str, **extra: Any) -> UpRoute:
    return UpRoute(len(name), name, upstream.base_url, extra.pop("api_key", f"sk-{name}"), **extra)


class Harness:
    """Tollgate with the gateway's routes, served over HTTP once the test has seeded it."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.keys, self.router = settings, Keys(), Routes()
        self._served: ServedApp | None = None

    def _app(self) -> Starlette:
        app = create_app(self.settings)
        # Swap the app's own gateway for one on in-test keys and routes, so each test sets up
        # exactly the keys and upstreams it needs.
        app.router.routes[:] = [
            r for r in app.router.routes if not getattr(r, "path", "").startswith("/v1/")
        ]
        gateway = Gateway()
        app.router.routes.extend(gateway.routes)
        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(a: Starlette) -> AsyncIterator[None]:
            async with inner(a):
                state = a.state
                deps = GatewayDeps(state.metering, self.keys, self.router, LedgerAccounts(state.db))
                await gateway.start(deps)
                try:
                    yield
                finally:
                    await gateway.stop()

        app.router.lifespan_context = lifespan
        return app

    def start(self) -> None:
        self._served = ServedApp(self._app(), lifespan="on").__enter__()

    def stop(self) -> None:
        if self._served is not None:
            self._served.__exit__(None, None, None)

    @property
    def base_url(self) -> str:
        assert self._served is not None, "start() first"
        return f"{self._served.url}/v1"

    def client(self, secret: str) -> openai.OpenAI:
        return openai.OpenAI(api_key=secret, base_url=self.base_url, max_retries=0, timeout=30)

    def async_client(self, secret: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=secret, base_url=self.base_url, max_retries=0, timeout=30)

    async def add_key(self, db: Database, account: str, secret: str, **extra: Any) -> Key:
        """A real key row (usage events refer to it), resolved here from `secret`."""
        async with db.transaction() as s:
            account_id = await s.scalar(select(Account.id).where(Account.external_id == account))
            created = await create_api_key(
                s,
                NewApiKey(account_external_id=account, name=secret),
                crypto=SecretBox(),
                now=datetime.now(UTC),
            )
        assert account_id is not None and isinstance(created, CreatedApiKey)
        key = Key(created.id, account_id, account, **extra)
        self.keys.by_secret[secret] = key
        return key


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with FakeUpstream() as primary, FakeUpstream() as backup:
        yield primary, backup


@pytest.fixture
def primary(upstreams: tuple[FakeUpstream, FakeUpstream]) -> FakeUpstream:
    upstreams[0].reset()
    return upstreams[0]


@pytest.fixture
def backup(upstreams: tuple[FakeUpstream, FakeUpstream]) -> FakeUpstream:
    upstreams[1].reset()
    return upstreams[1]


@pytest.fixture
def harness(settings: Settings) -> Iterator[Harness]:
    h = Harness(settings)
    yield h
    h.stop()


async def seed(
    gql: GraphQLClient,
    db: Database,
    harness: Harness,
    upstream: FakeUpstream,
    *,
    account: str = "u1",
    credits: int = 1_000,
    **key: Any,
) -> str:
    """A priced model routed to `upstream`, a funded account and its key's secret."""
    await price_model(gql)
    await funded_account(gql, account, credits)
    secret = f"tg-{account}"
    await harness.add_key(db, account, secret, **key)
    harness.router.table.setdefault(MODEL, [route(upstream, "test")])
    return secret


async def events(db: Database) -> list[UsageEvent]:
    async with db.transaction() as s:
        return list((await s.scalars(select(UsageEvent).order_by(UsageEvent.id))).all())


async def eventually(check: Callable[[], Awaitable[T]]) -> T:
    """The first truthy answer of `check` within 10 s; a stream is settled after its last byte."""
    deadline = time.monotonic() + 10
    while True:
        if answer := await check():
            return answer
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def test_a_call_is_billed_at_the_catalog_price_under_the_policy(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream
) -> None:
    secret = await seed(gql, db, harness, primary)
    await price_model(gql, input="2.5", output="10", cached="1.25")
    policy = await gql.data(
        "mutation($input: SetPricingPolicyInput!) { setPricingPolicy(input: $input) "
        "{ __typename } }",
        input={"kind": "MULTIPLIER", "accountExternalId": "u1", "multiplier": "1.5"},
    )
    assert policy["setPricingPolicy"]["__typename"] == "PricingPolicy"
    primary.reset(prompt_tokens=1_234, cached_tokens=200, completion_tokens=567)
    harness.start()

    with harness.client(secret) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, max_tokens=1_000
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == primary.behaviour.reply
    assert completion.usage is not None and completion.usage.prompt_tokens == 1_234
    # The provider got its own key and model name, and the caller's messages.
    assert primary.last.headers["authorization"] == "Bearer sk-test"
    assert primary.last.body["model"] == UPSTREAM_MODEL
    assert primary.last.body["messages"] == MESSAGES

    [event] = await events(db)
    assert event.event_id == raw.headers["x-tollgate-request-id"]
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens) == (1_034, 200, 567)
    assert (event.model, event.provider, event.feature) == (MODEL, "test", "gateway")
    # Tokens times USD per million tokens is micro-USD: the catalog cost, then the policy's 1.5.
    cost = 1_034 * Decimal("2.5") + 200 * Decimal("1.25") + 567 * Decimal(10)
    charge = math.ceil(cost * Decimal("1.5"))
    assert (event.cost_micros, event.charge_micros) == (cost, charge)
    assert event.credits == math.ceil(Decimal(charge) / 1_000) == 13
    assert await balance(gql, "u1") == {"available": 987, "reserved": 0, "total": 987}
    assert raw.headers["x-tollgate-credits-remaining"] == "987"


async def test_a_stream_is_billed_from_its_usage_chunk_which_only_askers_see(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream
) -> None:
    secret = await seed(gql, db, harness, primary)
    primary.reset(prompt_tokens=30, completion_tokens=12)
    harness.start()

    async with harness.async_client(secret) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, max_tokens=100
        )
        chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == primary.behaviour.reply
        assert all(c.choices and c.usage is None for c in chunks)
        assert primary.last.body["stream_options"] == {"include_usage": True}
        floor = int(stream.response.headers["x-tollgate-credits-remaining"])

        asked = await client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            max_tokens=100,
            stream_options={"include_usage": True},
        )
        last = [chunk async for chunk in asked][-1]
        assert last.choices == [] and last.usage is not None
        assert last.usage.completion_tokens == 12

    billed = await eventually(lambda: _when(events(db), lambda e: len(e) == 2))
    for event in billed:
        assert (event.input_tokens, event.output_tokens) == (30, 12)
        assert event.details["stream"] is True and "usage" not in event.details
    # 30 in + 24 out micro-USD: one credit each. The first header was read under its hold of
    # one credit, so it never promised more than was left.
    assert await balance(gql, "u1") == {"available": 998, "reserved": 0, "total": 998}
    assert floor == 999


async def test_a_stream_the_client_cuts_is_billed_for_what_was_produced(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream
) -> None:
    secret = await seed(gql, db, harness, primary)
    reply = " ".join(f"word{i:02d}" for i in range(80))
    primary.reset(reply=reply, chunk_delay=0.05, completion_tokens=200)
    harness.start()

    async with harness.async_client(secret) as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, max_tokens=1_000
        )
        received = ""
        async for chunk in stream:
            received += chunk.choices[0].delta.content or ""
            if received.count("word") == 5:
                break
        await stream.close()
        request_id = stream.response.headers["x-tollgate-request-id"]

    [event] = await eventually(lambda: events(db))
    assert event.event_id == request_id
    assert event.details["usage"] == "estimated" and event.details["disconnected"] is True
    # What reached the client, at least; far from the whole reply the provider would have sent.
    assert math.ceil(len(received) / 4) <= event.output_tokens < len(reply) // 8
    sized = estimates.chat({"messages": MESSAGES, "max_tokens": 1_000})
    assert event.input_tokens == sized.input_tokens
    # The provider was cut off too, and the rest of the hold went back.
    await eventually(lambda: _now(primary.streams_cut == 1))
    left = 1_000 - event.credits
    assert await balance(gql, "u1") == {"available": left, "reserved": 0, "total": left}


async def test_an_upstream_failure_bills_nothing_and_the_next_route_takes_over(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream, backup: FakeUpstream
) -> None:
    secret = await seed(gql, db, harness, primary)
    primary.reset(status=500)
    harness.start()

    with harness.client(secret) as client:
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100)
        assert failed.value.status_code == 502
        assert await events(db) == []
        assert await balance(gql, "u1") == {"available": 1_000, "reserved": 0, "total": 1_000}

        harness.router.table[MODEL].append(route(backup, "backup", api_key="sk-b"))
        completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100)
        assert completion.choices[0].message.content == backup.behaviour.reply
        assert (primary.count, backup.count) == (2, 1)
        assert backup.last.headers["authorization"] == "Bearer sk-b"

        # Streams fail over too, while nothing has reached the client.
        stream = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=100, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream)
        assert (primary.count, backup.count) == (3, 2)

    billed = await eventually(lambda: _when(events(db), lambda e: len(e) == 2))
    # The catalog prices the model under "test", so the backup's name goes in the details.
    assert [(e.provider, e.details["provider"]) for e in billed] == [(None, "backup")] * 2
    spent = sum(e.credits for e in billed)
    assert await balance(gql, "u1") == {
        "available": 1_000 - spent,
        "reserved": 0,
        "total": 1_000 - spent,
    }


async def test_a_provider_error_is_passed_on_and_a_broken_stream_billed_for_what_came(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream, backup: FakeUpstream
) -> None:
    secret = await seed(gql, db, harness, primary)
    harness.router.table[MODEL].append(route(backup, "backup"))
    harness.start()

    with harness.client(secret) as client:
        # A 400 is about the request: no other provider is tried, and it reaches the caller.
        primary.reset(status=400)
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
        assert bad.value.message.endswith("fake upstream answers 400")
        assert (primary.count, backup.count) == (1, 0)
        # A provider's 429 on the last route reaches the caller with its Retry-After.
        primary.reset(status=429)
        backup.reset(status=429)
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
        assert limited.value.response.headers["retry-after"] == "1"
        assert (primary.count, backup.count) == (1, 1)
        assert await events(db) == []

        primary.reset(break_after=3, chunk_delay=0.01)
        stream = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=100, stream=True
        )
        received = ""
        with pytest.raises(openai.APIError) as broke:
            for chunk in stream:
                received += chunk.choices[0].delta.content or "" if chunk.choices else ""
    # The relay ends the stream with an error event, which the SDK raises as an APIError.
    assert received == "The quick brown" and "upstream stream broke" in broke.value.message

    [event] = await eventually(lambda: events(db))
    assert event.details["usage"] == "estimated" and "upstream_error" in event.details
    assert event.output_tokens == math.ceil(len(received) / 4)
    assert await balance(gql, "u1") == {
        "available": 1_000 - event.credits,
        "reserved": 0,
        "total": 1_000 - event.credits,
    }


async def test_a_provider_too_slow_is_a_504_and_a_missing_usage_is_estimated(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream
) -> None:
    secret = await seed(gql, db, harness, primary)
    harness.router.table[MODEL] = [route(primary, "test", timeout_seconds=0.3)]
    primary.reset(first_byte_delay=1.5)
    harness.start()

    with harness.client(secret) as client:
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100)
        assert failed.value.status_code == 504
        assert await balance(gql, "u1") == {"available": 1_000, "reserved": 0, "total": 1_000}

        primary.reset(usage=False)
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100)

    [event] = await events(db)
    sized = estimates.chat({"messages": MESSAGES, "max_tokens": 100})
    expected_output = math.ceil(len(primary.behaviour.reply) / 4)
    assert (event.input_tokens, event.output_tokens) == (sized.input_tokens, expected_output)
    assert event.details["usage"] == "estimated"


async def test_embeddings_are_billed_and_models_are_those_the_key_may_use(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream
) -> None:
    secret = await seed(gql, db, harness, primary, allowed_models=(MODEL, "embed-*"))
    await price_model(gql, "embed-small", input="0.02", output="0")
    harness.router.table["embed-small"] = [route(primary, "test", upstream_model="fake-embed")]
    harness.router.table["other-model"] = [route(primary, "test")]
    primary.reset(embedding_tokens=4_000)
    harness.start()

    with harness.client(secret) as client:
        assert sorted(m.id for m in client.models.list()) == ["embed-small", MODEL]
        assert client.models.retrieve("embed-small").id == "embed-small"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("other-model")
        embedded = client.embeddings.create(model="embed-small", input=["one", "two"])
    assert len(embedded.data) == 2 and primary.last.body["model"] == "fake-embed"

    [event] = await events(db)
    assert (event.model, event.input_tokens, event.output_tokens) == ("embed-small", 4_000, 0)
    assert event.cost_micros == 80  # 4,000 tokens at $0.02 per million


async def test_a_byok_key_calls_its_own_provider_with_its_own_secret(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream, backup: FakeUpstream
) -> None:
    secret = await seed(gql, db, harness, primary, byok_provider="mine", byok_secret="sk-users-own")
    harness.router.table[MODEL].append(route(backup, "mine"))
    harness.start()

    with harness.client(secret) as client:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100)
    assert (primary.count, backup.count) == (0, 1)
    assert backup.last.headers["authorization"] == "Bearer sk-users-own"
    [event] = await events(db)
    assert event.byok is True


async def test_keys_models_and_credits_refusals_reach_the_sdk_as_its_own_errors(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream
) -> None:
    secret = await seed(gql, db, harness, primary)
    limited = await seed(gql, db, harness, primary, account="u2", allowed_models=("other-*",))
    poor = await seed(gql, db, harness, primary, account="u3", credits=0)
    harness.start()

    for bad in ("tg-unknown", "sk-not-a-gateway-key"):
        with harness.client(bad) as client, pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with harness.client(limited) as client, pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert e.value.code == "model_not_allowed"
    with harness.client(secret) as client, pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert e.value.code == "model_not_found"
    with harness.client(poor) as client, pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert e.value.status_code == 402 and e.value.code == "insufficient_credits"
    assert isinstance(e.value.body, dict) and e.value.body["type"] == "insufficient_quota"
    assert primary.count == 0 and await events(db) == []


async def test_plan_limits_are_403_and_429_with_retry_after(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream
) -> None:
    limits = (
        "mutation($input: SetAccountLimitsInput!) { setAccountLimits(input: $input) "
        "{ __typename } }"
    )
    fast = await seed(gql, db, harness, primary, account="fast")
    daily = await seed(gql, db, harness, primary, account="daily")
    narrow = await seed(gql, db, harness, primary, account="narrow")
    for account, values in (
        ("fast", {"requestsPerMinute": 1}),
        ("daily", {"callsPerDay": 2}),
        ("narrow", {"allowedModels": ["other-*"]}),
    ):
        done = await gql.data(limits, input={"accountExternalId": account, **values})
        assert done["setAccountLimits"]["__typename"] == "AccountLimits"
    harness.start()

    with harness.client(fast) as client:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
        with pytest.raises(openai.RateLimitError) as e:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
    assert e.value.code == "rate_limit_exceeded"
    assert 1 <= int(e.value.response.headers["retry-after"]) <= 60

    with harness.client(daily) as client:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
        with pytest.raises(openai.RateLimitError) as e:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
    assert e.value.code == "limit_exceeded"
    # The day's window (UTC for this account) starts over at midnight.
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    assert abs(int(e.value.response.headers["retry-after"]) - (midnight - now).total_seconds()) < 5

    with harness.client(narrow) as client, pytest.raises(openai.PermissionDeniedError) as e:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
    assert e.value.code == "model_not_allowed"
    assert primary.count == 2


async def test_suspension_and_the_emergency_stop_are_503(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream
) -> None:
    suspended = await seed(gql, db, harness, primary, account="held")
    secret = await seed(gql, db, harness, primary)
    done = await gql.data(
        'mutation { setAccountOverride(accountExternalId: "held", suspended: true) { __typename } }'
    )
    assert done["setAccountOverride"]["__typename"] == "AccountControls"
    harness.start()

    with harness.client(suspended) as client, pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
    assert (e.value.status_code, e.value.code) == (503, "account_suspended")

    await gql.data(
        'mutation { setEmergencyStop(scope: GLOBAL, on: true, reason: "drill") { __typename } }'
    )

    async def stopped() -> str | None:
        async with harness.async_client(secret) as client:
            try:
                await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=10)
            except openai.InternalServerError as exc:
                return f"{exc.status_code} {exc.code}"
        return None

    assert await eventually(stopped) == "503 emergency_stop"


async def test_100_concurrent_streams_with_credits_for_50_never_oversell(
    gql: GraphQLClient, db: Database, harness: Harness, primary: FakeUpstream
) -> None:
    # Each call holds 3 credits (8 tokens in, 1,000 out at most) and really uses 1.
    secret = await seed(gql, db, harness, primary, credits=150)
    messages = [{"role": "user", "content": "hi"}]
    assert estimates.chat({"messages": messages}).input_tokens == 8
    primary.reset(reply="a b c d e f g h", chunk_delay=0.05, prompt_tokens=20, completion_tokens=8)
    harness.start()

    async def one(client: openai.AsyncOpenAI) -> int:
        try:
            stream = await client.chat.completions.create(
                model=MODEL, messages=messages, max_tokens=1_000, stream=True
            )
            async for _ in stream:
                pass
        except openai.APIStatusError as exc:
            return exc.status_code
        return 200

    async with harness.async_client(secret) as client:
        statuses = await asyncio.gather(*(one(client) for _ in range(100)))
    served = statuses.count(200)
    # Streams last about half a second, so the later calls meet the first ones' holds.
    assert set(statuses) == {200, 402} and served >= 50

    billed = await eventually(lambda: _when(events(db), lambda e: len(e) == served))
    spent = sum(e.credits for e in billed)
    assert spent <= 150 and not any("UNCOLLECTED" in e.flags for e in billed)
    assert await balance(gql, "u1") == {
        "available": 150 - spent,
        "reserved": 0,
        "total": 150 - spent,
    }


async def _when(value: Awaitable[T], ok: Callable[[T], bool]) -> T | None:
    result = await value
    return result if ok(result) else None


async def _now(value: bool) -> bool:
    return value
