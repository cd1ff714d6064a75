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


Info = strawberry.Info[Context, None]
