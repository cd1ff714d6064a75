"""The starlette application: /graphql, /healthz, sign-in (/auth), the admin app (/admin), the
metering JSON routes, the OpenAI-compatible gateway (/v1), and the lifespan that owns
connections and caches."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from tollgate import admin_spa, crypto, jobs
from tollgate.api.context import Context
from tollgate.api.schema import build_schema
from tollgate.apikeys.cache import VirtualKeyCache
from tollgate.auth import service as auth
from tollgate.auth import users
from tollgate.auth.cache import PrincipalCache
from tollgate.auth.http import authenticate_request, csrf_error, csrf_refusal
from tollgate.auth.http import routes as auth_http_routes
from tollgate.auth.throttle import LoginThrottle
from tollgate.config import Settings
from tollgate.controls.cache import ControlsCache
from tollgate.db import Database, create_engine
from tollgate.demo import seed as demo_seed
from tollgate.demo import traffic as demo_traffic
from tollgate.gateway.accounts import LedgerAccounts
from tollgate.gateway.priced_router import PricedRouter
from tollgate.gateway.service import Gateway, GatewayDeps
from tollgate.health import healthz
from tollgate.invalidation import InvalidationBus
from tollgate.limits.rate import RateLimiter
from tollgate.live.auth import reauthenticate
from tollgate.live.hub import LiveHub
from tollgate.live.ticker import UsageTicker
from tollgate.live.ws import TransportWSHandler
from tollgate.metering.deps import MeteringDeps
from tollgate.metering.http import routes as metering_routes
from tollgate.metering.service import Metering
from tollgate.pricing.cache import PricingCache
from tollgate.providers.cache import ProviderCache

log = logging.getLogger(__name__)


class GraphQLApp(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Over HTTP the caller is found here, before strawberry runs, so that a request from
        a signed-in browser without its CSRF token is refused with a plain 403."""
        if scope["type"] == "http":
            request = Request(scope, receive)
            principal = await authenticate_request(request.app.state, request)
            if request.method == "POST" and (refusal := csrf_refusal(request, principal)):
                await csrf_error(refusal)(scope, receive, send)
                return
            request.state.principal = principal
        await super().__call__(scope, receive, send)

    async def get_context(  # type: ignore[override]
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.app.state
        principal = None
        # Over HTTP the caller was found in __call__; a websocket authenticates in its
        # connection_init (on_ws_connect), nowhere else.
        if isinstance(request, Request):
            principal = request.state.principal
        return Context(
            db=state.db,
            redis=state.redis,
            settings=state.settings,
            bus=state.bus,
            metering=state.metering,
            principals=state.principals,
            principal=principal,
            request=request,
            response=response,
            live=state.live,
            ticker=state.ticker,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """connection_init: a missing, malformed, unknown or revoked key closes 4403."""
        if await reauthenticate(context) is None:
            raise ConnectionRejectionError({"message": "a valid admin key is required"})
        return UNSET  # type: ignore[no-any-return]


async def _bootstrap_user(db: Database, settings: Settings) -> None:
    """The first owner who signs in with a password, from TOLLGATE_BOOTSTRAP_ADMIN_EMAIL and
    TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD; a bad value stops the service at start."""
    email, password = settings.bootstrap_admin_email, settings.bootstrap_admin_password
    if not email and not password:
        return
    if not email or not password:
        raise RuntimeError(
            "set both TOLLGATE_BOOTSTRAP_ADMIN_EMAIL and TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD"
        )
    async with db.transaction() as session:
        if await users.ensure_bootstrap_user(session, email, password):
            log.info("created the bootstrap owner %s", users.normalize_email(email))


def create_app(settings: Settings, *, run_worker: bool = False) -> Starlette:
    """`settings` must carry the database and Redis URLs (the CLI fills in embedded ones)."""
    graphql = GraphQLApp(
        build_schema(introspection=settings.is_dev),
        graphql_ide="graphiql" if settings.is_dev else None,
        allow_queries_via_get=False,
        # graphql-transport-ws only: the legacy graphql-ws protocol is refused (4406), and
        # subscriptions over HTTP (multipart) are off.
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
        max_subscriptions_per_connection=settings.ws_max_subscriptions,
    )

    gateway = Gateway()
    spa = admin_spa.AdminSpa(settings.admin_dist)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(create_engine(settings))
        try:
            await _bootstrap_user(db, settings)
        except BaseException:
            await db.dispose()
            raise
        if settings.demo:  # before the caches load, so they start with the demo's prices
            await demo_seed.seed(db, now=datetime.now(UTC))
        redis = Redis.from_url(settings.redis_url or "")
        bus = InvalidationBus(redis)
        # Attached before the bus starts: its one pub/sub connection carries live updates too.
        live = LiveHub(bus, queue_size=settings.live_queue_size)
        await bus.start()
        pricing, controls = PricingCache(db, bus), ControlsCache(db, bus)
        await pricing.start()
        await controls.start()
        state = app.state
        state.db, state.redis, state.settings, state.bus = db, redis, settings, bus
        state.principals = PrincipalCache(
            db, bus, session_idle=timedelta(seconds=settings.session_ttl_seconds)
        )
        state.login_throttle = LoginThrottle(redis)
        state.live, state.ticker = live, UsageTicker(redis)
        state.metering = Metering(
            db, redis, MeteringDeps(settings, pricing, controls, RateLimiter(redis))
        )
        # Built at start so a malformed TOLLGATE_SECRET_KEY stops the service at once.
        secrets_box = crypto.for_settings(settings)
        providers = ProviderCache(db, bus, secrets_box)
        await providers.start()
        await gateway.start(
            GatewayDeps(
                state.metering,
                VirtualKeyCache(db, bus, secrets_box),
                PricedRouter(providers, pricing),
                LedgerAccounts(db),
                RateLimiter(redis, prefix="tollgate:rate:key:"),
            )
        )
        if settings.bootstrap_admin_key:
            async with db.transaction() as session:
                await auth.ensure_bootstrap_key(session, settings.bootstrap_admin_key)
        demo_task = None
        if settings.demo:
            demo_task = asyncio.create_task(demo_traffic.run(state.metering), name="demo-usage")
        worker_task = None
        if run_worker:
            worker = jobs.create_worker(settings, db)
            worker_task = asyncio.create_task(worker.main(), name="tollgate-worker")
        # What start-up built lives as long as the process: out of the collector's reach, a
        # full collection no longer walks it. Measured recording 1,000-event batches: the
        # collector's share of CPU fell from about a fifth to about a twentieth.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if demo_task is not None:
                demo_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await demo_task
            if worker_task is not None:
                await worker.close()
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker_task
            await gateway.stop()
            # Batches still committing, and their live events, before Redis and the pool close.
            await state.metering.wait_idle()
            await providers.stop()
            await controls.stop()
            await pricing.stop()
            await bus.stop()
            await redis.aclose()
            await db.dispose()

    return Starlette(
        routes=[
            Route("/", admin_spa.to_admin),
            Route("/healthz", healthz),
            *auth_http_routes,
            Route(admin_spa.PREFIX, spa),
            Route(admin_spa.PREFIX + "/{path:path}", spa),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *metering_routes,
            *gateway.routes,
        ],
        lifespan=lifespan,
    )
