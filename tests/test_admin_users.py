"""Admin users: the service rules, the owners' GraphQL fields, `tollgate users create`, and the
bootstrap owner from the environment."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tests.admin_helpers import PASSWORD, make_user, sign_in
from tests.conftest import GraphQLClient
from tollgate import cli
from tollgate.app import create_app
from tollgate.auth import passwords, users
from tollgate.auth.models import AdminUser
from tollgate.config import Settings
from tollgate.db import Database
from tollgate.errors import AlreadyExists, NotFound, ValidationFailed

USER_FIELDS = "id email role disabled createdAt disabledAt lastLoginAt"
CREATE = (
    "mutation($input: CreateAdminUserInput!) { createAdminUser(input: $input) { __typename "
    f"... on AdminUser {{ {USER_FIELDS} }} "
    "... on ValidationFailed { field message } ... on AlreadyExists { field message } } }"
)
SET_ROLE = (
    "mutation($id: ID!, $role: AdminRole!) { setAdminUserRole(id: $id, role: $role) { "
    "__typename ... on AdminUser { role } ... on NotFound { id } "
    "... on ValidationFailed { field message } } }"
)
DISABLE = (
    "mutation($id: ID!) { disableAdminUser(id: $id) { __typename "
    "... on AdminUser { disabled } ... on NotFound { id } "
    "... on ValidationFailed { field message } } }"
)


async def count_users(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(AdminUser)) or 0)


# --- service ----------------------------------------------------------------------------------


async def test_emails_are_unique_whatever_their_case(db: Database) -> None:
    created = await make_user(db, "  Ada.Lovelace@Example.COM ")
    assert created.email == "ada.lovelace@example.com"
    assert created.password_hash.startswith("$argon2id$")
    assert passwords.verify_password(created.password_hash, PASSWORD)
    async with db.transaction() as session:
        again = await users.create_user(
            session, email="ADA.LOVELACE@example.com", password=PASSWORD, role="admin"
        )
    assert isinstance(again, AlreadyExists) and again.field == "email"
    assert await count_users(db) == 1


@pytest.mark.parametrize(
    "email, password, role, field",
    [
        ("not-an-email", PASSWORD, "admin", "email"),
        ("@example.com", PASSWORD, "admin", "email"),
        ("ada@", PASSWORD, "admin", "email"),
        ("ada @example.com", PASSWORD, "admin", "email"),
        ("x" * 250 + "@example.com", PASSWORD, "admin", "email"),
        ("ada@example.com", "short", "admin", "password"),
        ("ada@example.com", PASSWORD, "service", "role"),
        ("ada@example.com", PASSWORD, "root", "role"),
    ],
)
async def test_bad_input_is_refused_and_writes_nothing(
    db: Database, email: str, password: str, role: str, field: str
) -> None:
    async with db.transaction() as session:
        refused = await users.create_user(session, email=email, password=password, role=role)
    assert isinstance(refused, ValidationFailed) and refused.field == field, refused
    assert await count_users(db) == 0


async def test_the_last_enabled_owner_stays_an_owner(db: Database) -> None:
    first = await make_user(db, "first@example.com", "owner")
    async with db.transaction() as session:
        demoted = await users.set_role(session, first.id, "admin")
        disabled = await users.disable_user(session, first.id)
    assert isinstance(demoted, ValidationFailed) and demoted.field == "role"
    assert isinstance(disabled, ValidationFailed)
    second = await make_user(db, "second@example.com", "owner")
    async with db.transaction() as session:
        assert isinstance(await users.disable_user(session, first.id), AdminUser)
        # Now `second` is the last enabled owner.
        assert isinstance(await users.set_role(session, second.id, "analyst"), ValidationFailed)
        assert isinstance(await users.set_role(session, 424242, "admin"), NotFound)
        assert isinstance(await users.disable_user(session, 424242), NotFound)


# --- GraphQL ----------------------------------------------------------------------------------


async def test_owners_create_list_change_and_disable_users(
    gql: GraphQLClient, client: httpx.AsyncClient
) -> None:
    created = await gql.data(
        CREATE, input={"email": "Grace@Example.com", "password": PASSWORD, "role": "ADMIN"}
    )
    user = created["createAdminUser"]
    assert user["__typename"] == "AdminUser"
    assert (user["email"], user["role"], user["disabled"]) == ("grace@example.com", "ADMIN", False)
    assert user["lastLoginAt"] is None and user["disabledAt"] is None

    for bad, field in (
        ({"email": "grace@example.com", "password": PASSWORD, "role": "ADMIN"}, "email"),
        ({"email": "nope", "password": PASSWORD, "role": "ADMIN"}, "email"),
        ({"email": "x@example.com", "password": "short", "role": "ADMIN"}, "password"),
        ({"email": "x@example.com", "password": PASSWORD, "role": "SERVICE"}, "role"),
    ):
        refused = (await gql.data(CREATE, input=bad))["createAdminUser"]
        assert refused["__typename"] in ("AlreadyExists", "ValidationFailed"), refused
        assert refused["field"] == field

    await sign_in(client, "grace@example.com")
    listed = (await gql.data(f"{{ adminUsers {{ {USER_FIELDS} }} }}"))["adminUsers"]
    assert [u["email"] for u in listed] == ["grace@example.com"]
    assert listed[0]["lastLoginAt"] is not None

    changed = await gql.data(SET_ROLE, id=user["id"], role="ANALYST")
    assert changed["setAdminUserRole"] == {"__typename": "AdminUser", "role": "ANALYST"}
    refused = await gql.data(SET_ROLE, id=user["id"], role="SERVICE")
    assert refused["setAdminUserRole"]["__typename"] == "ValidationFailed"
    for missing in ("424242", "not-a-number"):
        assert (await gql.data(SET_ROLE, id=missing, role="ADMIN"))["setAdminUserRole"][
            "__typename"
        ] == "NotFound"
        assert (await gql.data(DISABLE, id=missing))["disableAdminUser"]["__typename"] == (
            "NotFound"
        )
    disabled = await gql.data(DISABLE, id=user["id"])
    assert disabled["disableAdminUser"] == {"__typename": "AdminUser", "disabled": True}

    audit = await gql.data("{ auditLog(first: 20) { nodes { actor operation input result } } }")
    by_operation = {}
    for entry in audit["auditLog"]["nodes"]:
        by_operation.setdefault(entry["operation"], []).append(entry)
    assert set(by_operation) >= {"createAdminUser", "setAdminUserRole", "disableAdminUser"}
    newest_create = by_operation["createAdminUser"][-1]
    assert newest_create["input"] == {"email": "grace@example.com", "role": "admin"}
    assert newest_create["result"]["type"] == "AdminUser"
    assert newest_create["actor"].startswith("key:")
    # The password never reaches the audit log, not even as a refusal's input.
    assert PASSWORD not in str(audit)


# --- CLI and bootstrap ------------------------------------------------------------------------


def run_cli(settings: Settings, *args: str, stdin: str | None = None) -> tuple[int, str]:
    env = {"DATABASE_URL": settings.database_url or "", "TOLLGATE_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(cli.main, list(args), input=stdin, env=env)
    return result.exit_code, result.output


async def test_users_create_from_stdin_and_prompt(settings: Settings, db: Database) -> None:
    import asyncio

    code, output = await asyncio.to_thread(
        run_cli,
        settings,
        "users",
        "create",
        "--email",
        "Ops@Example.com",
        "--role",
        "owner",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0, output
    assert "created owner ops@example.com" in output
    assert PASSWORD not in output

    code, output = await asyncio.to_thread(
        run_cli,
        settings,
        "users",
        "create",
        "--email",
        "viewer@example.com",
        "--role",
        "analyst",
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert code == 0, output

    async with db.transaction() as session:
        found = {u.email: u for u in await users.list_users(session)}
    assert found["ops@example.com"].role == "owner"
    assert found["viewer@example.com"].role == "analyst"
    assert passwords.verify_password(found["viewer@example.com"].password_hash, PASSWORD)

    for args, stdin, needle in (
        (("--email", "ops@example.com", "--role", "admin"), PASSWORD, "exists"),
        (("--email", "new@example.com", "--role", "admin"), "short", "12 characters"),
        (("--email", "bad", "--role", "admin"), PASSWORD, "not an email"),
        (("--email", "new@example.com", "--role", "service"), PASSWORD, "service"),
    ):
        code, output = await asyncio.to_thread(
            run_cli, settings, "users", "create", *args, "--password-stdin", stdin=stdin + "\n"
        )
        assert code != 0 and needle in output, output
    assert await count_users(db) == 2


async def test_bootstrap_owner_from_the_environment_is_created_once(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_BOOTSTRAP_ADMIN_EMAIL", "Root@Example.com")
    monkeypatch.setenv("TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
    from_env = Settings.from_env()
    assert from_env.bootstrap_admin_email == "Root@Example.com"
    assert PASSWORD not in repr(from_env)
    configured = dataclasses.replace(
        settings,
        bootstrap_admin_email=from_env.bootstrap_admin_email,
        bootstrap_admin_password=from_env.bootstrap_admin_password,
    )
    for _ in range(2):  # a restart changes nothing
        app = create_app(configured)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as c:
                signed_in = await sign_in(c, "root@example.com")
                assert signed_in.body["user"] == {"email": "root@example.com", "role": "owner"}
    assert await count_users(db) == 1

    # An existing user is left as it is, even when the variables change.
    changed = dataclasses.replace(configured, bootstrap_admin_password="another password 123")
    app = create_app(changed)
    async with app.router.lifespan_context(app):
        pass
    async with db.transaction() as session:
        stored = await users.find_by_email(session, "root@example.com")
    assert stored is not None and passwords.verify_password(stored.password_hash, PASSWORD)


@pytest.mark.parametrize(
    "email, password",
    [("root@example.com", None), (None, PASSWORD), ("root@example.com", "short")],
)
async def test_a_bad_bootstrap_user_stops_the_start(
    settings: Settings, email: str | None, password: str | None
) -> None:
    app = create_app(
        dataclasses.replace(
            settings, bootstrap_admin_email=email, bootstrap_admin_password=password
        )
    )
    with pytest.raises((RuntimeError, ValueError)):
        async with app.router.lifespan_context(app):
            pass
