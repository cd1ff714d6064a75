"""Settings read from the environment, once, at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# The admin app's build output in a source checkout (frontend/admin/dist beside backend/).
DEFAULT_ADMIN_DIST = Path(__file__).resolve().parents[2] / "frontend" / "admin" / "dist"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = field(default_factory=lambda: Path(".tollgate"))
    env: str = "dev"
    bootstrap_admin_key: str | None = None
    # A first owner who signs in with a password; created once, never changed afterwards.
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: str | None = field(default=None, repr=False)
    # A signed-in session ends after this long without a request (sliding).
    session_ttl_seconds: int = 12 * 3600
    # The built admin app (index.html and assets/), served at /admin.
    admin_dist: Path = DEFAULT_ADMIN_DIST
    # Idempotency keys are kept at least this long (Stripe keeps them 24 h; we keep a week).
    idempotency_retention_days: int = 7
    db_pool_size: int = 20
    db_max_overflow: int = 20
    # What one credit is worth, in micro-USD (1e-6 USD): 1,000 means 1 credit = $0.001.
    credit_value_micros: int = 1_000
    # A hold not settled or released by then lets go of its credits by itself.
    hold_ttl_seconds: int = 600
    # Fernet key(s) that encrypt stored provider secrets; comma-separated, newest first, to
    # rotate (tollgate.crypto). Unset in dev: a key is generated under data_dir.
    secret_key: str | None = field(default=None, repr=False)
    # Seed the demo tiers and customers at start and keep synthetic usage flowing.
    demo: bool = False
    # Subscriptions (graphql-transport-ws): a connection that sends no connection_init within
    # this many seconds is closed 4408; at most this many operations run on one connection.
    ws_init_timeout_seconds: float = 3.0
    ws_max_subscriptions: int = 20
    # Events buffered per subscription; a subscriber that falls further behind loses the oldest.
    live_queue_size: int = 1_000

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            redis_url=os.environ.get("REDIS_URL") or None,
            data_dir=Path(os.environ.get("TOLLGATE_DATA_DIR") or ".tollgate"),
            env=os.environ.get("TOLLGATE_ENV") or "dev",
            bootstrap_admin_key=os.environ.get("TOLLGATE_BOOTSTRAP_ADMIN_KEY") or None,
            bootstrap_admin_email=os.environ.get("TOLLGATE_BOOTSTRAP_ADMIN_EMAIL") or None,
            bootstrap_admin_password=os.environ.get("TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD") or None,
            session_ttl_seconds=max(60, _int("TOLLGATE_SESSION_TTL_SECONDS", 12 * 3600)),
            admin_dist=Path(os.environ.get("TOLLGATE_ADMIN_DIST") or DEFAULT_ADMIN_DIST),
            idempotency_retention_days=max(7, _int("TOLLGATE_IDEMPOTENCY_RETENTION_DAYS", 7)),
            db_pool_size=_int("TOLLGATE_DB_POOL_SIZE", 20),
            db_max_overflow=_int("TOLLGATE_DB_MAX_OVERFLOW", 20),
            credit_value_micros=_int("TOLLGATE_CREDIT_VALUE_MICROS", 1_000),
            hold_ttl_seconds=_int("TOLLGATE_HOLD_TTL_SECONDS", 600),
            secret_key=os.environ.get("TOLLGATE_SECRET_KEY") or None,
            demo=os.environ.get("TOLLGATE_DEMO", "").lower() in ("1", "true", "yes"),
            ws_init_timeout_seconds=max(0.1, _float("TOLLGATE_WS_INIT_TIMEOUT_SECONDS", 3.0)),
            ws_max_subscriptions=max(1, _int("TOLLGATE_WS_MAX_SUBSCRIPTIONS", 20)),
            live_queue_size=max(1, _int("TOLLGATE_LIVE_QUEUE_SIZE", 1_000)),
        )


def sqlalchemy_url(url: str) -> str:
    """Accept plain postgres:// URLs and point them at the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, got {url.split(':', 1)[0]}://…")
