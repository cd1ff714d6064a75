"""Relaying an upstream event stream to the client, and billing it however it ends.

A stream ends in one of three ways: the upstream finishes, the client goes away, or the
upstream breaks. The relay watches the client's connection while it forwards, stops reading
the upstream as soon as the client is gone (so the provider stops generating), and then
settles the call with what it saw, shielded from the cancellation that ended the stream:
the hold is always closed here, never left to expire.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio
import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tollgate.gateway.usage import SseTracker, TokenUsage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamOutcome:
    usage: TokenUsage | None
    output_tokens_seen: int
    disconnected: bool
    upstream_error: str | None


Settle = Callable[[StreamOutcome], Awaitable[None]]


def _error_event(message: str) -> bytes:
    body = {"error": {"message": message, "type": "upstream_error", "param": None, "code": None}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class SseRelay(Response):
    """Status 200, then the upstream's events as they come."""

    def __init__(
        self,
        response: httpx.Response,
        first: bytes,
        rest: AsyncIterator[bytes],
        tracker: SseTracker,
        headers: Mapping[str, str],
        settle: Settle,
        settle_timeout: float,
    ) -> None:
        self._response, self._first, self._rest = response, first, rest
        self._tracker, self._settle, self._settle_timeout = tracker, settle, settle_timeout
        # Like a StreamingResponse: no body, so no content-length.
        self.status_code, self.background = 200, None
        self.init_headers(headers)
        self._gone = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._gone = False
        upstream_error: str | None = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with anyio.create_task_group() as group:

                async def watch_client() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    self._gone = True
                    group.cancel_scope.cancel()

                group.start_soon(watch_client)
                upstream_error = await self._pump(send)
                group.cancel_scope.cancel()
            await self._send(send, b"", more=False)
        except OSError:
            self._gone = True
        finally:
            outcome = StreamOutcome(
                usage=self._tracker.usage,
                output_tokens_seen=self._tracker.output_tokens_seen,
                # A client may hang up as soon as it has read [DONE]: that stream was whole.
                disconnected=self._gone and not self._tracker.done,
                upstream_error=upstream_error,
            )
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._settle_timeout):
                await self._response.aclose()
                await self._settle(outcome)

    async def _send(self, send: Send, body: bytes, *, more: bool = True) -> bool:
        """False once the client is gone. Servers on ASGI spec 2.4 report that by raising
        OSError from `send`; older ones by an http.disconnect, which `watch_client` reads."""
        if self._gone:
            return False
        try:
            await send({"type": "http.response.body", "body": body, "more_body": more})
        except OSError:
            self._gone = True
        return not self._gone

    async def _pump(self, send: Send) -> str | None:
        """Forward until the upstream ends or the client leaves; the upstream's failure, if it
        broke."""
        chunk = self._first
        failure: str | None = None
        while True:
            out = self._tracker.feed(chunk)
            if out and not await self._send(send, out):
                return None
            try:
                chunk = await anext(self._rest)
            except StopAsyncIteration:
                break
            except httpx.HTTPError as exc:
                failure = f"the upstream stream broke ({type(exc).__name__})"
                log.warning("%s", failure)
                break
        if failure is not None:
            await self._send(send, _error_event(failure))
        return failure
