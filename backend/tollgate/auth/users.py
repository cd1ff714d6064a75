"""Admin users: people who sign in to the admin app with an email and a password.

Emails are stored lower-cased (unique whatever the case people type); passwords only as
argon2id hashes. A user has the same roles as a key, except "service". Disabling a user ends
every session they have at once; a disabled user can never sign in again. The last enabled
owner can be neither disabled nor demoted, so the team never locks itself out of user management.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.auth import passwords
from tollgate.auth.models import USER_ROLES, AdminSession, AdminUser
from tollgate.errors import AlreadyExists, NotFound, ValidationFailed

MAX_EMAIL_LENGTH = 254


def normalize_email(raw: str) -> str:
    return raw.strip().lower()


def email_problem(email: str) -> str | None:
    """Why this (normalized) address is refused, or None. Deliberately simple: an @ with
    something on both sides and no spaces (admin@localhost is fine); the real test is the person
    signing in."""
    local, at, domain = email.rpartition("@")
    if len(email) > MAX_EMAIL_LENGTH:
        return f"an email address has at most {MAX_EMAIL_LENGTH} characters"
    if not at or not local or not domain or any(c.isspace() for c in email):
        return "not an email address"
    return None


def role_problem(role: str) -> str | None:
    if role.lower() not in USER_ROLES:
        return "a user's role is one of " + ", ".join(USER_ROLES)
    return None


async def create_user(
    session: AsyncSession, *, email: str, password: str, role: str, created_by: str = ""
) -> AdminUser | ValidationFailed | AlreadyExists:
    address = normalize_email(email)
    if problem := email_problem(address):
        return ValidationFailed("email", problem)
    if problem := role_problem(role):
        return ValidationFailed("role", problem)
    if problem := passwords.password_problem(password):
        return ValidationFailed("password", problem)
    password_hash = await passwords.hash_password_async(password)
    user_id = await session.scalar(
        insert(AdminUser)
        .values(
            email=address, password_hash=password_hash, role=role.lower(), created_by=created_by
        )
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(AdminUser.id)
    )
    if user_id is None:
        return AlreadyExists("email", "a user with this email exists")
    user = await session.get(AdminUser, user_id)
    assert user is not None
    return user


async def ensure_bootstrap_user(session: AsyncSession, email: str, password: str) -> bool:
    """An owner with this email exists afterwards; True when it was created now. An existing
    user is left exactly as it is (password, role, disabled), so the variables can stay set."""
    address = normalize_email(email)
    if await find_by_email(session, address) is not None:
        return False
    created = await create_user(
        session,
        email=address,
        password=password,
        role="owner",
        created_by="TOLLGATE_BOOTSTRAP_ADMIN_EMAIL",
    )
    if isinstance(created, ValidationFailed):
        raise ValueError(f"bootstrap admin user: {created.field}: {created.message}")
    # AlreadyExists: another replica created it a moment ago; that is the same outcome.
    return isinstance(created, AdminUser)


async def find_by_email(session: AsyncSession, email: str) -> AdminUser | None:
    return await session.scalar(select(AdminUser).where(AdminUser.email == normalize_email(email)))


async def list_users(session: AsyncSession) -> Sequence[AdminUser]:
    return (await session.scalars(select(AdminUser).order_by(AdminUser.id))).all()


async def _locked(session: AsyncSession, user_id: int) -> AdminUser | None:
    return await session.get(AdminUser, user_id, with_for_update=True)


async def _is_last_owner(session: AsyncSession, user: AdminUser) -> bool:
    """Whether `user` is the only enabled owner. Locks every enabled owner row, so two owners
    demoting or disabling each other at the same moment cannot both succeed."""
    if user.role != "owner" or user.disabled_at is not None:
        return False
    owners = (
        await session.scalars(
            select(AdminUser.id)
            .where(AdminUser.role == "owner", AdminUser.disabled_at.is_(None))
            .with_for_update()
        )
    ).all()
    return list(owners) == [user.id]


async def set_role(
    session: AsyncSession, user_id: int, role: str
) -> AdminUser | NotFound | ValidationFailed:
    if problem := role_problem(role):
        return ValidationFailed("role", problem)
    user = await _locked(session, user_id)
    if user is None:
        return NotFound(str(user_id), "no admin user with this id")
    if role.lower() != "owner" and await _is_last_owner(session, user):
        return ValidationFailed("role", "the last enabled owner keeps the owner role")
    user.role = role.lower()
    await session.flush()
    return user


async def disable_user(
    session: AsyncSession, user_id: int
) -> AdminUser | NotFound | ValidationFailed:
    """Disables the user and ends all their sessions; disabling twice keeps the first time."""
    user = await _locked(session, user_id)
    if user is None:
        return NotFound(str(user_id), "no admin user with this id")
    if await _is_last_owner(session, user):
        return ValidationFailed("id", "the last enabled owner cannot be disabled")
    if user.disabled_at is None:
        user.disabled_at = await session.scalar(select(func.now()))
    await session.execute(
        update(AdminSession)
        .where(AdminSession.user_id == user.id, AdminSession.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    await session.flush()
    return user
