"""A stand-in LLM provider speaking OpenAI's HTTP protocol on 127.0.0.1, for gateway tests.

`POST /v1/chat/completions` answers as OpenAI does, whole or as server-sent events (with the
usage chunk when `stream_options.include_usage` is set), and `POST /v1/embeddings` likewise.
What it answers is set per test on `behaviour`; every request is kept for assertions.
`ServedApp` runs any ASGI app (this one, or Tollgate itself) under uvicorn in a thread with its
own event loop, so clients reach it over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

CREATED = 1_700_000_000


class ServedApp:
    """`with ServedApp(app) as served:` serves `app` at `served.url` until the block ends."""

    def __init__(self, app: ASGIApp, *, lifespan: str = "off") -> None:
        self.config = uvicorn.Config(
            app,
            lifespan=lifespan,
            loop="asyncio",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(self.config)
        self.port = 0
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedApp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)


@dataclass
class Behaviour:
    reply: str = "The quick brown fox jumps over the lazy dog."
    prompt_tokens: int = 25
    completion_tokens: int = 11
    cached_tokens: int = 0
    # Seconds before the status line, and between stream chunks.
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    # Anything but 200 answers with an OpenAI error body (429 adds Retry-After).
    status: int = 200
    # False: never report usage, whole or streamed.
    usage: bool = True
    # A stream that breaks (the connection drops) after this many content chunks.
    break_after: int | None = None
    embedding_tokens: int = 7


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeUpstream:
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[Seen] = field(default_factory=list)
    # Streams the reader left before the last chunk, and streams sent to the end.
    streams_cut: int = 0
    streams_finished: int = 0
    _served: ServedApp | None = None

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            ]
        )

    def __enter__(self) -> FakeUpstream:
        self._served = ServedApp(self.app).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._served is not None:
            self._served.__exit__(*exc)

    @property
    def base_url(self) -> str:
        assert self._served is not None
        return f"{self._served.url}/v1"

    @property
    def count(self) -> int:
        return len(self.requests)

    @property
    def last(self) -> Seen:
        return self.requests[-1]

    def reset(self, **changes: Any) -> None:
        self.behaviour = replace(Behaviour(), **changes)
        self.requests = []
        self.streams_cut = self.streams_finished = 0

    async def _seen(self, request: Request) -> tuple[Behaviour, dict[str, Any]]:
        body = json.loads(await request.body())
        self.requests.append(Seen(request.url.path, dict(request.headers), body))
        behaviour = self.behaviour
        if behaviour.first_byte_delay:
            await asyncio.sleep(behaviour.first_byte_delay)
        return behaviour, body

    def _failure(self, behaviour: Behaviour) -> Response:
        headers = {"Retry-After": "1"} if behaviour.status == 429 else {}
        body = {
            "error": {
                "message": f"fake upstream answers {behaviour.status}",
                "type": {429: "rate_limit_error", 400: "invalid_request_error"}.get(
                    behaviour.status, "server_error"
                ),
                "param": None,
                "code": None,
            }
        }
        return JSONResponse(body, status_code=behaviour.status, headers=headers)

    def _usage(self, b: Behaviour) -> dict[str, Any]:
        return {
            "prompt_tokens": b.prompt_tokens,
            "completion_tokens": b.completion_tokens,
            "total_tokens": b.prompt_tokens + b.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": b.cached_tokens},
        }

    async def _chat(self, request: Request) -> Response:
        behaviour, body = await self._seen(request)
        if behaviour.status != 200:
            return self._failure(behaviour)
        if body.get("stream"):
            options = body.get("stream_options") or {}
            events = self._stream(behaviour, body["model"], options.get("include_usage") is True)
            return StreamingResponse(events, media_type="text/event-stream")
        answer: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": CREATED,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": behaviour.reply},
                    "finish_reason": "stop",
                }
            ],
        }
        if behaviour.usage:
            answer["usage"] = self._usage(behaviour)
        return JSONResponse(answer)

    async def _stream(
        self, behaviour: Behaviour, model: str, include_usage: bool
    ) -> AsyncIterator[bytes]:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            event = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "choices": choices,
                **({"usage": None} if include_usage else {}),
                **extra,
            }
            return b"data: " + json.dumps(event).encode() + b"\n\n"

        words = behaviour.reply.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        finished = False
        try:
            yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
            for sent, piece in enumerate(pieces):
                if sent == behaviour.break_after:
                    raise ConnectionAbortedError("the fake upstream breaks its stream")
                if behaviour.chunk_delay:
                    await asyncio.sleep(behaviour.chunk_delay)
                yield chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
            yield chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            if include_usage and behaviour.usage:
                yield chunk([], usage=self._usage(behaviour))
            yield b"data: [DONE]\n\n"
            finished = True
        finally:
            if finished:
                self.streams_finished += 1
            else:
                self.streams_cut += 1

    async def _embeddings(self, request: Request) -> Response:
        behaviour, body = await self._seen(request)
        if behaviour.status != 200:
            return self._failure(behaviour)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        answer: dict[str, Any] = {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.125]}
                for i in range(len(inputs))
            ],
        }
        if behaviour.usage:
            answer["usage"] = {
                "prompt_tokens": behaviour.embedding_tokens,
                "total_tokens": behaviour.embedding_tokens,
            }
        return JSONResponse(answer)
