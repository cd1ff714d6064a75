"""The OpenAI-compatible gateway: /v1/chat/completions, /v1/embeddings and /v1/models.

End users call Tollgate with any OpenAI client and a virtual key (`Bearer tg-...`); each call
is authorized against the key's account, sent to the model's providers with failover, and
recorded with the usage the provider reports. See `service` for the life of one call.
"""

from tollgate.gateway.accounts import LedgerAccounts
from tollgate.gateway.ports import AccountReads, GatewayKey, KeyResolver, Router, UpstreamRoute
from tollgate.gateway.service import Gateway, GatewayDeps, GatewayOptions

__all__ = [
    "AccountReads",
    "Gateway",
    "GatewayDeps",
    "GatewayKey",
    "GatewayOptions",
    "KeyResolver",
    "LedgerAccounts",
    "Router",
    "UpstreamRoute",
]
