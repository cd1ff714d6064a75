"""Real PostgreSQL and Redis for every test: the URLs in DATABASE_URL / REDIS_URL when set,
otherwise embedded servers started once per run. Each test starts from empty tables."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from tollgate import migrate
from tollgate.app import create_app
from tollgate.config import Settings, sqlalchemy_url
from tollgate.db import Database, create_engine
from tollgate.models import metadata
from tollgate.runtime.embedded import embedded_services

OWNER_KEY = "tgk_test_owner_" + "x" * 32
TEST_DB_SUFFIX = "_tollgate_tests"


def _plain(url: str) -> str:
    """asyncpg wants postgresql://, SQLAlchemy postgresql+asyncpg://."""
    return sqlalchemy_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


async def _recreate_database(url: str) -> str:
    """A fresh database beside the one `url` names, so tests never touch real data."""
    parsed = make_url(sqlalchemy_url(url))
    test_db = (parsed.database or "postgres") + TEST_DB_SUFFIX
    admin = await asyncpg.connect(_plain(url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{test_db}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{test_db}"')
    finally:
        await admin.close()
    return parsed.set(database=test_db).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def service_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    db_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if db_url and redis_url:
        yield db_url, redis_url
        return
    with embedded_services(
        tmp_path_factory.mktemp("services"), postgres=not db_url, redis=not redis_url
    ) as (embedded_db, embedded_redis):
        yield db_url or embedded_db or "", redis_url or embedded_redis or ""


@pytest.fixture(scope="session")
async def settings(
    service_urls: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    db_url, redis_url = service_urls
    test_url = await _recreate_database(db_url)
    import asyncio

    await asyncio.to_thread(migrate.upgrade, test_url)
    return Settings(
        database_url=test_url,
        redis_url=redis_url,
        env="dev",
        bootstrap_admin_key=OWNER_KEY,
        # Never the working directory's .tollgate: a test must not leave files in the repo.
        data_dir=tmp_path_factory.mktemp("data"),
        secret_key=Fernet.generate_key().decode(),
        db_pool_size=20,
        db_max_overflow=30,
    )


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(create_engine(settings))
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url or "")
    yield client
    await client.aclose()


# Every table the models declare, so a new domain's rows never leak between tests.
TABLES = ", ".join(t.name for t in metadata.sorted_tables)


async def reset_database(url: str) -> None:
    conn = await asyncpg.connect(_plain(url))
    try:
        # Replica role skips the ledger's append-only triggers: only tests wipe the ledger.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        await conn.execute(
            "INSERT INTO wallets (id, kind, code) VALUES"
            " (-1, 'SYSTEM', 'issuance'), (-2, 'SYSTEM', 'consumption'), (-3, 'SYSTEM', 'expiry')"
        )
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
async def clean(settings: Settings, redis: Redis) -> None:
    assert settings.database_url is not None
    await reset_database(settings.database_url)
    # Ids restart with the tables; rate windows keyed by them must not outlive their test.
    await redis.flushdb()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tollgate.test") as c:
        yield c


class GraphQLClient:
    """Posts operations with a key (or other headers, such as a signed-in browser's cookie and
    CSRF token); `data()` fails the test on any GraphQL error."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        key: str | None = OWNER_KEY,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.http, self.key, self.headers = http, key, headers or {}

    def as_key(self, key: str | None) -> GraphQLClient:
        return GraphQLClient(self.http, key)

    def with_headers(self, headers: dict[str, str]) -> GraphQLClient:
        """No key: these headers alone say who is calling."""
        return GraphQLClient(self.http, None, headers)

    async def execute(self, query: str, **variables: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={**headers, **self.headers},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, **variables: Any) -> dict[str, Any]:
        body = await self.execute(query, **variables)
        assert not body.get("errors"), body["errors"]
        result: dict[str, Any] = body["data"]
        return result


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)


def new_key() -> str:
    return str(uuid.uuid4())


ROOT = Path(__file__).resolve().parent.parent


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Show figures tests recorded (schemathesis' case count) in every run's summary."""
    for report in terminalreporter.getreports("passed") + terminalreporter.getreports("failed"):
        for name, value in getattr(report, "user_properties", []):
            terminalreporter.write_line(f"{report.nodeid}: {name} = {value}")
