"""The GraphQL API: shared plumbing. Each domain's types, queries and mutations live beside it."""
