"""graphql-transport-ws as strawberry speaks it, with a plainer refusal past the cap.

The close codes clients see (strawberry's, per the protocol):
  4400 malformed message · 4401 subscribe before a successful connection_init ·
  4403 connection_init with a missing, malformed, unknown or revoked key, or a subscribe
       after the connection's key was revoked ·
  4406 any other subprotocol (legacy graphql-ws is off) · 4408 no connection_init in time ·
  4409 an operation id already in use · 4429 a second connection_init.
Past `max_subscriptions_per_connection` operations the connection stays open: the new one
gets an `error` message saying so, and the others carry on.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage

from tollgate.api.context import Context
from tollgate.live.auth import reauthenticate


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # Each operation re-checks the key: one revoked since connection_init closes 4403.
        if self.connection_acknowledged and await reauthenticate(self.context) is None:
            await self.websocket.close(code=4403, reason="Forbidden")
            return
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            error = GraphQLError(
                f"too many subscriptions on this connection: at most {limit} at once; "
                "complete one or open another connection",
                extensions={"code": "TOO_MANY_SUBSCRIPTIONS"},
            )
            payload: Any = [error.formatted]
            await self.send_message({"id": message["id"], "type": "error", "payload": payload})
            return
        await super().handle_subscribe(message)
