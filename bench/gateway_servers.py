"""The two small servers `gateway.py` measures the gateways against, each in a process of its own:

    python bench/gateway_servers.py upstream --port N [--chunk-delay S]
    python bench/gateway_servers.py forwarder --port N --upstream http://127.0.0.1:M/v1

`upstream` answers `POST /v1/chat/completions` the way OpenAI does: a fixed short reply with its
usage, whole or as server-sent events (the usage chunk only with `stream_options.include_usage`,
the way OpenAI sends it). It does as little as it can per request, since it shares a core with
the load generator. `GET /stats` says how many calls it answered.

`forwarder` is what any OpenAI-compatible gateway has to do at the least, with nothing else: read
the body and its model, send it upstream through one pooled `httpx.AsyncClient`, read the usage
from the answer (or pass the stream through as it arrives) and return it. No key check, no
metering: the ceiling for a Python gateway on this stack. Both run under uvicorn with the
settings `tollgate serve` uses (uvloop and httptools when installed, no access log).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

# Run as a script, this folder is on the import path.
from common import run_small_server
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

REPLY = "The quick brown fox jumps over the lazy dog."
PROMPT_TOKENS, COMPLETION_TOKENS = 25, 11
CREATED = 1_700_000_000
USAGE = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    "prompt_tokens_details": {"cached_tokens": 0},
}


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Upstream:
    def __init__(self, chunk_delay: float) -> None:
        self.chunk_delay = chunk_delay
        self.calls = {"whole": 0, "streamed": 0}
        # Answers are the same every time but for the model's name: built once per name.
        self._whole: dict[str, bytes] = {}
        self._chunks: dict[str, list[bytes]] = {}
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/stats", self.stats, methods=["GET"]),
            ]
        )

    def whole(self, model: str) -> bytes:
        if (body := self._whole.get(model)) is None:
            body = self._whole[model] = _dumps(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": CREATED,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": REPLY},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": USAGE,
                }
            )
        return body

    def chunks(self, model: str) -> list[bytes]:
        """Every event of a stream, the usage chunk last (sent only when asked for)."""
        if (events := self._chunks.get(model)) is None:

            def event(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
                chunk = {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "choices": choices,
                    "usage": usage,
                }
                return b"data: " + _dumps(chunk) + b"\n\n"

            words = REPLY.split(" ")
            events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
            events += [
                event([{"index": 0, "delta": {"content": w if i == 0 else " " + w}}])
                for i, w in enumerate(words)
            ]
            events.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
            events.append(event([], USAGE))
            self._chunks[model] = events
        return events

    async def chat(self, request: Request) -> Response:
        body = json.loads(await request.body())
        model = str(body.get("model", ""))
        if not body.get("stream"):
            self.calls["whole"] += 1
            return Response(self.whole(model), media_type="application/json")
        self.calls["streamed"] += 1
        options = body.get("stream_options") or {}
        events = self.chunks(model)
        if options.get("include_usage") is not True:
            events = events[:-1]
        return StreamingResponse(self._stream(events), media_type="text/event-stream")

    async def _stream(self, events: list[bytes]) -> AsyncIterator[bytes]:
        # The first event leaves at once: time to first token is the gateway's alone. The
        # pauses after it keep a gateway that holds the stream back from hiding it.
        for n, event in enumerate(events):
            if n and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield event
        yield b"data: [DONE]\n\n"

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.calls)


class Forwarder:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.client: httpx.AsyncClient | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
            ],
            lifespan=self.lifespan,
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # The gateway's own pool settings.
        limits = httpx.Limits(max_connections=1_000, max_keepalive_connections=1_000)
        async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:
            self.client = client
            yield

    async def healthz(self, request: Request) -> Response:
        return Response(b"ok")

    async def chat(self, request: Request) -> Response:
        assert self.client is not None
        raw = await request.body()
        body = json.loads(raw)
        if not isinstance(body.get("model"), str):
            return JSONResponse({"error": {"message": "no model"}}, status_code=400)
        streamed = body.get("stream") is True
        upstream_request = self.client.build_request(
            "POST",
            self.upstream + "/chat/completions",
            content=raw,
            headers={"Content-Type": "application/json"},
            timeout=httpx.Timeout(30),
        )
        answer = await self.client.send(upstream_request, stream=streamed)
        media = answer.headers.get("content-type", "application/json")
        if not streamed:
            # A gateway bills from this; the least it can do is read it.
            usage = json.loads(answer.content).get("usage") or {}
            response = Response(answer.content, status_code=answer.status_code, media_type=media)
            response.headers["x-usage-tokens"] = str(usage.get("total_tokens", 0))
            return response
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            media_type=media,
            background=BackgroundTask(answer.aclose),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["upstream", "forwarder"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between events")
    parser.add_argument("--upstream", help="the forwarder's upstream base URL, up to /v1")
    args = parser.parse_args()
    if args.role == "upstream":
        app = Upstream(args.chunk_delay).app
    else:
        if not args.upstream:
            parser.error("forwarder needs --upstream")
        app = Forwarder(args.upstream).app
    run_small_server(app, args.host, args.port)


if __name__ == "__main__":
    main()
