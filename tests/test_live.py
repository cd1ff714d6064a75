"""Live updates over real websockets: two `tollgate serve --no-worker` processes share the test
database and Redis, bookings go to replica A over HTTP, and subscribers listen on replica B
with the gql client (graphql-transport-ws). Protocol misuse is spoken with a bare websocket.

A subscription is registered on the server a moment after it is sent; `Feed.ready` pokes
(books something the subscriber would see) until the first event arrives, so no test depends
on timing. Probe events are told apart by their ids or accounts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from graphql import GraphQLError
from redis.asyncio import Redis
from strawberry.types import ExecutionResult
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import OWNER_KEY, GraphQLClient, new_key
from tests.helpers import REFUND, create_account, deduct, grant
from tests.metering_helpers import RECORD, authorize, price_model
from tests.plan_helpers import NEW_DRAFT, create_plan, published_plan
from tests.plan_helpers import publish as plan_publish
from tests.plan_helpers import subscribe as plan_subscribe
from tollgate.api.context import Context
from tollgate.api.schema import build_schema
from tollgate.auth import service as auth
from tollgate.config import Settings
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus
from tollgate.ledger.expiry import expire_due_grants
from tollgate.live import graphql as live_graphql
from tollgate.live.channels import USAGE_CHANNEL
from tollgate.live.hub import LiveHub
from tollgate.live.publish import publish_pricing_published

TOLLGATE = Path(sys.executable).parent / "tollgate"
INIT_TIMEOUT = 1.0
MAX_SUBSCRIPTIONS = 3
WAIT = 10.0


class Replica:
    """One `tollgate serve --no-worker` on the suite's database and Redis."""

    def __init__(self, settings: Settings, folder: Path, name: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/graphql"
        self.log = folder / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
        env |= {
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "TOLLGATE_DATA_DIR": str(folder / name),
            "TOLLGATE_BOOTSTRAP_ADMIN_KEY": OWNER_KEY,
            "TOLLGATE_SECRET_KEY": settings.secret_key or "",
            "TOLLGATE_WS_INIT_TIMEOUT_SECONDS": str(INIT_TIMEOUT),
            "TOLLGATE_WS_MAX_SUBSCRIPTIONS": str(MAX_SUBSCRIPTIONS),
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(TOLLGATE), "serve", "--no-worker", "--port", str(self.port)],
                env=env,
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited:\n{self.output()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"not healthy:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def replicas(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Replica, Replica]]:
    folder = tmp_path_factory.mktemp("replicas")
    pair = (Replica(settings, folder, "a"), Replica(settings, folder, "b"))
    try:
        for replica in pair:
            replica.wait_healthy()
        yield pair
    finally:
        for replica in pair:
            replica.stop()


@pytest.fixture
async def owner_key(clean: None, db: Database) -> str:
    # The tables were just emptied under the running replicas: put their bootstrap key back.
    async with db.transaction() as session:
        await auth.ensure_bootstrap_key(session, OWNER_KEY)
    return OWNER_KEY


@pytest.fixture
async def a(replicas: tuple[Replica, Replica], owner_key: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=replicas[0].url, timeout=20) as http:
        yield GraphQLClient(http, owner_key)


@pytest.fixture
def b(replicas: tuple[Replica, Replica], owner_key: str) -> Replica:
    return replicas[1]


@contextlib.asynccontextmanager
async def subscriber(replica: Replica, key: str = OWNER_KEY) -> AsyncIterator[AsyncClientSession]:
    transport = WebsocketsTransport(
        url=replica.ws_url,
        init_payload={"authorization": f"Bearer {key}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        yield session


class Feed:
    """A subscription read in the background, so a test can wait for it with a timeout."""

    def __init__(self, session: AsyncClientSession, document: str, **variables: Any) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | Exception] = asyncio.Queue()
        request = GraphQLRequest(document, variable_values=variables)
        self.task = asyncio.create_task(self._pump(session, request))

    async def _pump(self, session: AsyncClientSession, request: GraphQLRequest) -> None:
        try:
            async for result in session.subscribe(request):
                await self.queue.put(result)
        except Exception as error:
            await self.queue.put(error)

    async def next(self, within: float = WAIT) -> dict[str, Any]:
        item = await asyncio.wait_for(self.queue.get(), within)
        if isinstance(item, Exception):
            raise item
        return item

    async def ready(self, poke: Callable[[], Awaitable[object]]) -> dict[str, Any]:
        """Poke until the subscriber sees something: then it is registered on the server."""
        for _ in range(40):
            await poke()
            with contextlib.suppress(TimeoutError):
                return await self.next(within=0.5)
        raise AssertionError("the subscription never received anything")

    async def until(self, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + WAIT
        while not done(seen):
            seen.append(await self.next(within=max(0.1, deadline - time.monotonic())))
        return seen

    async def quiet(
        self, seconds: float = 0.5, ignore: Callable[[dict[str, Any]], bool] = lambda _: False
    ) -> None:
        """Nothing more arrives within `seconds`, but what `ignore` accepts (late probes)."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while True:
                item = await self.next(within=max(0.0, deadline - time.monotonic()))
                if not ignore(item):
                    raise AssertionError(f"unexpected event: {item}")

    def close(self) -> None:
        self.task.cancel()


async def record(gql: GraphQLClient, *events: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = (await gql.data(RECORD, events=list(events)))["recordUsage"]
    return results


def event(account: str, model: str, **extra: Any) -> dict[str, Any]:
    return {"eventId": new_key(), "accountExternalId": account, "model": model, **extra}


USAGE = """
subscription($account: String) {
  usageRecorded(accountExternalId: $account) {
    eventId accountExternalId model feature inputTokens outputTokens cachedInputTokens
    providerCostMicros chargeMicros credits uncollectedCredits flags flagged occurredAt
  }
}"""
BALANCE = """
subscription($account: String) {
  balanceChanged(accountExternalId: $account) {
    accountExternalId reason at balance { available reserved total pool }
  }
}"""
ALERTS = """
subscription { alertRaised { id kind accountExternalId subject window payload createdAt } }
"""
TICKER = """
subscription($interval: Int!) {
  usageTicker(interval: $interval) {
    from to calls tokens providerCostMicros chargeMicros credits
  }
}"""
PRICING = """
subscription {
  pricingPublished { planCode versionId version publishedAt migrate }
}"""
STOP = """
mutation($id: String!, $on: Boolean!) {
  setEmergencyStop(scope: ACCOUNT, on: $on, reason: "drill", accountExternalId: $id) {
    __typename
  }
}"""
ACCOUNT_BALANCE = (
    "query($id: String!) { account(externalId: $id) { balance { available reserved total pool } } }"
)


async def _model(a: GraphQLClient) -> str:
    """A priced model replica A's price cache already knows (it reloads on a Redis message)."""
    model = f"live-{new_key()[:8]}"
    await price_model(a, model)
    await create_account(a, f"warm-{model}")
    for _ in range(100):
        # Denied for want of credits once the price is known: books nothing.
        answer = await authorize(a, f"warm-{model}", 1, 1, model=model)
        if answer["__typename"] != "UnknownModel":
            return model
        await asyncio.sleep(0.05)
    raise AssertionError(f"replica A never learned the price of {model}")


async def test_usage_booked_on_one_replica_reaches_subscribers_on_another(
    a: GraphQLClient, b: Replica
) -> None:
    model = await _model(a)
    for account in ("ada", "bob"):
        await create_account(a, account)
        await grant(a, account, 10_000)

    async def probe() -> None:
        await record(a, event("ada", model, eventId=f"probe-{new_key()}", inputTokens=1))

    async with subscriber(b) as session:
        mine, everyone = Feed(session, USAGE, account="ada"), Feed(session, USAGE)
        await mine.ready(probe)
        await everyone.ready(probe)
        real = await record(
            a,
            event("ada", model, inputTokens=1_000, outputTokens=500, feature="chat"),
            event("bob", model, inputTokens=10),
            event("ada", model, inputTokens=4, cachedInputTokens=2_000),
        )
        assert [r["__typename"] for r in real] == ["Recorded"] * 3

        def arrived(ids: set[str]) -> Callable[[list[dict[str, Any]]], bool]:
            return lambda seen: ids <= {s["usageRecorded"]["eventId"] for s in seen}

        ada_ids = {real[0]["eventId"], real[2]["eventId"]}
        got = [s["usageRecorded"] for s in await mine.until(arrived(ada_ids))]
        got = [g for g in got if not g["eventId"].startswith("probe-")]
        assert {g["eventId"] for g in got} == ada_ids
        first = next(g for g in got if g["eventId"] == real[0]["eventId"])
        assert first == {
            "eventId": real[0]["eventId"],
            "accountExternalId": "ada",
            "model": model,
            "feature": "chat",
            "inputTokens": 1_000,
            "outputTokens": 500,
            "cachedInputTokens": 0,
            "providerCostMicros": real[0]["costMicros"],
            "chargeMicros": real[0]["chargeMicros"],
            "credits": real[0]["credits"],
            "uncollectedCredits": 0,
            "flags": [],
            "flagged": False,
            "occurredAt": first["occurredAt"],
        }
        assert first["providerCostMicros"] == 2_000  # $1/M in, $2/M out
        await mine.quiet(ignore=lambda s: s["usageRecorded"]["eventId"].startswith("probe-"))

        all_ids = {r["eventId"] for r in real}
        seen = await everyone.until(arrived(all_ids))
        accounts = {s["usageRecorded"]["accountExternalId"] for s in seen}
        assert accounts == {"ada", "bob"}
        mine.close()
        everyone.close()


async def test_balance_changes_after_each_committed_ledger_operation(
    a: GraphQLClient, b: Replica
) -> None:
    model = await _model(a)
    await create_account(a, "ada")
    await create_account(a, "bob")

    async def probe() -> None:
        await grant(a, "ada", 1)

    async with subscriber(b) as session:
        feed = Feed(session, BALANCE, account="ada")
        await feed.ready(probe)
        with contextlib.suppress(TimeoutError):
            while True:  # probes still in flight
                await feed.next(within=0.3)

        async def expect(reason: str) -> dict[str, Any]:
            change: dict[str, Any] = (await feed.next())["balanceChanged"]
            assert change["reason"] == reason, change
            assert change["accountExternalId"] == "ada"
            now = (await a.data(ACCOUNT_BALANCE, id="ada"))["account"]["balance"]
            assert change["balance"] == now
            return change

        await grant(a, "ada", 1_000)
        await expect("GRANT")
        spent = await deduct(a, "ada", 100)
        assert (await expect("DEDUCT"))["balance"]["available"] == spent["balance"]["available"]
        refunded = await a.data(
            REFUND,
            input={
                "accountExternalId": "ada",
                "amount": 40,
                "refundOf": spent["transactionId"],
                "idempotencyKey": new_key(),
            },
        )
        assert refunded["refundCredits"]["__typename"] == "LedgerSuccess"
        await expect("REFUND")
        transferred = await a.data(
            "mutation($input: TransferCreditsInput!) { transferCredits(input: $input) "
            "{ __typename } }",
            input={
                "fromAccountExternalId": "ada",
                "toAccountExternalId": "bob",
                "amount": 30,
                "idempotencyKey": new_key(),
            },
        )
        assert transferred["transferCredits"]["__typename"] == "TransferSuccess"
        await expect("TRANSFER")
        boosted = await a.data(
            "mutation($input: GrantBoostInput!) { grantBoost(input: $input) { __typename } }",
            input={
                "accountExternalId": "ada",
                "credits": 50,
                "until": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
                "idempotencyKey": new_key(),
            },
        )
        assert boosted["grantBoost"]["__typename"] == "LedgerSuccess"
        await expect("BOOST")
        # Three events of one account in one recordUsage: one change, after the batch.
        recorded = await record(a, *(event("ada", model, inputTokens=3_000) for _ in range(3)))
        assert {r["__typename"] for r in recorded} == {"Recorded"}
        await expect("USAGE")
        await feed.quiet()
        feed.close()


async def test_no_event_for_a_refused_replayed_or_rolled_back_operation(
    a: GraphQLClient, b: Replica
) -> None:
    model = await _model(a)
    await create_account(a, "ada")
    key = new_key()
    first = await grant(a, "ada", 100, key=key)

    async with subscriber(b) as session:
        balances = Feed(session, BALANCE)
        usage = Feed(session, USAGE)
        await balances.ready(lambda: grant(a, "ada", 1))
        await usage.ready(
            lambda: record(a, event("ada", model, eventId=f"probe-{new_key()}", inputTokens=1))
        )
        await asyncio.sleep(0.5)  # probes still in flight
        for feed in (balances, usage):
            while not feed.queue.empty():
                await feed.next()

        # Refused: not enough credits.
        assert (await deduct(a, "ada", 1_000_000))["__typename"] == "InsufficientCredits"
        # Replayed: the first grant's result again, nothing booked.
        replay = await grant(a, "ada", 100, key=key)
        assert replay == first
        # Rolled back: the refund is refused inside its transaction.
        spent = await deduct(a, "ada", 10)
        assert (await balances.next())["balanceChanged"]["reason"] == "DEDUCT"
        over = await a.data(
            REFUND,
            input={
                "accountExternalId": "ada",
                "amount": 11,
                "refundOf": spent["transactionId"],
                "idempotencyKey": new_key(),
            },
        )
        assert over["refundCredits"]["__typename"] == "ValidationFailed"
        # Metering: an unknown account and an unknown model book nothing.
        failed = await record(a, event("nobody", model), event("ada", "no-such-model"))
        assert [r["__typename"] for r in failed] == ["AccountNotFound", "UnknownModel"]
        # A replayed usage event books nothing either.
        once = event("ada", model, inputTokens=5)
        await record(a, once)
        assert (await usage.next())["usageRecorded"]["eventId"] == once["eventId"]
        assert (await balances.next())["balanceChanged"]["reason"] == "USAGE"
        await record(a, once)

        # The next booking is the next thing either subscriber hears.
        await grant(a, "ada", 7)
        change = (await balances.next())["balanceChanged"]
        assert change["reason"] == "GRANT"
        await balances.quiet()
        await usage.quiet()
        balances.close()
        usage.close()


async def test_emergency_stop_raises_an_alert(a: GraphQLClient, b: Replica) -> None:
    await create_account(a, "ada")
    await create_account(a, "probe")
    probes = 0

    async def probe() -> None:
        nonlocal probes
        probes += 1
        await a.data(STOP, id="probe", on=probes % 2 == 1)

    async with subscriber(b) as session:
        feed = Feed(session, ALERTS)
        await feed.ready(probe)
        try:
            assert (await a.data(STOP, id="ada", on=True))["setEmergencyStop"]["__typename"] == (
                "EmergencyStop"
            )
            seen = await feed.until(
                lambda s: any(e["alertRaised"]["accountExternalId"] == "ada" for e in s)
            )
            alert = seen[-1]["alertRaised"]
            assert alert["kind"] == "EMERGENCY_STOP"
            assert alert["subject"] == "ACCOUNT"
            assert alert["payload"]["on"] is True
            assert alert["payload"]["reason"] == "drill"
        finally:
            # The replicas' caches outlive this test's rows: leave no stop behind.
            await a.data(STOP, id="ada", on=False)
            await a.data(STOP, id="probe", on=False)
        seen = await feed.until(
            lambda s: any(
                e["alertRaised"]["accountExternalId"] == "ada"
                and e["alertRaised"]["payload"]["on"] is False
                for e in s
            )
        )
        feed.close()


async def test_usage_ticker_totals_are_exact_across_replicas(a: GraphQLClient, b: Replica) -> None:
    model = await _model(a)
    await create_account(a, "ada")
    await create_account(a, "bob")
    await grant(a, "ada", 1_000_000)
    async with subscriber(b) as session:
        feed = Feed(session, TICKER, interval=1)
        idle = (await feed.next())["usageTicker"]
        assert {k: v for k, v in idle.items() if k not in ("from", "to")} == {
            "calls": 0,
            "tokens": 0,
            "providerCostMicros": 0,
            "chargeMicros": 0,
            "credits": 0,
        }
        booked: list[dict[str, Any]] = []
        tokens = 0
        for i in range(4):
            batch = [
                event("ada", model, inputTokens=100 * i + 7, outputTokens=13),
                event("bob", model, inputTokens=5, cachedInputTokens=40 * i),
            ]
            tokens += sum(
                e.get("inputTokens", 0) + e.get("outputTokens", 0) + e.get("cachedInputTokens", 0)
                for e in batch
            )
            booked += await record(a, *batch)
            await asyncio.sleep(0.3)
        assert {r["__typename"] for r in booked} == {"Recorded"}
        ticks = [
            t["usageTicker"]
            for t in await feed.until(
                lambda s: sum(t["usageTicker"]["calls"] for t in s) >= len(booked)
            )
        ]
        ticks.append((await feed.next())["usageTicker"])  # and nothing more after
        assert ticks[-1]["calls"] == 0
        assert sum(t["calls"] for t in ticks) == len(booked) == 8
        assert sum(t["tokens"] for t in ticks) == tokens
        assert sum(t["providerCostMicros"] for t in ticks) == sum(r["costMicros"] for r in booked)
        assert sum(t["chargeMicros"] for t in ticks) == sum(r["chargeMicros"] for r in booked)
        assert sum(t["credits"] for t in ticks) == sum(r["credits"] for r in booked)
        # One tick per second, back to back, aligned to the clock.
        windows = [idle, *ticks]
        for earlier, later in itertools.pairwise(windows):
            assert later["from"] == earlier["to"]
        for window in windows:
            start, end = (datetime.fromisoformat(window[k]) for k in ("from", "to"))
            assert (end - start).total_seconds() == 1
            assert start.timestamp() == int(start.timestamp())
        feed.close()


@pytest.mark.parametrize("interval", [0, 61, -1])
async def test_usage_ticker_interval_is_1_to_60(
    interval: int, a: GraphQLClient, b: Replica
) -> None:
    async with subscriber(b) as session:
        feed = Feed(session, TICKER, interval=interval)
        with pytest.raises(TransportQueryError, match="interval must be 1 to 60 seconds"):
            await feed.next()


async def test_pricing_published_reaches_every_replica(
    a: GraphQLClient, b: Replica, redis: Redis
) -> None:
    payload = {
        "planCode": "pro",
        "versionId": "v-7",
        "version": 7,
        "publishedAt": "2026-11-21T09:00:00+00:00",
        "migrate": "NEXT_RENEWAL",
    }

    async def probe() -> None:
        await publish_pricing_published(redis, {**payload, "planCode": "probe"})

    async with subscriber(b) as session:
        feed = Feed(session, PRICING)
        await feed.ready(probe)
        await publish_pricing_published(redis, payload)
        seen = await feed.until(
            lambda s: bool(s) and s[-1]["pricingPublished"]["planCode"] == "pro"
        )
        assert seen[-1]["pricingPublished"] == {
            "planCode": "pro",
            "versionId": "v-7",
            "version": 7,
            "publishedAt": "2026-11-21T09:00:00+00:00",
            "migrate": "NEXT_RENEWAL",
        }
        feed.close()
    with pytest.raises(ValueError, match="not a pricing-published message"):
        await publish_pricing_published(redis, {**payload, "migrate": "SOMETIME"})


async def _made_key(a: GraphQLClient, role: str) -> str:
    made = await a.data(
        'mutation($role: AdminRole!) { createAdminKey(name: "live", role: $role) '
        "{ ... on CreatedAdminKey { secret } } }",
        role=role,
    )
    secret: str = made["createAdminKey"]["secret"]
    return secret


async def test_subscriptions_need_the_analyst_role(a: GraphQLClient, b: Replica) -> None:
    analyst = await _made_key(a, "ANALYST")
    service = await _made_key(a, "SERVICE")
    async with subscriber(b, analyst) as session:
        tick = (await Feed(session, TICKER, interval=2).next())["usageTicker"]
        start, end = (datetime.fromisoformat(tick[k]) for k in ("from", "to"))
        assert (end - start).total_seconds() == 2 and int(start.timestamp()) % 2 == 0
    async with subscriber(b, service) as session:
        for document, variables in ((TICKER, {"interval": 1}), (USAGE, {}), (ALERTS, {})):
            with pytest.raises(TransportQueryError) as refused:
                await Feed(session, document, **variables).next()
            assert refused.value.errors is not None
            assert refused.value.errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_subscriptions_per_connection_are_capped(a: GraphQLClient, b: Replica) -> None:
    async with subscriber(b) as session:
        feeds = [Feed(session, TICKER, interval=1) for _ in range(MAX_SUBSCRIPTIONS)]
        for feed in feeds:
            await feed.next()
        extra = Feed(session, PRICING)
        with pytest.raises(TransportQueryError, match=f"at most {MAX_SUBSCRIPTIONS} at once"):
            await extra.next()
        # The others carry on, and completing one makes room.
        for feed in feeds:
            await feed.next()
        feeds[0].close()
        for _ in range(50):  # until the server has heard the `complete`
            try:
                assert "usageTicker" in await Feed(session, TICKER, interval=1).next()
                break
            except TransportQueryError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("completing a subscription did not make room")


# Protocol misuse, spoken by hand.

PROTOCOL = "graphql-transport-ws"
SUBSCRIBE = {
    "id": "1",
    "type": "subscribe",
    "payload": {"query": "subscription { alertRaised { id } }"},
}


@contextlib.asynccontextmanager
async def raw(replica: Replica, protocol: str = PROTOCOL) -> AsyncIterator[ClientConnection]:
    async with connect(replica.ws_url, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        yield ws


async def closed_with(ws: ClientConnection) -> int | None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), WAIT)
    return ws.close_code


def init(key: str | None = OWNER_KEY) -> str:
    payload = {} if key is None else {"authorization": f"Bearer {key}"}
    return json.dumps({"type": "connection_init", "payload": payload})


async def test_subscribe_before_connection_init_closes_4401(b: Replica) -> None:
    async with raw(b) as ws:
        await ws.send(json.dumps(SUBSCRIBE))
        assert await closed_with(ws) == 4401


async def test_no_connection_init_in_time_closes_4408(b: Replica) -> None:
    async with raw(b) as ws:
        started = time.monotonic()
        assert await closed_with(ws) == 4408
        assert time.monotonic() - started >= INIT_TIMEOUT * 0.9


async def test_second_connection_init_closes_4429(b: Replica) -> None:
    async with raw(b) as ws:
        await ws.send(init())
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        await ws.send(init())
        assert await closed_with(ws) == 4429


@pytest.mark.parametrize(
    "key", [None, "tgk_" + "no-such-key" * 3, "not-bearer"], ids=["missing", "unknown", "bad"]
)
async def test_connection_init_without_a_valid_key_closes_4403(key: str | None, b: Replica) -> None:
    async with raw(b) as ws:
        if key == "not-bearer":
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"authorization": OWNER_KEY}})
            )
        else:
            await ws.send(init(key))
        assert await closed_with(ws) == 4403


async def test_a_revoked_key_cannot_connect(a: GraphQLClient, b: Replica) -> None:
    secret = await _made_key(a, "ADMIN")
    keys = (await a.data("{ adminKeys { id name revokedAt } }"))["adminKeys"]
    (made,) = [k for k in keys if k["name"] == "live"]
    await a.data("mutation($id: ID!) { revokeAdminKey(id: $id) { __typename } }", id=made["id"])
    async with raw(b) as ws:
        await ws.send(init(secret))
        assert await closed_with(ws) == 4403


async def test_a_key_revoked_while_connected_starts_nothing_more(
    a: GraphQLClient, b: Replica
) -> None:
    secret = await _made_key(a, "ADMIN")
    async with raw(b) as ws:
        await ws.send(init(secret))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        await ws.send(json.dumps({**SUBSCRIBE, "id": "before"}))
        keys = (await a.data("{ adminKeys { id name } }"))["adminKeys"]
        (made,) = [k for k in keys if k["name"] == "live"]
        await a.data("mutation($id: ID!) { revokeAdminKey(id: $id) { __typename } }", id=made["id"])
        # Replica B forgets the key when the revocation's message reaches it.
        for attempt in range(50):
            await ws.send(json.dumps({**SUBSCRIBE, "id": f"after-{attempt}"}))
            try:
                await asyncio.wait_for(ws.recv(), 0.1)
            except TimeoutError:
                continue  # accepted: still waiting for alerts
            except ConnectionClosed:
                break
        assert ws.close_code == 4403


async def test_legacy_graphql_ws_protocol_is_refused(b: Replica) -> None:
    async with raw(b, "graphql-ws") as ws:
        assert await closed_with(ws) == 4406


@pytest.mark.parametrize(
    "accept", ["application/json", "multipart/mixed;subscriptionSpec=1.0,application/json"]
)
async def test_subscriptions_over_http_are_refused(accept: str, a: GraphQLClient) -> None:
    response = await a.http.post(
        "/graphql",
        json={"query": "subscription { alertRaised { id } }"},
        headers={"Authorization": f"Bearer {OWNER_KEY}", "Accept": accept},
    )
    assert response.status_code == 400, response.text
    assert "subscriptions" in response.text


# In-process: the hub's backpressure, expiry's balance changes, and re-checking a connection.


async def test_a_slow_subscriber_loses_its_oldest_events(settings: Settings) -> None:
    client = Redis.from_url(settings.redis_url or "")
    bus = InvalidationBus(client)
    hub = LiveHub(bus, queue_size=3)
    await bus.start()
    try:
        with hub.subscribe(USAGE_CHANNEL, "ada") as slow, hub.subscribe(USAGE_CHANNEL) as other:
            for n in range(5):
                await client.publish(
                    USAGE_CHANNEL, json.dumps([{"accountExternalId": "ada", "n": n}])
                )
            for _ in range(500):  # until the listener has handed all five over
                if slow.dropped == 2:
                    break
                await asyncio.sleep(0.02)
            assert slow.dropped == other.dropped == 2
            assert [(await slow.next(within=1))["n"] for _ in range(3)] == [2, 3, 4]
            assert await slow.next(within=0.1) is None
        assert hub.count() == 0
    finally:
        await bus.stop()
        await client.aclose()


async def test_expired_grants_change_balances(
    a: GraphQLClient, b: Replica, db: Database, redis: Redis
) -> None:
    await create_account(a, "ada")
    await grant(a, "ada", 500)
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await grant(a, "ada", 300, expiresAt=soon)
    async with subscriber(b) as session:
        feed = Feed(session, BALANCE, account="ada")
        await feed.ready(lambda: grant(a, "ada", 1))
        await asyncio.sleep(0.5)
        while not feed.queue.empty():
            await feed.next()
        later = datetime.now(UTC) + timedelta(days=2)
        assert await expire_due_grants(db, now=later, redis=redis) == 1
        change = (await feed.next())["balanceChanged"]
        assert change["reason"] == "EXPIRY"
        assert (
            change["balance"]["total"]
            == (await a.data(ACCOUNT_BALANCE, id="ada"))["account"]["balance"]["total"]
        )
        await feed.quiet()
        feed.close()


async def _connection(app: Any, secret: str) -> Context:
    """The context of a websocket whose connection_init carried `secret`."""
    state = app.state
    return Context(
        db=state.db,
        redis=state.redis,
        settings=state.settings,
        bus=state.bus,
        metering=state.metering,
        principals=state.principals,
        principal=await state.principals.authenticate(secret),
        request=None,  # type: ignore[arg-type]
        connection_params={"authorization": f"Bearer {secret}"},
        live=state.live,
        ticker=state.ticker,
    )


async def test_a_finished_subscription_leaves_the_hub(app: Any, redis: Redis) -> None:
    hub: LiveHub = app.state.live
    schema = build_schema(introspection=True)
    stream = await schema.subscribe(
        "subscription { pricingPublished { planCode version } }",
        context_value=await _connection(app, OWNER_KEY),
    )
    assert not isinstance(stream, ExecutionResult), stream
    first = asyncio.ensure_future(anext(stream))
    for _ in range(500):  # until the resolver has subscribed
        if hub.count():
            break
        await asyncio.sleep(0.01)
    assert hub.count() == 1
    await publish_pricing_published(
        redis,
        {
            "planCode": "team",
            "versionId": "v-2",
            "version": 2,
            "publishedAt": datetime.now(UTC).isoformat(),
            "migrate": "IMMEDIATELY",
        },
    )
    result = await asyncio.wait_for(first, WAIT)
    assert result.data == {"pricingPublished": {"planCode": "team", "version": 2}}
    await stream.aclose()
    assert hub.count() == 0


async def test_a_revoked_key_stops_its_subscriptions(app: Any, gql: GraphQLClient) -> None:
    secret = await _made_key(gql, "ANALYST")
    context = await _connection(app, secret)
    guard = live_graphql._Guard(context)
    guard.checked = 0  # as if RECHECK_SECONDS had passed
    await guard.check()
    keys = (await gql.data("{ adminKeys { id name } }"))["adminKeys"]
    (made,) = [k for k in keys if k["name"] == "live"]
    await gql.data("mutation($id: ID!) { revokeAdminKey(id: $id) { __typename } }", id=made["id"])
    guard.checked = 0
    with pytest.raises(GraphQLError, match="no longer valid"):
        await guard.check()


async def test_publishing_a_plan_and_subscribing_reach_live_screens(
    a: GraphQLClient, b: Replica
) -> None:
    """The plan catalog's own mutations feed pricingPublished, alertRaised (each grandfathered
    subscriber's notification) and balanceChanged (the plan's credits)."""
    probes = iter(range(1000))

    async def probe() -> None:
        created = await create_plan(a, f"probe-{next(probes)}")
        await plan_publish(a, created["id"])

    async with subscriber(b) as session:
        prices, balances, alerts = Feed(session, PRICING), None, Feed(session, ALERTS)
        await prices.ready(probe)
        v1 = await published_plan(a, "pro", credits=700)
        await create_account(a, "fan")
        balances = Feed(session, BALANCE, account="fan")
        await balances.ready(lambda: grant(a, "fan", 1))
        assert (await plan_subscribe(a, "fan", "pro"))["__typename"] == "PlanSubscription"
        changed = await balances.until(
            lambda s: bool(s) and s[-1]["balanceChanged"]["reason"] == "PLAN"
        )
        assert changed[-1]["balanceChanged"]["balance"]["available"] == 701
        draft = await a.data(NEW_DRAFT, id=v1)
        v2 = draft["createPlanVersion"]["id"]
        await plan_publish(a, v2, "NEXT_RENEWAL")
        seen = await prices.until(
            lambda s: bool(s) and s[-1]["pricingPublished"]["versionId"] == v2
        )
        assert seen[-1]["pricingPublished"]["planCode"] == "pro"
        assert seen[-1]["pricingPublished"]["migrate"] == "NEXT_RENEWAL"
        raised = await alerts.until(
            lambda s: bool(s) and s[-1]["alertRaised"]["kind"] == "PLAN_PUBLISHED"
        )
        assert raised[-1]["alertRaised"]["accountExternalId"] == "fan"
        for feed in (prices, balances, alerts):
            feed.close()
