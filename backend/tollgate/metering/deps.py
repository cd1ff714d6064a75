"""What metering needs besides a session: settings and the per-process caches."""

from __future__ import annotations

from dataclasses import dataclass

from tollgate.config import Settings
from tollgate.controls.cache import ControlsCache
from tollgate.limits.rate import RateLimiter
from tollgate.pricing.cache import PricingCache


@dataclass
class MeteringDeps:
    settings: Settings
    pricing: PricingCache
    controls: ControlsCache
    rate: RateLimiter
