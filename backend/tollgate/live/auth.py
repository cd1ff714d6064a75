"""Who a websocket connection acts for. Every way of authenticating a connection goes here.

Browsers cannot set headers on a websocket, so the admin key comes in the connection_init
payload: {"authorization": "Bearer tgk_..."}; other clients may send it as the upgrade
request's Authorization header instead. Without a key, the admin app's session cookie sent
with the upgrade request is used, when the request's Origin is this host (another site's page
must not ride a signed-in browser's cookie). The same function re-checks a long-lived
connection (`reauthenticate`), so a revoked key or an ended session neither starts operations
nor keeps streaming.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.websockets import WebSocket

from tollgate.api.context import Context
from tollgate.auth.cache import PrincipalCache
from tollgate.auth.http import SESSION_COOKIE, origin_refusal
from tollgate.auth.service import Principal, parse_bearer


async def authenticate_connection(
    principals: PrincipalCache, websocket: Request | WebSocket, params: Mapping[str, object]
) -> Principal | None:
    """The connection's principal, or None to refuse it."""
    authorization = params.get("authorization")
    if authorization is None:
        # Clients that can set headers may send the key on the upgrade request instead.
        authorization = websocket.headers.get("authorization")
    if authorization is None:
        cookie = websocket.cookies.get(SESSION_COOKIE)
        if not cookie or origin_refusal(websocket) is not None:
            return None
        return await principals.session(cookie)
    if not isinstance(authorization, str):
        return None
    token = parse_bearer(authorization)
    if token is None:
        return None
    return await principals.authenticate(token)


async def reauthenticate(context: Context) -> Principal | None:
    """Check a connection's credentials again and keep the answer as its principal. Cheap: the
    principal cache answers, and forgets a key on every replica as soon as it is revoked."""
    context.principal = await authenticate_connection(
        context.principals, context.request, context.connection_params or {}
    )
    return context.principal
