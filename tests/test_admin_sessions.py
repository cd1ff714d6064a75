"""Signing in to the admin app: /auth/login, /auth/logout, /auth/me, the session cookie, CSRF,
the sign-in rate limit, and the same role checks for a signed-in user as for a key."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update

from tests.admin_helpers import PASSWORD, SignedIn, gql_as, make_user, sign_in
from tests.conftest import OWNER_KEY, GraphQLClient
from tollgate.app import create_app
from tollgate.auth import passwords, sessions
from tollgate.auth.http import SESSION_COOKIE
from tollgate.auth.models import AdminSession, AdminUser
from tollgate.auth.service import hash_secret
from tollgate.auth.throttle import ATTEMPTS
from tollgate.config import Settings
from tollgate.db import Database

ME = "{ me { name role } }"
CREATE_ACCOUNT = "mutation($id: String!) { createAccount(input: {externalId: $id}) { __typename } }"


def set_cookie_headers(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def cookie_attributes(header: str) -> dict[str, str]:
    name_value, *attributes = [part.strip() for part in header.split(";")]
    found = {"_": name_value}
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        found[key.lower()] = value
    return found


@dataclasses.dataclass
class Served:
    client: httpx.AsyncClient
    app: Any


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[Any]:
    """An app of its own for other settings (production cookies, short sessions)."""
    started: list[tuple[Any, httpx.AsyncClient]] = []

    async def start(**changes: Any) -> httpx.AsyncClient:
        app = create_app(dataclasses.replace(settings, **changes))
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://tollgate.test"
        )
        started.append((lifespan, client))
        return client

    yield start
    for lifespan, client in reversed(started):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


# --- passwords ------------------------------------------------------------------------------


def test_passwords_are_argon2id_salted_and_verified() -> None:
    first, second = passwords.hash_password(PASSWORD), passwords.hash_password(PASSWORD)
    assert first.startswith("$argon2id$") and second.startswith("$argon2id$")
    assert first != second, "each hash has its own salt"
    assert PASSWORD not in first
    assert passwords.verify_password(first, PASSWORD)
    assert not passwords.verify_password(first, PASSWORD + "!")
    assert not passwords.verify_password(first, "")
    assert not passwords.verify_password("not a hash", PASSWORD)
    # No stored hash: the dummy hash is verified (same work) and the answer is always no.
    assert not passwords.verify_password(None, PASSWORD)
    assert not passwords.needs_rehash(first)
    weak = "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$gwQOXSNhxiOxPOA0+PY10P9QFO4NAYysnqRt1GSQLE4"
    assert passwords.needs_rehash(weak)


def test_password_rules() -> None:
    assert passwords.password_problem("short") is not None
    assert passwords.password_problem("x" * passwords.MIN_LENGTH) is None
    assert passwords.password_problem("x" * (passwords.MAX_LENGTH + 1)) is not None


# --- login ----------------------------------------------------------------------------------


async def test_login_answers_the_user_and_a_csrf_token_and_sets_the_cookie(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_user(db, "ada@example.com", "admin")
    response = await client.post(
        "/auth/login", json={"email": "  Ada@Example.COM ", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] == {"email": "ada@example.com", "role": "admin"}
    assert isinstance(body["csrfToken"], str) and len(body["csrfToken"]) >= 32
    assert response.headers["cache-control"] == "no-store"

    (header,) = set_cookie_headers(response)
    cookie = cookie_attributes(header)
    name, _, token = cookie["_"].partition("=")
    assert name == SESSION_COOKIE and len(token) >= 32
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert "secure" not in cookie, "dev serves plain http on localhost"

    # Only the token's hash is stored, with the CSRF token bound to that session.
    async with db.transaction() as session:
        row = await session.scalar(select(AdminSession))
        user = await session.scalar(select(AdminUser))
    assert row is not None and user is not None
    assert row.token_hash == hash_secret(token) and token not in row.token_hash
    assert row.csrf_token == body["csrfToken"]
    assert user.last_login_at is not None


async def test_production_cookies_are_secure(serve: Any, db: Database) -> None:
    client = await serve(env="production")
    await make_user(db, "ops@example.com")
    response = await client.post(
        "/auth/login", json={"email": "ops@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    (header,) = set_cookie_headers(response)
    cookie = cookie_attributes(header)
    assert "secure" in cookie and "httponly" in cookie
    assert cookie["samesite"].lower() == "strict"


@pytest.mark.parametrize(
    "email, password",
    [
        ("ada@example.com", PASSWORD + "x"),
        ("ada@example.com", PASSWORD.upper()),
        ("nobody@example.com", PASSWORD),
        ("disabled@example.com", PASSWORD),
    ],
    ids=["wrong-password", "wrong-case-password", "unknown-email", "disabled-user"],
)
async def test_wrong_credentials_are_one_401(
    client: httpx.AsyncClient, db: Database, email: str, password: str
) -> None:
    await make_user(db, "ada@example.com")
    disabled = await make_user(db, "disabled@example.com")
    async with db.transaction() as session:
        await session.execute(
            update(AdminUser).where(AdminUser.id == disabled.id).values(disabled_at=text("now()"))
        )
    response = await client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "INVALID_CREDENTIALS", "message": "wrong email or password"}
    }
    assert not set_cookie_headers(response)
    async with db.transaction() as session:
        assert await session.scalar(select(AdminSession)) is None


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"email": "a@b.c"}', b'{"email": 1, "password": "x"}', b"{}"],
)
async def test_malformed_login_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


async def test_login_is_rate_limited_per_email_and_ip(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_user(db, "ada@example.com")
    for _ in range(ATTEMPTS):
        wrong = await client.post(
            "/auth/login", json={"email": "ada@example.com", "password": "wrong password!"}
        )
        assert wrong.status_code == 401
    # The limit holds even for the right password now: guessing must not pay off.
    limited = await client.post(
        "/auth/login", json={"email": "ADA@example.com", "password": PASSWORD}
    )
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    assert int(limited.headers["retry-after"]) > 0
    # Another address from the same client is counted on its own.
    await make_user(db, "grace@example.com")
    await sign_in(client, "grace@example.com")


async def test_successful_login_clears_the_count(client: httpx.AsyncClient, db: Database) -> None:
    await make_user(db, "ada@example.com")
    for _ in range(ATTEMPTS - 1):
        await client.post("/auth/login", json={"email": "ada@example.com", "password": "nope"})
    await sign_in(client, "ada@example.com")
    for _ in range(ATTEMPTS - 1):
        await client.post("/auth/login", json={"email": "ada@example.com", "password": "nope"})
    await sign_in(client, "ada@example.com")


async def test_login_from_another_origin_is_refused(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_user(db, "ada@example.com")
    response = await client.post(
        "/auth/login",
        json={"email": "ada@example.com", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "CSRF_FAILED"
    same = await client.post(
        "/auth/login",
        json={"email": "ada@example.com", "password": PASSWORD},
        headers={"Origin": "http://tollgate.test"},
    )
    assert same.status_code == 200


async def test_login_rehashes_a_password_hashed_with_weaker_parameters(
    client: httpx.AsyncClient, db: Database
) -> None:
    from argon2 import PasswordHasher

    user = await make_user(db, "ada@example.com")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    async with db.transaction() as session:
        await session.execute(
            update(AdminUser).where(AdminUser.id == user.id).values(password_hash=weak)
        )
    await sign_in(client, "ada@example.com")
    async with db.transaction() as session:
        stored = await session.scalar(select(AdminUser.password_hash))
    assert stored is not None and stored != weak and not passwords.needs_rehash(stored)


# --- me, logout, expiry -----------------------------------------------------------------------


async def test_me_and_logout(client: httpx.AsyncClient, db: Database) -> None:
    await make_user(db, "ada@example.com", "analyst")
    signed_in = await sign_in(client, "ada@example.com")

    me = await client.get("/auth/me", headers=signed_in.headers(csrf=None))
    assert me.status_code == 200
    assert me.json() == {
        "user": {"email": "ada@example.com", "role": "analyst"},
        "csrfToken": signed_in.csrf,
    }
    assert (await client.get("/auth/me")).status_code == 401

    out = await client.post("/auth/logout", headers=signed_in.headers(csrf=None))
    assert out.status_code == 204
    (header,) = set_cookie_headers(out)
    cleared = cookie_attributes(header)
    assert cleared["_"] in (f"{SESSION_COOKIE}=", f'{SESSION_COOKIE}=""')
    assert cleared["max-age"] == "0"

    after = await client.get("/auth/me", headers=signed_in.headers(csrf=None))
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "UNAUTHENTICATED"
    body = (await gql_as(client, signed_in, ME)).json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    # Logging out twice, or without a session, is harmless.
    assert (await client.post("/auth/logout", headers=signed_in.headers())).status_code == 204
    assert (await client.post("/auth/logout")).status_code == 204

    async with db.transaction() as session:
        row = await session.scalar(select(AdminSession))
    assert row is not None and row.revoked_at is not None


async def test_a_session_ends_after_its_idle_time(serve: Any, db: Database) -> None:
    client = await serve(session_ttl_seconds=1)
    await make_user(db, "ada@example.com")
    signed_in = await sign_in(client, "ada@example.com")
    assert (await client.get("/auth/me", headers=signed_in.headers())).status_code == 200
    await asyncio.sleep(1.5)
    assert (await client.get("/auth/me", headers=signed_in.headers())).status_code == 401
    body = (await gql_as(client, signed_in, ME)).json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_use_pushes_the_end_forward_up_to_the_maximum_age(db: Database) -> None:
    user = await make_user(db, "ada@example.com")
    idle = sessions.timedelta(hours=12)
    async with db.transaction() as session:
        started = await sessions.start(session, user, idle=idle)
        first_end = started.session.expires_at
    # Used a while later: the end moves to now + idle.
    async with db.transaction() as session:
        await session.execute(
            update(AdminSession).values(
                last_seen_at=text("now() - interval '2 hours'"),
                expires_at=text("now() + interval '10 hours'"),
            )
        )
    async with db.transaction() as session:
        resolved = await sessions.resolve(session, started.token, idle=idle)
    assert resolved is not None and resolved.expires_at >= first_end
    # Never beyond MAX_AGE after sign-in, however busy.
    async with db.transaction() as session:
        await session.execute(
            update(AdminSession).values(
                created_at=text("now() - interval '7 days' + interval '1 hour'"),
                last_seen_at=text("now() - interval '2 hours'"),
            )
        )
    async with db.transaction() as session:
        resolved = await sessions.resolve(session, started.token, idle=idle)
        created = await session.scalar(select(AdminSession.created_at))
    assert resolved is not None and created is not None
    assert resolved.expires_at <= created + sessions.MAX_AGE
    # Past its end: gone.
    async with db.transaction() as session:
        await session.execute(update(AdminSession).values(expires_at=text("now()")))
    async with db.transaction() as session:
        assert await sessions.resolve(session, started.token, idle=idle) is None
        assert await sessions.resolve(session, "not-a-token", idle=idle) is None


# --- CSRF -------------------------------------------------------------------------------------


async def test_csrf_token_is_required_for_cookie_requests(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_user(db, "ada@example.com", "admin")
    signed_in = await sign_in(client, "ada@example.com")
    other = await sign_in(client, "ada@example.com")
    assert other.csrf != signed_in.csrf, "each session has its own token"

    for csrf in (None, "", "wrong", other.csrf, signed_in.csrf + "x"):
        response = await gql_as(client, signed_in, CREATE_ACCOUNT, csrf=csrf, id="csrf-1")
        assert response.status_code == 403, (csrf, response.text)
        assert response.json()["error"]["code"] == "CSRF_FAILED"
        # Reads are refused too: a query over POST is still the session acting.
        read = await gql_as(client, signed_in, ME, csrf=csrf)
        assert read.status_code == 403

    ok = await gql_as(client, signed_in, CREATE_ACCOUNT, id="csrf-1")
    assert ok.status_code == 200
    assert ok.json() == {"data": {"createAccount": {"__typename": "Account"}}}
    # Refused requests changed nothing: the account was created once, by the accepted one.
    owner = GraphQLClient(client)
    assert (await owner.data('{ account(externalId: "csrf-1") { externalId } }'))["account"]


async def test_origin_must_match_the_host_for_cookie_requests(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_user(db, "ada@example.com", "admin")
    signed_in = await sign_in(client, "ada@example.com")
    for origin, status in (
        ("https://evil.example", 403),
        ("null", 403),
        ("http://tollgate.test.evil.example", 403),
        ("http://tollgate.test", 200),
        ("HTTP://Tollgate.Test:80", 200),
        ("https://tollgate.test:443", 200),
        ("http://tollgate.test:8080", 403),
    ):
        response = await client.post(
            "/graphql",
            json={"query": ME},
            headers={**signed_in.headers(), "Origin": origin},
        )
        assert response.status_code == status, (origin, response.text)


async def test_bearer_keys_need_no_csrf_token_and_win_over_a_cookie(
    client: httpx.AsyncClient, db: Database
) -> None:
    await make_user(db, "ada@example.com", "analyst")
    signed_in = await sign_in(client, "ada@example.com")
    response = await client.post(
        "/graphql",
        json={"query": CREATE_ACCOUNT, "variables": {"id": "by-key"}},
        headers={"Authorization": f"Bearer {OWNER_KEY}", "Origin": "https://elsewhere.example"},
    )
    assert response.json() == {"data": {"createAccount": {"__typename": "Account"}}}
    # A key and a cookie: the key decides (an owner, not the analyst of the cookie).
    both = await client.post(
        "/graphql",
        json={"query": ME},
        headers={**signed_in.headers(csrf=None), "Authorization": f"Bearer {OWNER_KEY}"},
    )
    assert both.json() == {"data": {"me": {"name": "bootstrap", "role": "OWNER"}}}
    # A wrong key does not fall back to the cookie.
    wrong = await client.post(
        "/graphql",
        json={"query": ME},
        headers={**signed_in.headers(), "Authorization": "Bearer tgk_wrong"},
    )
    assert [e["extensions"]["code"] for e in wrong.json()["errors"]] == ["UNAUTHENTICATED"]


async def test_a_stale_cookie_is_simply_anonymous(client: httpx.AsyncClient) -> None:
    stale = SignedIn("no-such-session", "whatever", {})
    body = (await gql_as(client, stale, ME, csrf=None)).json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


# --- roles and audit ------------------------------------------------------------------------


async def test_roles_hold_for_signed_in_users_and_the_audit_log_names_them(
    client: httpx.AsyncClient, db: Database
) -> None:
    analyst = await make_user(db, "ana@example.com", "analyst")
    admin = await make_user(db, "adm@example.com", "admin")
    as_analyst = await sign_in(client, "ana@example.com")
    as_admin = await sign_in(client, "adm@example.com")

    me = (await gql_as(client, as_analyst, ME)).json()
    assert me == {"data": {"me": {"name": "ana@example.com", "role": "ANALYST"}}}
    refused = (await gql_as(client, as_analyst, CREATE_ACCOUNT, id="by-analyst")).json()
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    owners_only = (await gql_as(client, as_admin, "{ adminUsers { email } }")).json()
    assert [e["extensions"]["code"] for e in owners_only["errors"]] == ["FORBIDDEN"]

    made = (await gql_as(client, as_admin, CREATE_ACCOUNT, id="by-admin")).json()
    assert made == {"data": {"createAccount": {"__typename": "Account"}}}
    log = await GraphQLClient(client).data(
        "{ auditLog(first: 10) { nodes { actor actorRole operation } } }"
    )
    entries = log["auditLog"]["nodes"]
    assert entries[0] == {
        "actor": f"user:{admin.id}:adm@example.com",
        "actorRole": "admin",
        "operation": "createAccount",
    }
    logins = [e for e in entries if e["operation"] == "login"]
    assert {e["actor"] for e in logins} == {
        f"user:{analyst.id}:ana@example.com",
        f"user:{admin.id}:adm@example.com",
    }


async def test_disabling_a_user_ends_their_sessions_at_once(
    client: httpx.AsyncClient, db: Database
) -> None:
    user = await make_user(db, "ada@example.com", "admin")
    first = await sign_in(client, "ada@example.com")
    second = await sign_in(client, "ada@example.com")
    for signed_in in (first, second):  # both cached as signed in
        assert (await gql_as(client, signed_in, ME)).json()["data"]["me"]["role"] == "ADMIN"

    owner = GraphQLClient(client)
    data = await owner.data(
        "mutation($id: ID!) { disableAdminUser(id: $id) "
        "{ __typename ... on AdminUser { disabled disabledAt } } }",
        id=str(user.id),
    )
    assert data["disableAdminUser"]["__typename"] == "AdminUser"
    assert data["disableAdminUser"]["disabled"] is True

    for signed_in in (first, second):
        body = (await gql_as(client, signed_in, ME)).json()
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
        assert (await client.get("/auth/me", headers=signed_in.headers())).status_code == 401
    again = await client.post(
        "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert again.status_code == 401


async def test_a_new_role_applies_to_open_sessions(client: httpx.AsyncClient, db: Database) -> None:
    user = await make_user(db, "ada@example.com", "admin")
    signed_in = await sign_in(client, "ada@example.com")
    assert (await gql_as(client, signed_in, ME)).json()["data"]["me"]["role"] == "ADMIN"
    data = await GraphQLClient(client).data(
        "mutation($id: ID!) { setAdminUserRole(id: $id, role: ANALYST) "
        "{ __typename ... on AdminUser { role } } }",
        id=str(user.id),
    )
    assert data["setAdminUserRole"] == {"__typename": "AdminUser", "role": "ANALYST"}
    assert (await gql_as(client, signed_in, ME)).json()["data"]["me"]["role"] == "ANALYST"
    refused = (await gql_as(client, signed_in, CREATE_ACCOUNT, id="x")).json()
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]


async def test_another_replica_forgets_a_disabled_users_session(serve: Any, db: Database) -> None:
    """Two apps share the database and Redis; a disable on one ends the session on the other."""
    first, second = await serve(), await serve()
    user = await make_user(db, "ada@example.com", "admin")
    signed_in = await sign_in(first, "ada@example.com")
    assert (await second.get("/auth/me", headers=signed_in.headers())).status_code == 200
    await GraphQLClient(first).data(
        "mutation($id: ID!) { disableAdminUser(id: $id) { __typename } }", id=str(user.id)
    )
    for _ in range(50):
        if (await second.get("/auth/me", headers=signed_in.headers())).status_code == 401:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the other replica still accepts the session")


async def test_ended_sessions_are_purged_a_month_after_they_end(db: Database) -> None:
    from tollgate import jobs

    user = await make_user(db, "ada@example.com")
    async with db.transaction() as session:
        kept = [await sessions.start(session, user, idle=sessions.timedelta(hours=1))]
        for _ in range(4):
            kept.append(await sessions.start(session, user, idle=sessions.timedelta(hours=1)))
    ids = [s.session.id for s in kept]
    async with db.transaction() as session:
        for session_id, change in (
            (ids[0], "expires_at = now() - interval '31 days'"),
            (ids[1], "revoked_at = now() - interval '31 days'"),
            (ids[2], "expires_at = now() - interval '29 days'"),
            (ids[3], "revoked_at = now() - interval '1 day'"),
        ):
            await session.execute(
                text(f"UPDATE admin_sessions SET {change} WHERE id = :id"), {"id": session_id}
            )
    assert await jobs.purge_admin_sessions({"db": db}) == 2
    async with db.transaction() as session:
        left = (await session.scalars(select(AdminSession.id).order_by(AdminSession.id))).all()
    assert list(left) == ids[2:]
