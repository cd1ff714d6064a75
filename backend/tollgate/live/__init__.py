"""Live updates: GraphQL subscriptions fed by Redis pub/sub, so an event booked on one replica
reaches subscribers on every replica.

Writers publish only after their transaction commits (tollgate.live.publish); each process
hears every channel on its one pub/sub connection and hands messages to its subscriptions
(tollgate.live.hub); the GraphQL fields are thin (tollgate.live.graphql). Pub/sub delivers at
most once: live updates tell listeners now, PostgreSQL stays the record.
"""
