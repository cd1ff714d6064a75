"""Which upstreams serve a model, in the order the gateway tries them.

A provider serves a model when one of its patterns matches the model name. Candidates are
ordered by priority (lower first), then by name, so the order is total and the same on every
replica; the gateway tries them in turn and fails over to the next.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tollgate.providers.validation import matches


@dataclass(frozen=True)
class Route:
    provider_id: int
    provider_name: str
    base_url: str
    api_key: str | None = field(repr=False)
    upstream_model: str
    timeout_seconds: float


@dataclass(frozen=True)
class Upstream:
    """An enabled provider as the router holds it, its stored key already decrypted."""

    id: int
    name: str
    base_url: str
    patterns: tuple[str, ...]
    model_map: Mapping[str, str]
    priority: int
    timeout_seconds: float
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None

    def serves(self, model: str) -> bool:
        return matches(model, self.patterns)

    def route(self, model: str, environ: Mapping[str, str] = os.environ) -> Route:
        """The environment is read here, at call time, so a rotated variable takes effect
        without a reload."""
        api_key = self.api_key
        if self.api_key_env is not None:
            api_key = environ.get(self.api_key_env) or None
        return Route(
            provider_id=self.id,
            provider_name=self.name,
            base_url=self.base_url,
            api_key=api_key,
            upstream_model=self.model_map.get(model, model),
            timeout_seconds=self.timeout_seconds,
        )


def in_order(upstreams: Sequence[Upstream]) -> tuple[Upstream, ...]:
    return tuple(sorted(upstreams, key=lambda u: (u.priority, u.name)))


def candidates(ordered: Sequence[Upstream], model: str) -> tuple[Upstream, ...]:
    """`ordered` as in_order returns it."""
    return tuple(u for u in ordered if u.serves(model))
