"""Sign-in sessions of admin users, kept in PostgreSQL (the source of truth).

The browser holds a random token in the `tollgate_session` cookie; the table holds only its
SHA-256, so a leaked table signs nobody in. Each session has its own CSRF token, which the
admin app reads from /auth/login or /auth/me and sends back in `x-csrf-token`.

A session ends when it is revoked (logout, the user disabled), when nobody used it for the idle
time (12 h by default, sliding: each use pushes the end forward, written at most once a
minute), and at the latest MAX_AGE after sign-in, however busy.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.auth.models import AdminSession, AdminUser
from tollgate.auth.service import Principal, Role, hash_secret

MAX_AGE = timedelta(days=7)
# Ended sessions are deleted this long after their end (they show who was signed in when).
KEEP_ENDED = timedelta(days=30)
# A session's end moves forward at most this often, so reads do not each become a write.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Started:
    token: str
    session: AdminSession


def user_principal(user: AdminUser, session: AdminSession | None = None) -> Principal:
    return Principal(
        kind="user",
        id=user.id,
        name=user.email,
        role=Role.parse(user.role),
        session_id=session.id if session is not None else None,
        csrf_token=session.csrf_token if session is not None else None,
    )


async def start(
    session: AsyncSession,
    user: AdminUser,
    *,
    idle: timedelta,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Started:
    token = secrets.token_urlsafe(32)
    row = AdminSession(
        user_id=user.id,
        token_hash=hash_secret(token),
        csrf_token=secrets.token_urlsafe(32),
        expires_at=func.now() + min(idle, MAX_AGE),
        ip=ip,
        user_agent=(user_agent or "")[:512] or None,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return Started(token, row)


@dataclass(frozen=True)
class Resolved:
    principal: Principal
    expires_at: datetime


async def resolve(session: AsyncSession, token: str, *, idle: timedelta) -> Resolved | None:
    """The signed-in user behind `token` and when the session now ends (pushed forward), or
    None when the token is unknown, revoked, expired or its user disabled."""
    found = (
        await session.execute(
            select(AdminSession, AdminUser)
            .join(AdminUser, AdminUser.id == AdminSession.user_id)
            .where(
                AdminSession.token_hash == hash_secret(token),
                AdminSession.revoked_at.is_(None),
                AdminSession.expires_at > func.now(),
                AdminUser.disabled_at.is_(None),
            )
        )
    ).one_or_none()
    if found is None:
        return None
    row, user = found
    touched = await session.execute(
        update(AdminSession)
        .where(
            AdminSession.id == row.id,
            AdminSession.last_seen_at < func.now() - min(TOUCH_EVERY, idle / 2),
        )
        .values(
            last_seen_at=func.now(),
            expires_at=func.least(func.now() + idle, AdminSession.created_at + MAX_AGE),
        )
        .returning(AdminSession.expires_at)
        .execution_options(synchronize_session=False)
    )
    new_end = touched.scalar_one_or_none()
    return Resolved(user_principal(user, row), new_end or row.expires_at)


async def revoke(session: AsyncSession, token: str) -> int | None:
    """Ends the session of `token`; the id of the session ended, if there was one."""
    ended: int | None = await session.scalar(
        update(AdminSession)
        .where(AdminSession.token_hash == hash_secret(token), AdminSession.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .returning(AdminSession.id)
    )
    return ended


async def purge_ended(session: AsyncSession, keep: timedelta = KEEP_ENDED) -> int:
    """Deletes sessions that ended (expired or revoked) more than `keep` ago."""
    result = await session.execute(
        delete(AdminSession).where(
            or_(
                AdminSession.expires_at < func.now() - keep,
                AdminSession.revoked_at < func.now() - keep,
            )
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
