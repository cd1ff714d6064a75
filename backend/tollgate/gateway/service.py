"""The gateway's routes and the life of one call through them.

Per call: the virtual key is authenticated; the request is read and sized (see `estimate`);
metering authorizes it, holding the worst case; the call goes to the model's routes with
failover (see `upstream`); the usage the provider reports is recorded against the hold, which
settles it and gives back the rest. The provider's body and status reach the client unchanged,
with `x-tollgate-request-id` (also the usage event's id) and `x-tollgate-credits-remaining`.

A call that fails before the provider answers is billed nothing and its hold is released. A
provider that reports no usage is billed the estimated input and the output counted from the
text it sent, and the event says so (`metadata.usage = "estimated"`).

`x-tollgate-credits-remaining` is read after the call was recorded. A stream's headers leave
before its usage is known, so there it is read after the hold: a floor, since settling only
gives credits back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tollgate import errors
from tollgate.gateway import estimate as estimates
from tollgate.gateway import openai_errors as refuse
from tollgate.gateway import upstream
from tollgate.gateway.estimate import Estimate
from tollgate.gateway.ports import AccountReads, GatewayKey, KeyResolver, Router, UpstreamRoute
from tollgate.gateway.stream import SseRelay, StreamOutcome
from tollgate.gateway.usage import SseTracker, TokenUsage, completion_text_tokens, parse_usage
from tollgate.limits.rate import RateLimiter
from tollgate.metering.requests import AuthorizeRequest, UsageEventInput
from tollgate.metering.results import Authorized, Denied, Recorded
from tollgate.metering.service import Metering

log = logging.getLogger(__name__)

KEY_PREFIX = "tg-"
FEATURE = "gateway"
REQUEST_ID_HEADER = "x-tollgate-request-id"
CREDITS_HEADER = "x-tollgate-credits-remaining"


@dataclass(frozen=True)
class GatewayOptions:
    default_max_output_tokens: int = estimates.DEFAULT_MAX_OUTPUT_TOKENS
    # Requests carry whole conversations and inline images; anything bigger is refused unread.
    max_body_bytes: int = 32 * 1024 * 1024
    # Upstream connections across all providers. Each stream in flight holds one.
    max_connections: int = 1_000
    settle_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class GatewayDeps:
    metering: Metering
    keys: KeyResolver
    router: Router
    accounts: AccountReads
    # Per-key requests per minute (a key's own rpmLimit), beside the account's limits.
    key_rate: RateLimiter | None = None


@dataclass(frozen=True)
class _Endpoint:
    name: str
    path: str  # after the route's base URL
    required: str  # the body field it cannot do without
    streams: bool


CHAT = _Endpoint("chat.completions", "/chat/completions", "messages", streams=True)
EMBEDDINGS = _Endpoint("embeddings", "/embeddings", "input", streams=False)


@dataclass
class _Call:
    request_id: str
    endpoint: _Endpoint
    key: GatewayKey
    model: str
    body: dict[str, Any]
    routes: list[UpstreamRoute]
    estimate: Estimate
    reservation_id: uuid.UUID
    stream: bool
    available_after_hold: int | None = None

    @property
    def byok_secret(self) -> str | None:
        return self.key.byok_secret or None

    @property
    def byok(self) -> bool:
        return self.byok_secret is not None


def _model_allowed(key: GatewayKey, model: str) -> bool:
    allowed = key.allowed_models
    if allowed is None:
        return True
    return any(model == p or fnmatchcase(model, p) for p in allowed)


def _routes_for(router: Router, key: GatewayKey, model: str) -> list[UpstreamRoute]:
    """A BYOK key is sent only to its own provider, with its own secret."""
    routes = list(router.routes(model))
    if key.byok_secret and key.byok_provider:
        wanted = key.byok_provider.strip().lower()
        routes = [r for r in routes if r.provider_name.strip().lower() == wanted]
    return routes


class Gateway:
    """`routes` are fixed when the app is built; `start()` binds what they call once the app's
    services exist (in its lifespan) and opens the pooled upstream client, `stop()` closes
    it. Until started, the routes answer 503."""

    def __init__(self, options: GatewayOptions | None = None) -> None:
        self.options = options or GatewayOptions()
        self._deps: GatewayDeps | None = None
        self._client: httpx.AsyncClient | None = None
        self._owns_client = False
        self.routes: list[BaseRoute] = [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.retrieve_model, methods=["GET"]),
        ]

    async def start(self, deps: GatewayDeps, *, client: httpx.AsyncClient | None = None) -> None:
        """`client`, when given, stays the caller's to close."""
        self._owns_client = client is None
        if client is None:
            limit = self.options.max_connections
            client = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
                follow_redirects=False,
            )
        self._client, self._deps = client, deps

    async def stop(self) -> None:
        client, owned = self._client, self._owns_client
        self._deps, self._client = None, None
        if client is not None and owned:
            await client.aclose()

    # Routes

    async def chat_completions(self, request: Request) -> Response:
        return await self._handle(request, CHAT)

    async def embeddings(self, request: Request) -> Response:
        return await self._handle(request, EMBEDDINGS)

    async def list_models(self, request: Request) -> Response:
        deps = self._deps
        if deps is None:
            return _not_started()
        key = await self._authenticate(deps, request)
        if isinstance(key, Response):
            return key
        return JSONResponse({"object": "list", "data": [_model(m) for m in _visible(deps, key)]})

    async def retrieve_model(self, request: Request) -> Response:
        deps = self._deps
        if deps is None:
            return _not_started()
        key = await self._authenticate(deps, request)
        if isinstance(key, Response):
            return key
        model = request.path_params["model"]
        if model not in _visible(deps, key):
            return refuse.unknown_model(model)
        return JSONResponse(_model(model))

    # One call

    async def _handle(self, request: Request, endpoint: _Endpoint) -> Response:
        deps, client = self._deps, self._client
        if deps is None or client is None:
            return _not_started()
        request_id = f"tgreq_{uuid.uuid4().hex}"
        response = await self._begin(deps, client, request, endpoint, request_id)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    async def _begin(
        self,
        deps: GatewayDeps,
        client: httpx.AsyncClient,
        request: Request,
        endpoint: _Endpoint,
        request_id: str,
    ) -> Response:
        key = await self._authenticate(deps, request)
        if isinstance(key, Response):
            return key
        body = await self._read_body(request)
        if isinstance(body, Response):
            return body
        model = body.get("model")
        if not isinstance(model, str) or not model.strip():
            return refuse.invalid_request("`model` must name a model", "model")
        if endpoint.required not in body:
            return refuse.invalid_request(f"`{endpoint.required}` is required", endpoint.required)
        if not _model_allowed(key, model):
            return refuse.model_not_allowed(model)
        routes = _routes_for(deps.router, key, model)
        if not routes:
            return refuse.unknown_model(model)
        if deps.key_rate is not None and key.rpm_limit:
            wait = await deps.key_rate.hit(_key_id(key), key.rpm_limit)
            if wait is not None:
                return refuse.key_rate_limited(key.rpm_limit, wait)
        sized = (
            estimates.chat(body, self.options.default_max_output_tokens)
            if endpoint is CHAT
            else estimates.embeddings(body)
        )
        byok = bool(key.byok_secret)
        decided = await deps.metering.authorize(
            AuthorizeRequest(
                account_external_id=key.account_external_id,
                model=model,
                estimated_input_tokens=sized.input_tokens,
                max_output_tokens=sized.max_output_tokens,
                feature=FEATURE,
                byok=byok,
            )
        )
        if not isinstance(decided, Authorized):
            return await self._refusal(deps, key, model, decided)
        call = _Call(
            request_id=request_id,
            endpoint=endpoint,
            key=key,
            model=model,
            body=body,
            routes=routes,
            estimate=sized,
            reservation_id=decided.reservation_id,
            stream=endpoint.streams and body.get("stream") is True,
            available_after_hold=decided.available_credits,
        )
        try:
            if call.stream:
                return await self._stream(deps, client, call)
            return await self._forward(deps, client, call)
        except BaseException:
            # Whatever broke, the hold must not wait for its expiry: releasing is a no-op
            # for a hold already settled.
            with anyio.CancelScope(shield=True):
                await self._release(deps, call)
            raise

    async def _authenticate(self, deps: GatewayDeps, request: Request) -> GatewayKey | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        secret = token.strip()
        if scheme.lower() != "bearer" or not secret:
            return refuse.unauthenticated(
                f"send your key as 'Authorization: Bearer {KEY_PREFIX}...'", "missing_api_key"
            )
        key = await deps.keys.authenticate(secret) if secret.startswith(KEY_PREFIX) else None
        if key is None:
            return refuse.unauthenticated("this API key is not valid")
        return key

    async def _read_body(self, request: Request) -> dict[str, Any] | Response:
        limit = self.options.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return refuse.error(
                413, f"at most {limit} bytes", type="invalid_request_error", code="too_large"
            )
        raw = bytearray()
        async for part in request.stream():
            raw += part
            if len(raw) > limit:
                return refuse.error(
                    413, f"at most {limit} bytes", type="invalid_request_error", code="too_large"
                )
        try:
            body = json.loads(raw)
        except ValueError:
            return refuse.invalid_request("the body is not JSON")
        if not isinstance(body, dict):
            return refuse.invalid_request("the body must be a JSON object")
        return body

    async def _refusal(
        self,
        deps: GatewayDeps,
        key: GatewayKey,
        model: str,
        result: Denied | errors.ValidationFailed | errors.AccountNotFound | errors.UnknownModel,
    ) -> Response:
        wait = None
        if isinstance(result, Denied) and result.reason == "LIMIT_EXCEEDED" and result.limit:
            now = datetime.now(UTC)
            try:
                reset = await deps.accounts.window_reset(key.account_id, result.limit, now)
            except Exception:
                log.exception("reading when limit %s resets failed", result.limit)
                reset = None
            if reset is not None:
                wait = math.ceil((reset - now).total_seconds())
        return refuse.refusal(result, model, wait)

    async def _forward(self, deps: GatewayDeps, client: httpx.AsyncClient, call: _Call) -> Response:
        answer = await upstream.send(
            client,
            call.routes,
            call.endpoint.path,
            call.body,
            stream=False,
            secret=call.byok_secret,
        )
        if isinstance(answer, upstream.Failure):
            await self._release(deps, call)
            return _failure_response(answer)
        response = answer.response
        if not response.is_success:
            await self._release(deps, call)
            return _passed_on(response)
        try:
            parsed = json.loads(response.content)
        except ValueError:
            parsed = None
        usage = parse_usage(parsed.get("usage")) if isinstance(parsed, dict) else None
        if usage is not None and call.endpoint is EMBEDDINGS:
            # Embeddings produce no tokens; some providers fill completion_tokens anyway.
            usage = TokenUsage(usage.prompt_tokens, 0, usage.cached_tokens)
        recorded = await self._settle(
            deps, call, answer.route, usage, completion_text_tokens(parsed), {}
        )
        passed = _passed_on(response)
        left = None
        if recorded is not None:
            left = recorded.available_credits
            if left is None:
                left = await _available(deps, call.key)
        if left is not None:
            passed.headers[CREDITS_HEADER] = str(left)
        return passed

    async def _stream(self, deps: GatewayDeps, client: httpx.AsyncClient, call: _Call) -> Response:
        options = call.body.get("stream_options")
        options = options if isinstance(options, dict) else {}
        wants_usage = options.get("include_usage") is True
        body = {**call.body, "stream_options": {**options, "include_usage": True}}
        sending = upstream.send(
            client, call.routes, CHAT.path, body, stream=True, secret=call.byok_secret
        )
        if (left := call.available_after_hold) is not None:
            answer = await sending
        else:
            answer, left = await asyncio.gather(sending, _available(deps, call.key))
        if isinstance(answer, upstream.Failure):
            await self._release(deps, call)
            return _failure_response(answer)
        if answer.rest is None:
            await self._release(deps, call)
            return _passed_on(answer.response)
        route = answer.route

        async def settle(outcome: StreamOutcome) -> None:
            notes: dict[str, Any] = {}
            if outcome.disconnected:
                notes["disconnected"] = True
            if outcome.upstream_error is not None:
                notes["upstream_error"] = outcome.upstream_error
            await self._settle(deps, call, route, outcome.usage, outcome.output_tokens_seen, notes)

        headers = {
            "content-type": answer.response.headers.get("content-type", "text/event-stream"),
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
            REQUEST_ID_HEADER: call.request_id,
        }
        if left is not None:
            headers[CREDITS_HEADER] = str(left)
        return SseRelay(
            answer.response,
            answer.first,
            answer.rest,
            SseTracker(client_wants_usage=wants_usage),
            headers,
            settle,
            self.options.settle_timeout_seconds,
        )

    async def _settle(
        self,
        deps: GatewayDeps,
        call: _Call,
        route: UpstreamRoute,
        usage: TokenUsage | None,
        output_tokens_seen: int,
        notes: dict[str, Any],
    ) -> Recorded | None:
        """Record the call against its hold; on any failure to record, release the hold."""
        metadata: dict[str, Any] = {
            "endpoint": call.endpoint.name,
            "key_id": str(call.key.id),
            "upstream_model": route.upstream_model,
            "stream": call.stream,
            **notes,
        }
        if usage is None:
            usage = TokenUsage(call.estimate.input_tokens, output_tokens_seen)
            metadata["usage"] = "estimated"
        # The catalog filters prices by provider. A route's provider is an operator's name for
        # an upstream and need not be the catalog's, so it is recorded as the event's provider
        # only when the catalog prices the model under that name.
        prices, now = deps.metering.deps.pricing, datetime.now(UTC)
        provider: str | None = route.provider_name
        if prices.price_at(call.model, now, route.provider_name) is None:
            metadata["provider"], provider = route.provider_name, None
        event = UsageEventInput(
            event_id=call.request_id,
            account_external_id=call.key.account_external_id,
            model=call.model,
            input_tokens=usage.uncached_input_tokens,
            output_tokens=usage.completion_tokens,
            cached_input_tokens=usage.cached_tokens,
            reservation_id=call.reservation_id,
            feature=FEATURE,
            byok=call.byok,
            provider=provider,
            metadata=metadata,
            api_key_id=_key_id(call.key),
        )
        try:
            [result] = await deps.metering.record([event])
        except Exception:
            log.exception("recording gateway call %s failed", call.request_id)
            await self._release(deps, call)
            return None
        if not isinstance(result, Recorded):
            log.error("gateway call %s was not recorded: %r", call.request_id, result)
            await self._release(deps, call)
            return None
        return result

    async def _release(self, deps: GatewayDeps, call: _Call) -> None:
        try:
            await deps.metering.release(call.reservation_id)
        except Exception:
            # The hold still expires on its own.
            log.exception("releasing the hold of gateway call %s failed", call.request_id)


async def _available(deps: GatewayDeps, key: GatewayKey) -> int | None:
    try:
        return await deps.accounts.available(key.account_id)
    except Exception:
        log.exception("reading the balance of account %s failed", key.account_external_id)
        return None


def _key_id(key: GatewayKey) -> int:
    return int(str(key.id))


def _visible(deps: GatewayDeps, key: GatewayKey) -> list[str]:
    return sorted(
        {
            m
            for m in deps.router.models()
            if _model_allowed(key, m) and _routes_for(deps.router, key, m)
        }
    )


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tollgate"}


def _not_started() -> Response:
    return refuse.error(
        503, "the gateway is starting", type="service_unavailable", code="not_started"
    )


def _passed_on(response: httpx.Response) -> Response:
    """The provider's answer as it came: body, status and content type."""
    media = response.headers.get("content-type", "application/json")
    passed = Response(response.content, status_code=response.status_code, media_type=None)
    passed.headers["content-type"] = media
    if (retry := response.headers.get("retry-after")) is not None:
        passed.headers["retry-after"] = retry
    return passed


def _failure_response(failure: upstream.Failure) -> Response:
    if failure.response is not None:
        return _passed_on(failure.response)
    return refuse.upstream_failed(failure.status, failure.message)
