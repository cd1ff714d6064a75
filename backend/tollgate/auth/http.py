"""Who is calling over HTTP, and the sign-in routes of the admin app.

    POST /auth/login   {"email", "password"} -> 200 {"user": {"email", "role"}, "csrfToken"}
                       and the session cookie; 401 INVALID_CREDENTIALS; 429 RATE_LIMITED
    POST /auth/logout  ends the session of the cookie (if any) and clears it -> 204
    GET  /auth/me      -> 200 like login, or 401 UNAUTHENTICATED

Errors are JSON: {"error": {"code": ..., "message": ...}}.

A request is authenticated by `authenticate_request`: an admin key in `Authorization: Bearer`
when that header is sent (then it alone decides), else the `tollgate_session` cookie. A caller
that came with the cookie must pass `csrf_refusal` before it may change anything: the header
`x-csrf-token` must equal its session's CSRF token, and an `Origin` header, when sent, must name
this host. Keys are not sent by browsers on their own, so requests with a key need neither.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from starlette.datastructures import State
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tollgate.audit import service as audit
from tollgate.auth import passwords, sessions, users
from tollgate.auth.cache import PrincipalCache
from tollgate.auth.models import AdminUser
from tollgate.auth.service import Principal, parse_bearer
from tollgate.auth.throttle import LoginThrottle

log = logging.getLogger(__name__)

SESSION_COOKIE = "tollgate_session"
CSRF_HEADER = "x-csrf-token"
MAX_BODY_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store"}


def bearer_token(request: HTTPConnection) -> str | None:
    return parse_bearer(request.headers.get("authorization", ""))


def _sends_authorization(request: HTTPConnection) -> bool:
    return "authorization" in request.headers


async def authenticate_request(state: State, request: HTTPConnection) -> Principal | None:
    """Who is calling: the admin key of `Authorization: Bearer <key>`, or, when no
    Authorization header is sent, the signed-in user of the session cookie; None for nobody.

    Works for a plain request and for a websocket handshake alike. A principal from the cookie
    has `via_session` set; before a state-changing request runs, check `csrf_refusal`."""
    principals: PrincipalCache = state.principals
    if _sends_authorization(request):
        token = bearer_token(request)
        return None if token is None else await principals.authenticate(token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    return await principals.session(cookie)


def _authority(host: str, scheme: str) -> str:
    """host[:port] lower-cased, without the scheme's default port."""
    host = host.strip().lower()
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return host.removesuffix(default) if default else host


def origin_refusal(request: HTTPConnection) -> str | None:
    """Why the request's Origin is refused: it must name the host the request was sent to (the
    Host header, so a proxy in front must pass it on). None when it matches or none was sent."""
    origin = request.headers.get("origin")
    if origin is None:
        return None
    try:
        parts = urlsplit(origin)
    except ValueError:
        return f"origin {origin!r} does not match this host"
    scheme = parts.scheme.lower()
    origin_host = _authority(parts.netloc, scheme)
    host = request.headers.get("host", "")
    # The Host header does not say the scheme: accept this host with either default port left out.
    if not origin_host or origin_host not in {_authority(host, "http"), _authority(host, "https")}:
        return f"origin {origin!r} does not match this host"
    return None


def csrf_refusal(request: HTTPConnection, principal: Principal | None) -> str | None:
    """Why a state-changing request from this caller is refused; None when it may run."""
    if principal is None or not principal.via_session:
        return None
    if refusal := origin_refusal(request):
        return refusal
    sent = request.headers.get(CSRF_HEADER, "")
    expected = principal.csrf_token or ""
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return f"send the session's CSRF token in the {CSRF_HEADER} header"
    return None


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
    )


def csrf_error(reason: str) -> Response:
    return error(403, "CSRF_FAILED", reason)


def _signed_in(principal: Principal) -> Response:
    return JSONResponse(
        {
            "user": {"email": principal.name, "role": principal.role.label},
            "csrfToken": principal.csrf_token,
        },
        headers=NO_STORE,
    )


def _client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def _credentials(request: Request) -> tuple[str, str] | Response:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return error(413, "TOO_LARGE", f"at most {MAX_BODY_BYTES} bytes")
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return error(400, "BAD_REQUEST", 'send JSON: {"email": "...", "password": "..."}')
    if not isinstance(body, dict):
        return error(400, "BAD_REQUEST", 'send JSON: {"email": "...", "password": "..."}')
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        return error(400, "BAD_REQUEST", "email and password are both required strings")
    return email, password


def _set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=not request.app.state.settings.is_dev,
        path="/",
    )


def _clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        httponly=True,
        samesite="strict",
        secure=not request.app.state.settings.is_dev,
        path="/",
    )


async def login(request: Request) -> Response:
    if refusal := origin_refusal(request):
        return csrf_error(refusal)
    parsed = await _credentials(request)
    if isinstance(parsed, Response):
        return parsed
    email, password = parsed
    state = request.app.state
    throttle: LoginThrottle = state.login_throttle
    ip = _client_ip(request)
    if (wait := await throttle.attempt(email, ip)) is not None:
        return error(
            429,
            "RATE_LIMITED",
            f"too many sign-in attempts; try again in {wait} seconds",
            {"Retry-After": str(wait)},
        )

    async with state.db.transaction() as session:
        user = await users.find_by_email(session, email)
    usable = user is not None and user.disabled_at is None
    # Always one argon2 verification, against a dummy hash when there is no usable user, so
    # the time taken does not tell which addresses have an account.
    ok = await passwords.verify_password_async(
        user.password_hash if usable and user is not None else None, password
    )
    if not ok or user is None:
        log.info("sign-in refused for %s from %s", users.normalize_email(email)[:64], ip)
        return error(401, "INVALID_CREDENTIALS", "wrong email or password")

    new_hash = None
    if passwords.needs_rehash(user.password_hash):
        new_hash = await passwords.hash_password_async(password)
    principals: PrincipalCache = state.principals
    old_token = request.cookies.get(SESSION_COOKIE)
    async with state.db.transaction() as session:
        row = await session.get(AdminUser, user.id, with_for_update=True)
        if row is None or row.disabled_at is not None:  # disabled in the meantime
            return error(401, "INVALID_CREDENTIALS", "wrong email or password")
        if new_hash is not None:
            row.password_hash = new_hash
        row.last_login_at = await session.scalar(select(func.now()))
        if old_token:
            await sessions.revoke(session, old_token)
        started = await sessions.start(
            session,
            row,
            idle=principals.session_idle,
            ip=ip,
            user_agent=request.headers.get("user-agent"),
        )
        principal = sessions.user_principal(row, started.session)
        await audit.record(
            session,
            actor=principal.actor,
            actor_role=principal.role.label,
            operation="login",
            input={"email": row.email, "ip": ip},
            result={"type": "Session", "id": str(started.session.id)},
        )
    await throttle.succeeded(email, ip)
    if old_token:
        await principals.sessions_changed()
    response = _signed_in(principal)
    _set_session_cookie(request, response, started.token)
    return response


async def logout(request: Request) -> Response:
    if refusal := origin_refusal(request):
        return csrf_error(refusal)
    state = request.app.state
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        principal = await state.principals.session(token)
        async with state.db.transaction() as session:
            ended = await sessions.revoke(session, token)
            if ended is not None and principal is not None:
                await audit.record(
                    session,
                    actor=principal.actor,
                    actor_role=principal.role.label,
                    operation="logout",
                    input={},
                    result={"type": "Session", "id": str(ended)},
                )
        await state.principals.sessions_changed()
    response = Response(status_code=204, headers=NO_STORE)
    _clear_session_cookie(request, response)
    return response


async def me(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    principal = await request.app.state.principals.session(token) if token else None
    if principal is None:
        return error(401, "UNAUTHENTICATED", "not signed in")
    return _signed_in(principal)


routes = [
    Route("/auth/login", login, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/me", me, methods=["GET"]),
]
