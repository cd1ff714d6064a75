"""Per-request context: the database, Redis, settings and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from tollgate.auth.cache import PrincipalCache
from tollgate.auth.service import Principal
from tollgate.config import Settings
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus
from tollgate.live.hub import LiveHub
from tollgate.live.ticker import UsageTicker
from tollgate.metering.service import Metering


@dataclass
class Context:
    db: Database
    redis: Redis
    settings: Settings
    bus: InvalidationBus
    metering: Metering
    principals: PrincipalCache
    principal: Principal | None
    request: Request | WebSocket
    response: Response | WebSocket | None = None
    live: LiveHub | None = None
    ticker: UsageTicker | None = None
    # A websocket's connection_init payload; its principal is set once that authenticates.
    connection_params: dict[str, object] | None = None


Info = strawberry.Info[Context, None]
