"""Admin API keys: created with a role, shown once, stored hashed, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import IntEnum
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.auth.models import ROLES, AdminApiKey
from tollgate.errors import NotFound, ValidationFailed

KEY_PREFIX = "tgk_"


class Role(IntEnum):
    """Ordered so that a higher role may do everything a lower one may. SERVICE, for the SaaS
    backend, ranks below ANALYST: it may meter usage but read nothing."""

    SERVICE = 0
    ANALYST = 1
    ADMIN = 2
    OWNER = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


PrincipalKind = Literal["key", "user"]


@dataclass(frozen=True)
class Principal:
    """Who is calling, with the role every permission check looks at: an admin key (`kind`
    "key", its id and name) or a person signed in to the admin app ("user", id and email).

    A user's principal also carries the session it came with: requests authenticated by the
    session cookie must echo `csrf_token` before they may change anything."""

    kind: PrincipalKind
    id: int
    name: str
    role: Role
    session_id: int | None = None
    csrf_token: str | None = field(default=None, repr=False, compare=False)

    @property
    def actor(self) -> str:
        """How the audit log and the ledger name this caller: key:<id>:<name>, user:<id>:<email>."""
        return f"{self.kind}:{self.id}:{self.name}"

    @property
    def via_session(self) -> bool:
        return self.session_id is not None


@dataclass(frozen=True)
class CreatedKey:
    key: AdminApiKey
    secret: str


def parse_bearer(value: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None for any other shape."""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _display_prefix(secret: str) -> str:
    return secret[:12]


async def create_key(
    session: AsyncSession, *, name: str, role: str, created_by: str = ""
) -> CreatedKey | ValidationFailed:
    if not name.strip():
        return ValidationFailed("name", "a key needs a name")
    if role.lower() not in ROLES:
        return ValidationFailed("role", "role must be one of " + ", ".join(ROLES))
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = AdminApiKey(
        name=name.strip(),
        role=role.lower(),
        key_hash=hash_secret(secret),
        prefix=_display_prefix(secret),
        created_by=created_by,
    )
    session.add(key)
    await session.flush()
    return CreatedKey(key, secret)


async def ensure_bootstrap_key(session: AsyncSession, secret: str) -> None:
    """An owner key with exactly this secret exists afterwards; running it again changes nothing."""
    await session.execute(
        insert(AdminApiKey)
        .values(
            name="bootstrap",
            role="owner",
            key_hash=hash_secret(secret),
            prefix=_display_prefix(secret),
            created_by="TOLLGATE_BOOTSTRAP_ADMIN_KEY",
        )
        .on_conflict_do_nothing(index_elements=["key_hash"])
    )


async def authenticate(session: AsyncSession, secret: str) -> Principal | None:
    digest = hash_secret(secret)
    key = await session.scalar(
        select(AdminApiKey).where(AdminApiKey.key_hash == digest, AdminApiKey.revoked_at.is_(None))
    )
    # The index lookup already matched; the constant-time compare keeps timing independent of
    # where two digests differ should the lookup ever become a scan.
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        return None
    # Touch last_used_at at most once a minute so reads do not turn into a write per request.
    await session.execute(
        update(AdminApiKey)
        .where(
            AdminApiKey.id == key.id,
            (AdminApiKey.last_used_at.is_(None))
            | (AdminApiKey.last_used_at < func.now() - timedelta(minutes=1)),
        )
        .values(last_used_at=func.now())
    )
    return Principal(kind="key", id=key.id, name=key.name, role=Role.parse(key.role))


async def revoke_key(session: AsyncSession, key_id: int) -> AdminApiKey | NotFound:
    key = await session.get(AdminApiKey, key_id, with_for_update=True)
    if key is None:
        return NotFound(str(key_id), "no admin key with this id")
    if key.revoked_at is None:
        key.revoked_at = await session.scalar(select(func.now()))
        await session.flush()
    return key


async def list_keys(session: AsyncSession) -> Sequence[AdminApiKey]:
    return (await session.scalars(select(AdminApiKey).order_by(AdminApiKey.id))).all()
