"""The root schema, assembled from each domain's Query and Mutation, with its safety limits."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from tollgate.accounts import graphql as accounts
from tollgate.api.scalars import SCALARS
from tollgate.audit import graphql as audit
from tollgate.auth import graphql as auth
from tollgate.ledger import graphql as ledger

Query = merge_types("Query", (accounts.Query, auth.Query, audit.Query))
Mutation = merge_types("Mutation", (accounts.Mutation, ledger.Mutation, auth.Mutation))

MAX_DEPTH = 10
MAX_TOKENS = 2_000
MAX_ALIASES = 30


def _should_mask(error: GraphQLError) -> bool:
    """Hide unexpected exceptions; keep GraphQL's own errors and those raised for the caller."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def build_schema(*, introspection: bool) -> strawberry.Schema:
    extensions: list[Any] = [
        QueryDepthLimiter(max_depth=MAX_DEPTH),
        MaxTokensLimiter(max_token_count=MAX_TOKENS),
        MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        ParserCache(maxsize=1024),
        ValidationCache(maxsize=1024),
        MaskErrors(should_mask_error=_should_mask),
    ]
    if not introspection:
        extensions.append(AddValidationRules([NoSchemaIntrospectionCustomRule]))
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=True, scalar_map=SCALARS),
    )


def schema_sdl() -> str:
    return build_schema(introspection=True).as_str() + "\n"
