"""The HTTP surface's safety rails: what production hides, the limits on operation size, how
failures are reported, health, how key secrets are stored, and the websocket protocol."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.conftest import OWNER_KEY, GraphQLClient
from tollgate.api.schema import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.db import Database, create_engine
from tollgate.pagination import encode_cursor

AUTH = {"Authorization": f"Bearer {OWNER_KEY}"}
MASKED = "Unexpected error."
INTROSPECTION = "{ __schema { queryType { name } types { name } } }"


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app of its own for `settings`, lifespan included, and a client for it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tollgate.test") as c:
            yield c


@pytest.fixture
async def production(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(dataclasses.replace(settings, env="production")) as c:
        yield c


async def post(c: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await c.post("/graphql", json={"query": query, "variables": variables}, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def messages(body: dict[str, Any]) -> list[str]:
    return [e["message"] for e in body.get("errors") or []]


# --- production hides the schema; dev shows it -------------------------------------------


async def test_production_refuses_introspection(production: httpx.AsyncClient) -> None:
    for query in (INTROSPECTION, '{ __type(name: "Account") { fields { name } } }'):
        body = await post(production, query)
        assert body.get("data") is None, body
        assert any("introspection has been disabled" in m for m in messages(body)), body
    # __typename is not introspection of the schema and stays usable.
    assert await post(production, "{ __typename }") == {"data": {"__typename": "Query"}}


async def test_production_serves_no_graphiql(production: httpx.AsyncClient) -> None:
    response = await production.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code in (400, 404, 405), response.status_code
    assert "graphiql" not in response.text.lower()


async def test_production_still_serves_operations(production: httpx.AsyncClient) -> None:
    assert (await post(production, "{ me { role } }")) == {"data": {"me": {"role": "OWNER"}}}


async def test_dev_serves_graphiql_and_introspection(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "graphiql" in page.text.lower()
    body = await post(client, INTROSPECTION)
    assert body["data"]["__schema"]["queryType"] == {"name": "Query"}
    assert "Account" in {t["name"] for t in body["data"]["__schema"]["types"]}


# --- GET ------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "production"])
async def test_operations_over_get_are_refused(
    settings: Settings, gql: GraphQLClient, env: str
) -> None:
    """A GET can be triggered cross-site by a link or an image; nothing runs through it."""
    mutation = 'mutation { createOrganization(input: {externalId: "via-get"}) { __typename } }'
    async with serve(dataclasses.replace(settings, env=env)) as c:
        for query in (mutation, "{ me { role } }"):
            response = await c.get("/graphql", params={"query": query}, headers=AUTH)
            assert 400 <= response.status_code < 500, (query, response.status_code)
            assert '"data"' not in response.text
    found = await gql.data('{ organization(externalId: "via-get") { id } }')
    assert found["organization"] is None


# --- operation size limits --------------------------------------------------------------------


def nested(depth: int) -> str:
    """An operation `depth` levels deep (the limiter counts `{ a { b } }` as depth 1)."""
    names = [f"f{i}" for i in range(depth + 1)]
    return "{ " + " { ".join(names) + " }" * (depth + 1)


def depth_errors(body: dict[str, Any]) -> list[str]:
    return [m for m in messages(body) if "exceeds maximum operation depth" in m]


async def test_depth_above_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    # Real paths through the schema stop short of the limit, so these documents name made-up
    # fields: both are refused for that, and only the deeper one must also hit the limiter.
    assert depth_errors(await post(client, nested(MAX_DEPTH))) == []
    for depth in (MAX_DEPTH + 1, MAX_DEPTH * 5):
        body = await post(client, nested(depth))
        assert body.get("data") is None
        assert depth_errors(body) == [f"'anonymous' exceeds maximum operation depth of {MAX_DEPTH}"]


async def test_deepest_real_path_is_within_the_limit(gql: GraphQLClient) -> None:
    data = await gql.data(
        "{ accounts { edges { node { ledger { edges { node { transaction "
        "{ entries { walletId } } } } } } } } }"
    )
    assert data == {"accounts": {"edges": []}}


async def test_too_many_aliases_are_refused(client: httpx.AsyncClient) -> None:
    def aliased(count: int) -> str:
        return "{ " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"

    at_limit = await post(client, aliased(MAX_ALIASES))
    assert not at_limit.get("errors") and len(at_limit["data"]) == MAX_ALIASES
    over = await post(client, aliased(MAX_ALIASES + 1))
    assert over.get("data") is None
    assert messages(over) == [f"{MAX_ALIASES + 1} aliases found. Allowed: {MAX_ALIASES}"]
    # Aliases hidden in a fragment count too.
    fragment = "fragment F on Query { " + " ".join(f"b{i}: me {{ role }}" for i in range(40))
    body = await post(client, "{ ...F } " + fragment + " }")
    assert body.get("data") is None and messages(body), body


async def test_too_many_tokens_are_refused(client: httpx.AsyncClient) -> None:
    def tokens(count: int) -> str:
        # `{`, `}` and count - 2 field names.
        return "{ " + " ".join(["__typename"] * (count - 2)) + " }"

    def token_errors(body: dict[str, Any]) -> list[str]:
        return [m for m in messages(body) if "tokens" in m]

    assert token_errors(await post(client, tokens(MAX_TOKENS))) == []
    over = await post(client, tokens(MAX_TOKENS + 1))
    assert over.get("data") is None
    assert token_errors(over) == [
        f"Syntax Error: Document contains more than {MAX_TOKENS} tokens. Parsing aborted."
    ]
    # A large document that is mostly one string literal is few tokens and fine.
    big = await post(client, '{ accounts(search: "' + "x" * 20_000 + '") { nodes { id } } }')
    assert big == {"data": {"accounts": {"nodes": []}}}


# --- error messages give nothing away ---------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "production"])
async def test_misspelled_field_gets_no_suggestion(settings: Settings, env: str) -> None:
    async with serve(dataclasses.replace(settings, env=env)) as c:
        for query in ("{ acounts { nodes { id } } }", "{ accounts { nodes { externalID } } }"):
            body = await post(c, query)
            assert body.get("data") is None
            (message,) = messages(body)
            assert message.startswith("Cannot query field")
            assert "Did you mean" not in message, message


# With introspection off, the names of arguments, input fields, enum values and types are as
# secret as the field names: a "Did you mean" on any of them reveals the schema piece by piece.
MISSPELLINGS = [
    pytest.param("{ accounts(frist: 1) { nodes { id } } }", id="argument"),
    pytest.param(
        'mutation { createAccount(input: {externalI: "x"}) { __typename } }', id="input-field"
    ),
    pytest.param('mutation { createAdminKey(name: "x", role: ADMN) { __typename } }', id="enum"),
    pytest.param(
        "query($i: CreateAcountInput!) { createAccount(input: $i) { __typename } }",
        id="type",
    ),
]


@pytest.mark.parametrize("query", MISSPELLINGS)
async def test_production_suggests_no_schema_names(
    production: httpx.AsyncClient, query: str
) -> None:
    body = await post(production, query)
    assert body.get("data") is None and messages(body)
    leaks = [m for m in messages(body) if "Did you mean" in m]
    assert not leaks, leaks


async def test_unexpected_exceptions_are_masked(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail: postgresql://admin:hunter2@db/prod")

    monkeypatch.setattr("tollgate.accounts.service.list_accounts", broken)
    monkeypatch.setattr("tollgate.accounts.service.create_account", broken)
    for query in (
        "{ accounts { nodes { id } } }",
        'mutation { createAccount(input: {externalId: "boom"}) { __typename } }',
    ):
        response = await gql.http.post("/graphql", json={"query": query}, headers=AUTH)
        assert response.status_code == 200
        body = response.json()
        assert messages(body) == [MASKED], body
        assert set(body["errors"][0]) <= {"message", "locations", "path"}, body
        for leak in ("secret detail", "hunter2", "RuntimeError", "Traceback"):
            assert leak not in response.text
    # The failed mutation rolled back entirely, audit row included.
    assert (await gql.data("{ auditLog { nodes { id } } }"))["auditLog"]["nodes"] == []


async def test_errors_meant_for_the_caller_are_not_masked(gql: GraphQLClient) -> None:
    body = await gql.execute("{ accounts(first: 0) { nodes { id } } }")
    assert messages(body) == ["first must be between 1 and 200"]
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT"}
    body = await gql.execute('{ auditLog(after: "not a cursor") { nodes { id } } }')
    assert messages(body) == ["after is not a cursor this API gave out"]


# Each of these is a request any client can send. The answer must be a typed result or an
# error that says what is wrong with the input; "Unexpected error." means the server crashed.
ACCOUNT = "query($v: String!) { account(externalId: $v) { id } }"
SEARCH = "query($v: String) { accounts(search: $v) { nodes { id } } }"
ACCOUNTS_AFTER = "query($v: String) { accounts(after: $v) { nodes { id } } }"
AUDIT_AFTER = "query($v: String) { auditLog(after: $v) { nodes { id } } }"
REVOKE = "mutation($v: ID!) { revokeAdminKey(id: $v) { __typename } }"
CREATE_ACCOUNT = "mutation($v: CreateAccountInput!) { createAccount(input: $v) { __typename } }"
DEDUCT = "mutation($v: DeductCreditsInput!) { deductCredits(input: $v) { __typename } }"
NEW_KEY = "mutation($v: String!) { createAdminKey(name: $v, role: ANALYST) { __typename } }"
LIMITS = "query($v: String!) { accountLimits(accountExternalId: $v) { __typename } }"
PRICES = "query($v: String) { modelPrices(model: $v) { nodes { id } } }"
STOP = (
    "mutation($v: String!) { setEmergencyStop(scope: ACCOUNT, on: true, reason: $v, "
    'accountExternalId: "nobody") { __typename } }'
)
HUGE = "9" * 25
HOSTILE = [
    pytest.param(ACCOUNT, "a\x00b", id="nul-in-external-id"),
    pytest.param(SEARCH, "a\x00b", id="nul-in-search"),
    pytest.param(CREATE_ACCOUNT, {"externalId": "ok", "name": "n\x00"}, id="nul-in-name"),
    pytest.param(
        DEDUCT,
        {"accountExternalId": "nobody", "amount": 5, "idempotencyKey": "k\x00"},
        # The refusal (no such account) is fine; storing it in the audit log is not.
        id="nul-in-refused-input",
    ),
    pytest.param(NEW_KEY, "bot\x00", id="nul-in-key-name"),
    pytest.param(LIMITS, "a\x00", id="nul-in-limits-lookup"),
    pytest.param(PRICES, "gpt\x00", id="nul-in-model-filter"),
    pytest.param(STOP, "drill\x00", id="nul-in-stop-reason"),
    pytest.param(ACCOUNTS_AFTER, encode_cursor(10**20), id="cursor-beyond-bigint"),
    pytest.param(AUDIT_AFTER, "YzrCsg==", id="cursor-with-unicode-digit"),
    pytest.param(REVOKE, HUGE, id="key-id-beyond-bigint"),
    pytest.param(REVOKE, "\u00b2", id="key-id-unicode-digit"),
    pytest.param(
        'mutation { deductCredits(input: {accountExternalId: "a", amount: '
        + HUGE
        + ', idempotencyKey: "k"}) { __typename } }',
        None,
        id="bigint-literal-out-of-range",
    ),
    pytest.param(
        'mutation { deductCredits(input: {accountExternalId: "a", amount: "12x", '
        'idempotencyKey: "k"}) { __typename } }',
        None,
        id="bigint-literal-not-a-number",
    ),
]


@pytest.mark.parametrize(("query", "value"), HOSTILE)
async def test_hostile_input_gets_an_answer_not_a_crash(
    gql: GraphQLClient, query: str, value: Any
) -> None:
    body = await gql.execute(query, **({} if value is None else {"v": value}))
    assert MASKED not in messages(body), body
    assert body.get("errors") or body.get("data"), body


# --- health -----------------------------------------------------------------------------------


async def test_healthz_reports_both_backends(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "postgres": True, "redis": True}


UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/x"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


async def test_healthz_is_503_when_postgres_is_unreachable(settings: Settings) -> None:
    # Start-up loads the caches from PostgreSQL, so the outage is staged once the app runs:
    # its database handle is swapped for one that points at a closed port.
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        real, app.state.db = app.state.db, Database(create_engine(settings, UNREACHABLE_POSTGRES))
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                response = await c.get("/healthz")
        finally:
            await app.state.db.dispose()
            app.state.db = real
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "postgres": False, "redis": True}


async def test_healthz_is_503_when_redis_is_unreachable(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        real, app.state.redis = app.state.redis, Redis.from_url(UNREACHABLE_REDIS)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                response = await c.get("/healthz")
        finally:
            await app.state.redis.aclose()
            app.state.redis = real
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "postgres": True, "redis": False}


# --- key storage ------------------------------------------------------------------------------


async def test_key_secrets_are_stored_hashed(gql: GraphQLClient, db: Database) -> None:
    created = await gql.data(
        'mutation { createAdminKey(name: "stored", role: ADMIN) '
        "{ ... on CreatedAdminKey { secret key { id } } } }"
    )
    secret = created["createAdminKey"]["secret"]
    key_id = int(created["createAdminKey"]["key"]["id"])
    async with db.transaction() as session:
        rows = (await session.execute(text("SELECT k::text FROM admin_api_keys k"))).scalars()
        dumped = "\n".join(rows.all())
        stored_hash = await session.scalar(
            text("SELECT key_hash FROM admin_api_keys WHERE id = :id"), {"id": key_id}
        )
    assert secret not in dumped
    assert secret[len("tgk_") :] not in dumped
    assert OWNER_KEY not in dumped
    assert stored_hash == hashlib.sha256(secret.encode()).hexdigest()


# --- websocket --------------------------------------------------------------------------------


def test_websocket_refuses_the_legacy_protocol(settings: Settings) -> None:
    # TestClient runs the app, lifespan included, on an event loop of its own in a thread.
    with TestClient(create_app(settings)) as tc:
        with pytest.raises(WebSocketDisconnect) as refused:
            with tc.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as ws:
                assert ws.accepted_subprotocol != "graphql-ws"
                ws.send_json({"type": "connection_init", "payload": {}})
                ws.receive_json()
        assert refused.value.code == 4406


def test_websocket_speaks_graphql_transport_ws_with_the_same_auth(settings: Settings) -> None:
    with TestClient(create_app(settings)) as tc:
        # No key, neither in connection_init nor on the upgrade request: refused.
        with pytest.raises(WebSocketDisconnect) as refused:
            with tc.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
                assert ws.accepted_subprotocol == "graphql-transport-ws"
                ws.send_json({"type": "connection_init"})
                ws.receive_json()
        assert refused.value.code == 4403

        with tc.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json(
                {"type": "connection_init", "payload": {"authorization": AUTH["Authorization"]}}
            )
            assert ws.receive_json() == {"type": "connection_ack"}
            ws.send_json({"type": "subscribe", "id": "1", "payload": {"query": "{ me { role } }"}})
            assert ws.receive_json()["payload"] == {"data": {"me": {"role": "OWNER"}}}
            assert ws.receive_json() == {"id": "1", "type": "complete"}

        with tc.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers=AUTH
        ) as ws:
            ws.send_json({"type": "connection_init"})
            assert ws.receive_json() == {"type": "connection_ack"}
            ws.send_json({"type": "subscribe", "id": "2", "payload": {"query": "{ me { role } }"}})
            assert ws.receive_json() == {
                "id": "2",
                "type": "next",
                "payload": {"data": {"me": {"role": "OWNER"}}},
            }
            assert ws.receive_json() == {"id": "2", "type": "complete"}
