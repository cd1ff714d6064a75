"""Sending a call to a model's routes in order, moving on while nothing has reached the client.

A route fails over when it cannot be reached, times out, answers 5xx, 429 (the provider's own
rate limit) or 401/403 (our credentials for it are wrong): none of these says anything about
the caller's request. Any other answer (200, or a 4xx about the request itself) is the answer.
A stream is taken only once its first bytes have arrived, so a route that accepts the
connection and then dies still fails over.

When every route failed, the last failure decides: a timeout is 504, a provider's 429 is
passed on (its body and `Retry-After`), anything else is 502.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from tollgate.gateway.ports import UpstreamRoute

log = logging.getLogger(__name__)

_FAIL_OVER_STATUSES = frozenset({401, 403, 408, 409, 429})


def _fails_over(status: int) -> bool:
    return status >= 500 or status in _FAIL_OVER_STATUSES


@dataclass
class Opened:
    """The route that answered. For a 200 stream, `first` holds the bytes already read from
    `rest`; otherwise the body is read and the response closed."""

    route: UpstreamRoute
    response: httpx.Response
    first: bytes = b""
    rest: AsyncIterator[bytes] | None = None


@dataclass
class Failure:
    status: int
    message: str
    # The provider's own 429, when that was the last failure: passed on as it is.
    response: httpx.Response | None = None


@dataclass
class _Attempt:
    timed_out: bool = False
    message: str = ""
    response: httpx.Response | None = None


def _request(
    client: httpx.AsyncClient,
    route: UpstreamRoute,
    path: str,
    body: dict[str, Any],
    secret: str | None,
    stream: bool,
) -> httpx.Request:
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    if stream:
        # Compressed streams are held back by the decoder until a block fills.
        headers["Accept-Encoding"] = "identity"
    payload = {**body, "model": route.upstream_model}
    return client.build_request(
        "POST",
        route.base_url.rstrip("/") + path,
        content=json.dumps(payload, separators=(",", ":")).encode(),
        headers=headers,
        timeout=httpx.Timeout(route.timeout_seconds),
    )


async def _try(
    client: httpx.AsyncClient,
    route: UpstreamRoute,
    request: httpx.Request,
    stream: bool,
) -> Opened | _Attempt:
    try:
        response = await client.send(request, stream=stream)
    except httpx.TimeoutException:
        return _Attempt(timed_out=True, message="timed out")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return _Attempt(message=f"unreachable ({type(exc).__name__})")
    if not stream:
        if _fails_over(response.status_code):
            return _Attempt(message=f"HTTP {response.status_code}", response=response)
        return Opened(route, response)
    try:
        if response.status_code != 200:
            await response.aread()
            await response.aclose()
            if _fails_over(response.status_code):
                return _Attempt(message=f"HTTP {response.status_code}", response=response)
            return Opened(route, response)
        chunks = response.aiter_bytes()
        first = b""
        while not first:
            first = await anext(chunks)
        return Opened(route, response, first, chunks)
    except StopAsyncIteration:
        await response.aclose()
        return _Attempt(message="closed the stream before any data")
    except httpx.TimeoutException:
        await response.aclose()
        return _Attempt(timed_out=True, message="timed out before the first bytes")
    except httpx.HTTPError as exc:
        await response.aclose()
        return _Attempt(message=f"broke before the first bytes ({type(exc).__name__})")
    except BaseException:
        await response.aclose()
        raise


async def send(
    client: httpx.AsyncClient,
    routes: Sequence[UpstreamRoute],
    path: str,
    body: dict[str, Any],
    *,
    stream: bool,
    secret: str | None = None,
) -> Opened | Failure:
    """`secret`, when given (a BYOK key), replaces each route's own API key."""
    last = _Attempt(message="no route")
    for route in routes:
        request = _request(client, route, path, body, secret or route.api_key, stream)
        outcome = await _try(client, route, request, stream)
        if isinstance(outcome, Opened):
            return outcome
        log.warning(
            "upstream %s (%s) failed for %s: %s",
            route.provider_name,
            route.upstream_model,
            path,
            outcome.message,
        )
        last = outcome
    if last.timed_out:
        return Failure(504, "the model's provider did not answer in time")
    if last.response is not None and last.response.status_code == 429:
        return Failure(429, "the model's provider is rate limiting", last.response)
    return Failure(502, f"the model's provider failed: {last.message}")
