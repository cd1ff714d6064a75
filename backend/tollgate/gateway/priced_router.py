"""Routes from the providers; the model list from the catalog as well.

Providers match models by glob patterns, which cannot be listed. `GET /v1/models` shows the
priced models some provider serves, beside the exact names providers declare."""

from __future__ import annotations

from tollgate.pricing.cache import PricingCache
from tollgate.providers.cache import ProviderCache
from tollgate.providers.routing import Route


class PricedRouter:
    def __init__(self, providers: ProviderCache, pricing: PricingCache) -> None:
        self._providers, self._pricing = providers, pricing

    def routes(self, model: str) -> list[Route]:
        return self._providers.routes(model)

    def models(self) -> list[str]:
        served = {m for m in self._pricing.models() if self._providers.routes(m)}
        return sorted(served | set(self._providers.models()))
