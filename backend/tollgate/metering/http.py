"""The hot path as plain JSON: POST /api/v1/authorize and POST /api/v1/usage.

Same service and same results as the GraphQL mutations, without GraphQL's parsing and
validation per request. Answers carry the GraphQL type name in `__typename`; a typed failure
is a 200 like in GraphQL; only an unreadable body (400) or a missing or wrong key (401, 403)
is an HTTP error.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import uuid
from datetime import datetime
from enum import Enum
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tollgate import errors
from tollgate.auth.service import Role
from tollgate.metering import requests
from tollgate.metering.graphql import adapt
from tollgate.metering.service import Metering

MAX_BODY_BYTES = 4 * 1024 * 1024


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@functools.cache
def _shape(kind: type) -> tuple[str, tuple[tuple[str, str], ...]]:
    # Per class, once: a batch answers up to 1,000 results of the same few types.
    fields = tuple((_camel(f.name), f.name) for f in dataclasses.fields(kind))
    return kind.__name__, fields


def to_json(value: Any) -> Any:
    if value is None or type(value) in (int, str, bool):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name, fields = _shape(type(value))
        body = {key: to_json(getattr(value, attr)) for key, attr in fields}
        return {"__typename": name, **body}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _guard(request: Request) -> JSONResponse | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token.strip():
        principal = await request.app.state.principals.authenticate(token.strip())
    if principal is None:
        return _error(401, "UNAUTHENTICATED", "send a service key as 'Authorization: Bearer <key>'")
    if principal.role not in (Role.SERVICE, Role.ADMIN, Role.OWNER):
        return _error(403, "FORBIDDEN", "needs a service key or the admin role")
    return None


async def _body(request: Request) -> dict[str, Any] | JSONResponse:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, "TOO_LARGE", f"at most {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except ValueError:
        return _error(400, "BAD_JSON", "the body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "BAD_JSON", "the body must be a JSON object")
    return body


class _Fields:
    """Reads typed fields from a JSON object; the first mistake becomes a ValidationFailed."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.failed: errors.ValidationFailed | None = None

    def _fail(self, name: str, message: str) -> None:
        if self.failed is None:
            self.failed = errors.ValidationFailed(name, message)

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.body.get(name)
        if value is None:
            if required:
                self._fail(name, "is required")
            return None
        if not isinstance(value, str):
            self._fail(name, "must be a string")
            return None
        return value

    def integer(self, name: str, default: int | None = 0) -> int | None:
        value = self.body.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._fail(name, "must be a whole number")
            return default
        return value

    def flag(self, name: str) -> bool:
        value = self.body.get(name, False)
        if not isinstance(value, bool):
            self._fail(name, "must be true or false")
            return False
        return value

    def moment(self, name: str) -> datetime | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            self._fail(name, "must be an ISO 8601 date-time")
            return None

    def identifier(self, name: str) -> uuid.UUID | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return uuid.UUID(value)
        except ValueError:
            self._fail(name, "not a reservation id")
            return None

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.body.get(name) or {}
        if not isinstance(value, dict):
            self._fail(name, "must be a JSON object")
            return {}
        return value


def parse_authorize(body: dict[str, Any]) -> requests.AuthorizeRequest | errors.ValidationFailed:
    f = _Fields(body)
    request = requests.AuthorizeRequest(
        account_external_id=f.text("accountExternalId", required=True) or "",
        model=f.text("model", required=True) or "",
        estimated_input_tokens=f.integer("estimatedInputTokens") or 0,
        max_output_tokens=f.integer("maxOutputTokens") or 0,
        feature=f.text("feature"),
        byok=f.flag("byok"),
        provider=f.text("provider"),
    )
    return f.failed or request


def parse_event(body: Any) -> requests.UsageEventInput | errors.ValidationFailed:
    if not isinstance(body, dict):
        return errors.ValidationFailed("events", "each event must be a JSON object")
    f = _Fields(body)
    event = requests.UsageEventInput(
        event_id=f.text("eventId", required=True) or "",
        account_external_id=f.text("accountExternalId", required=True) or "",
        model=f.text("model", required=True) or "",
        input_tokens=f.integer("inputTokens") or 0,
        output_tokens=f.integer("outputTokens") or 0,
        cached_input_tokens=f.integer("cachedInputTokens") or 0,
        images=f.integer("images") or 0,
        provider_cost_micros=f.integer("providerCostMicros", None),
        reservation_id=f.identifier("reservationId"),
        occurred_at=f.moment("occurredAt"),
        feature=f.text("feature"),
        byok=f.flag("byok"),
        provider=f.text("provider"),
        metadata=f.mapping("metadata"),
    )
    return f.failed or event


async def authorize(request: Request) -> Response:
    if (refused := await _guard(request)) is not None:
        return refused
    body = await _body(request)
    if isinstance(body, JSONResponse):
        return body
    metering: Metering = request.app.state.metering
    parsed = parse_authorize(body)
    result = (
        parsed if isinstance(parsed, errors.ValidationFailed) else await metering.authorize(parsed)
    )
    return JSONResponse(to_json(adapt(result)))


async def usage(request: Request) -> Response:
    if (refused := await _guard(request)) is not None:
        return refused
    body = await _body(request)
    if isinstance(body, JSONResponse):
        return body
    events = body.get("events")
    if not isinstance(events, list):
        return _error(400, "BAD_REQUEST", 'send {"events": [...]}')
    if len(events) > requests.MAX_BATCH:
        return _error(400, "BAD_REQUEST", f"at most {requests.MAX_BATCH} events per call")
    metering: Metering = request.app.state.metering
    parsed = [parse_event(e) for e in events]
    booked = iter(
        await metering.record([p for p in parsed if isinstance(p, requests.UsageEventInput)])
    )
    answers = [
        adapt(next(booked) if isinstance(p, requests.UsageEventInput) else p) for p in parsed
    ]
    return JSONResponse({"results": to_json(answers)})


routes = [
    Route("/api/v1/authorize", authorize, methods=["POST"]),
    Route("/api/v1/usage", usage, methods=["POST"]),
]
