"""Virtual keys: created for an account, shown once, stored hashed, revocable, optionally
carrying the end user's own provider key (BYOK, stored encrypted).

`authenticate_virtual_key` is the gateway's look-up (through VirtualKeyCache on the hot path).
A key's spend is kept by metering, in the transaction that books each call made with it.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account
from tollgate.accounts.service import get_account
from tollgate.apikeys.models import ApiKey
from tollgate.auth.service import hash_secret
from tollgate.crypto import SecretBox, SecretKeyMissing
from tollgate.errors import AccountNotFound, NotFound, ValidationFailed
from tollgate.providers.validation import (
    check_name,
    check_patterns,
    check_secret,
    matches,
    unique,
)

KEY_PREFIX = "tg-"
# token_urlsafe(32) gives 43 characters; anything much longer is not one of ours.
MAX_SECRET_LENGTH = 128
MAX_NAME = 200
MAX_RPM = 100_000
# last_used_at is written at most this often per key, so use does not mean a write per call.
TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class NewApiKey:
    account_external_id: str
    name: str
    expires_at: datetime | None = None
    allowed_models: tuple[str, ...] | None = None
    rpm_limit: int | None = None
    byok_provider: str | None = None
    byok_provider_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CreatedApiKey:
    key: ApiKey
    account_external_id: str
    secret: str = field(repr=False)

    @property
    def id(self) -> int:
        """Named like a row's id so the audit log keeps which key was made."""
        return self.key.id


@dataclass(frozen=True)
class VirtualKey:
    """An authenticated key as the gateway needs it."""

    id: int
    account_id: int
    account_external_id: str
    allowed_models: tuple[str, ...] | None
    rpm_limit: int | None
    byok_provider: str | None
    byok_secret: str | None = field(repr=False)  # decrypted
    expires_at: datetime | None = None

    def allows(self, model: str) -> bool:
        return self.allowed_models is None or matches(model, self.allowed_models)


def _display_prefix(secret: str) -> str:
    return secret[:12]


def _check(new: NewApiKey, now: datetime) -> ValidationFailed | None:
    if not new.name.strip():
        return ValidationFailed("name", "a key needs a name")
    if len(new.name) > MAX_NAME or not new.name.isprintable():
        return ValidationFailed("name", f"at most {MAX_NAME} printable characters")
    if new.expires_at is not None:
        if new.expires_at.tzinfo is None:
            return ValidationFailed("expiresAt", "must carry a timezone")
        if new.expires_at <= now:
            return ValidationFailed("expiresAt", "must be in the future")
    if new.allowed_models is not None and (
        invalid := check_patterns("allowedModels", new.allowed_models)
    ):
        return invalid
    if new.rpm_limit is not None and not 1 <= new.rpm_limit <= MAX_RPM:
        return ValidationFailed("rpmLimit", f"between 1 and {MAX_RPM}, or null for no limit")
    if (new.byok_provider is None) != (new.byok_provider_key is None):
        return ValidationFailed(
            "byokProvider", "give byokProvider and byokProviderKey together, or neither"
        )
    if new.byok_provider is not None and (invalid := check_name("byokProvider", new.byok_provider)):
        return invalid
    if new.byok_provider_key is not None and (
        invalid := check_secret("byokProviderKey", new.byok_provider_key.strip())
    ):
        return invalid
    return None


async def create_api_key(
    session: AsyncSession,
    new: NewApiKey,
    *,
    crypto: SecretBox,
    now: datetime,
    created_by: str = "",
) -> CreatedApiKey | ValidationFailed | AccountNotFound:
    if (invalid := _check(new, now)) is not None:
        return invalid
    account = await get_account(session, new.account_external_id)
    if account is None:
        return AccountNotFound(new.account_external_id)
    byok_secret = None
    if new.byok_provider_key is not None:
        try:
            byok_secret = crypto.encrypt(new.byok_provider_key.strip())
        except SecretKeyMissing as missing:
            return ValidationFailed("byokProviderKey", str(missing))
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        account_id=account.id,
        name=new.name.strip(),
        key_hash=hash_secret(secret),
        prefix=_display_prefix(secret),
        created_by=created_by,
        expires_at=new.expires_at,
        allowed_models=None if new.allowed_models is None else list(unique(new.allowed_models)),
        rpm_limit=new.rpm_limit,
        byok_provider=new.byok_provider,
        byok_secret=byok_secret,
        spend_credits=0,
    )
    session.add(key)
    await session.flush()
    return CreatedApiKey(key, account.external_id, secret)


async def revoke_api_key(session: AsyncSession, key_id: int) -> ApiKey | NotFound:
    """Revoking twice keeps the first revocation time."""
    key = await session.get(ApiKey, key_id, with_for_update=True)
    if key is None:
        return NotFound(str(key_id), "no API key with this id")
    if key.revoked_at is None:
        key.revoked_at = await session.scalar(select(func.now()))
        await session.flush()
    return key


async def list_api_keys(session: AsyncSession, account_id: int) -> Sequence[ApiKey]:
    """Every key of the account, revoked and expired ones too, oldest first."""
    query = select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.id)
    return (await session.scalars(query)).all()


async def account_external_id(session: AsyncSession, account_id: int) -> str:
    found = await session.scalar(select(Account.external_id).where(Account.id == account_id))
    assert found is not None, "api_keys.account_id is a foreign key"
    return found


async def authenticate_virtual_key(
    session: AsyncSession, secret: str, now: datetime, *, crypto: SecretBox
) -> VirtualKey | None:
    """The key with this secret, when it is neither revoked nor expired at `now`; else None.

    Raises tollgate.crypto.DecryptionFailed when the key's BYOK secret cannot be decrypted:
    answering without it would bill the call to the operator's own provider key.
    """
    if not secret.startswith(KEY_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return None
    digest = hash_secret(secret)
    row = (
        await session.execute(
            select(
                ApiKey.id,
                ApiKey.key_hash,
                ApiKey.account_id,
                Account.external_id,
                ApiKey.expires_at,
                ApiKey.revoked_at,
                ApiKey.allowed_models,
                ApiKey.rpm_limit,
                ApiKey.byok_provider,
                ApiKey.byok_secret,
            )
            .join(Account, Account.id == ApiKey.account_id)
            .where(ApiKey.key_hash == digest)
        )
    ).one_or_none()
    # The index lookup already matched; the constant-time compare keeps timing independent of
    # where two digests differ should the lookup ever become a scan.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    byok_secret = crypto.decrypt(row.byok_secret) if row.byok_secret is not None else None
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == row.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - TOUCH_INTERVAL),
        )
        .values(last_used_at=now)
    )
    return VirtualKey(
        id=row.id,
        account_id=row.account_id,
        account_external_id=row.external_id,
        allowed_models=None if row.allowed_models is None else tuple(row.allowed_models),
        rpm_limit=row.rpm_limit,
        byok_provider=row.byok_provider,
        byok_secret=byok_secret,
        expires_at=row.expires_at,
    )
