"""What the gateway needs from the rest of Tollgate, as small protocols.

The gateway only reads these attributes, so any object with them fits: the virtual keys'
cache, the providers' cache, or a few lines in a test. Members are read-only properties so
frozen dataclasses satisfy them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Protocol


class GatewayKey(Protocol):
    """An end user's virtual key, as its resolver found it."""

    @property
    def id(self) -> object: ...
    @property
    def account_id(self) -> int: ...
    @property
    def account_external_id(self) -> str: ...
    @property
    def allowed_models(self) -> Collection[str] | None:
        """Exact names or glob patterns; None: every model, empty: none."""
        ...

    @property
    def byok_provider(self) -> str | None: ...
    @property
    def byok_secret(self) -> str | None: ...

    @property
    def rpm_limit(self) -> int | None: ...


class KeyResolver(Protocol):
    async def authenticate(self, secret: str) -> GatewayKey | None: ...


class UpstreamRoute(Protocol):
    """One provider serving a model. `base_url` ends where the OpenAI SDK's does (".../v1"):
    the gateway appends "/chat/completions" or "/embeddings". Without `api_key` (a local
    server) no Authorization header is sent."""

    @property
    def provider_id(self) -> object: ...
    @property
    def provider_name(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def api_key(self) -> str | None: ...
    @property
    def upstream_model(self) -> str: ...
    @property
    def timeout_seconds(self) -> float: ...


class Router(Protocol):
    def routes(self, model: str) -> Sequence[UpstreamRoute]:
        """The routes serving `model`, in failover order; empty when none does."""
        ...

    def models(self) -> Iterable[str]:
        """Every model name some route serves."""
        ...


class AccountReads(Protocol):
    async def available(self, account_id: int) -> int:
        """Credits the account may spend now (its holds already taken off)."""
        ...

    async def window_reset(self, account_id: int, limit: str, now: datetime) -> datetime | None:
        """When the window of a day or month `limit` starts over for this account; None for a
        limit without a window."""
        ...
