"""Database engine, session factory and the declarative base every domain's models share."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import BigInteger, DateTime, MetaData, Table, func
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tollgate.config import Settings, sqlalchemy_url

# Stable constraint names so Alembic migrations and the models never disagree.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {int: BigInteger, datetime: DateTime(timezone=True)}


class CreatedAt:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


def table_of(model: type) -> Table:
    """A model's Core table: Core statements skip the ORM's per-row work on hot paths, and
    executemany of one cached statement beats building a multi-row VALUES each time."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


# How long a connection keeps a prepared statement before preparing it again. PostgreSQL keeps
# a generic plan for a prepared statement after its first five runs, chosen with the table
# sizes of that moment: one prepared while a table was empty (a fresh install, usage_events
# and reservations on their first day) stays a sequential scan as the table grows, until the
# next ANALYZE. Measured on a fresh database: the lookup of a batch's event ids grew to 2 ms
# and hot-account pairs/s halved within 20 s. Preparing again every few seconds costs one
# round trip per statement and connection, and the new plan sees the table as it is now.
# Planning every run instead (plan_cache_mode = force_custom_plan) also cured it, but cost
# 20-25 % of ingest throughput, most likely by replanning every inserted row's foreign-key check.
STATEMENT_LIFETIME_SECONDS = 10


def create_engine(
    settings: Settings,
    url: str | None = None,
    *,
    statement_lifetime: float = STATEMENT_LIFETIME_SECONDS,
) -> AsyncEngine:
    target = url or settings.database_url
    if not target:
        raise RuntimeError("no database URL: set DATABASE_URL or start the embedded PostgreSQL")
    return create_async_engine(
        sqlalchemy_url(target),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        connect_args={
            # Each business operation is short; a stuck lock must fail rather than hang.
            "server_settings": {"lock_timeout": "10s", "application_name": "tollgate"},
            # Applies to the statements sent to asyncpg directly (every hot-path one).
            "max_cached_statement_lifetime": statement_lifetime,
        },
    )


async def driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under a session, inside the session's transaction.

    Hot paths (metering, ledger bookings) run plain SQL on it: one statement through asyncpg
    costs a fraction of the CPU SQLAlchemy's execution adds around it (measured here: about
    80 µs against 230 to 350 µs), and on a hot account that time is spent holding its row lock.
    SQLAlchemy begins its transaction lazily, on the first statement; begin it here if nothing
    has run yet, or the plain statement would run outside it.
    """
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cast(asyncpg.Connection, cached[1])
    connection = await session.connection()
    adapter: Any = (await connection.get_raw_connection()).dbapi_connection
    if adapter._transaction is None:
        await adapter._start_transaction()
    driver_connection: asyncpg.Connection = adapter.driver_connection
    # Kept for the rest of this transaction: asking the session again costs more than a query.
    session.info[_DRIVER] = (session.sync_session.get_transaction(), driver_connection)
    return driver_connection


_DRIVER = "tollgate.driver"


class Database:
    """Owns the engine; `transaction()` is the one way business operations get a session."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        async with self.sessions.begin() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


_PARAMETER = re.compile(r"\$(\d+)")


def columns(rows: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> list[list[Any]]:
    """Rows as one list per field, in `fields` order: the arrays an INSERT … unnest takes."""
    rows = list(rows)
    return [[row[name] for row in rows] for name in fields]


class Writes:
    """Writes collected from several places and sent as one statement: one round trip.

    Each added statement (an INSERT, UPDATE or DELETE with its own $1..$n parameters) becomes a
    data-modifying WITH query of a single statement, which PostgreSQL runs to completion whether
    or not anything reads it. On a hot account every round trip saved is time its wallet lock is
    not held. All parts see the same snapshot and none sees another's rows, so a row may be
    changed by one part only: callers sum their changes per row first (as LedgerWriter does).
    A `counted` part must end in RETURNING; `run` returns how many rows it gave, by name.
    """

    def __init__(self) -> None:
        self._parts: list[tuple[str, str | None]] = []  # (statement, name to count it under)
        self._args: list[Any] = []

    def add(self, statement: str, *args: Any, counted: str | None = None) -> None:
        offset = len(self._args)
        renumbered = _PARAMETER.sub(lambda m: f"${int(m.group(1)) + offset}", statement)
        self._parts.append((renumbered, counted))
        self._args.extend(args)

    def add_deltas(self, statement: str, deltas: Mapping[int, int]) -> None:
        """`statement` takes ids ($1) and amounts ($2) as arrays; zero changes are left out."""
        changed = [(k, d) for k, d in deltas.items() if d]
        if changed:
            self.add(statement, [k for k, _ in changed], [d for _, d in changed])

    def __bool__(self) -> bool:
        return bool(self._parts)

    async def run(self, session: AsyncSession) -> dict[str, int]:
        """Send everything added so far in the session's transaction; nothing when empty."""
        parts, args = self._parts, self._args
        self._parts, self._args = [], []
        if not parts:
            return {}
        connection = await driver(session)
        # Only our own statements and generated aliases are joined here; values are parameters.
        queries = ",\n".join(f"w{i} AS ({sql})" for i, (sql, _) in enumerate(parts))
        counts = [
            f"(SELECT count(*) FROM w{i})"  # noqa: S608
            for i, (_, name) in enumerate(parts)
            if name
        ]
        row = await connection.fetchrow(
            f"WITH {queries}\nSELECT {', '.join(counts) or '1'}",
            *args,
        )
        totals: dict[str, int] = {}
        for (_, name), count in zip((p for p in parts if p[1]), row, strict=False):
            assert name is not None
            totals[name] = totals.get(name, 0) + int(count)
        return totals
