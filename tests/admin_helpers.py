"""Admin users and signed-in sessions for tests: create a user, sign in, call as that session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tollgate.auth import users
from tollgate.auth.http import CSRF_HEADER, SESSION_COOKIE
from tollgate.auth.models import AdminUser
from tollgate.db import Database

PASSWORD = "correct horse battery staple"


async def make_user(
    db: Database, email: str, role: str = "admin", password: str = PASSWORD
) -> AdminUser:
    async with db.transaction() as session:
        created = await users.create_user(session, email=email, password=password, role=role)
    assert isinstance(created, AdminUser), created
    return created


@dataclass(frozen=True)
class SignedIn:
    """A browser's session: the cookie's token and the CSRF token the app echoes."""

    token: str
    csrf: str
    body: dict[str, Any]

    def headers(self, *, csrf: str | None = "same") -> dict[str, str]:
        headers = {"Cookie": f"{SESSION_COOKIE}={self.token}"}
        if csrf is not None:
            headers[CSRF_HEADER] = self.csrf if csrf == "same" else csrf
        return headers


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> SignedIn:
    response = await client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token = response.cookies[SESSION_COOKIE]
    # Each test says which session a request carries; the shared jar would mix them up.
    client.cookies.clear()
    body: dict[str, Any] = response.json()
    return SignedIn(token, body["csrfToken"], body)


async def gql_as(
    client: httpx.AsyncClient,
    signed_in: SignedIn,
    query: str,
    *,
    csrf: str | None = "same",
    **variables: Any,
) -> httpx.Response:
    return await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers=signed_in.headers(csrf=csrf),
    )
