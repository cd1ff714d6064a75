"""The root schema, assembled from each domain's Query and Mutation, with its safety limits."""

from __future__ import annotations

import logging
from collections.abc import Iterable
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
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from tollgate.accounts import graphql as accounts
from tollgate.api.hardening import RejectNulCharacters, strip_suggestion
from tollgate.api.scalars import SCALARS
from tollgate.apikeys import graphql as apikeys
from tollgate.audit import graphql as audit
from tollgate.auth import graphql as auth
from tollgate.controls import graphql as controls
from tollgate.ledger import graphql as ledger
from tollgate.limits import graphql as limits
from tollgate.live import graphql as live
from tollgate.metering import graphql as metering
from tollgate.notifications import graphql as notifications
from tollgate.plans import graphql as plans
from tollgate.pricing import graphql as pricing
from tollgate.providers import graphql as providers
from tollgate.subscriptions import graphql as subscriptions

Query = merge_types(
    "Query",
    (
        accounts.Query,
        auth.Query,
        audit.Query,
        limits.Query,
        controls.Query,
        notifications.Query,
        pricing.Query,
        metering.Query,
        apikeys.Query,
        providers.Query,
        plans.Query,
        subscriptions.Query,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        accounts.Mutation,
        ledger.Mutation,
        auth.Mutation,
        limits.Mutation,
        controls.Mutation,
        pricing.Mutation,
        metering.Mutation,
        apikeys.Mutation,
        providers.Mutation,
        plans.Mutation,
        subscriptions.Mutation,
    ),
)
Subscription = merge_types("Subscription", (live.Subscription,))

log = logging.getLogger(__name__)
MAX_DEPTH = 10
MAX_TOKENS = 2_000
MAX_ALIASES = 30


def _should_mask(error: GraphQLError) -> bool:
    """Hide unexpected exceptions; keep GraphQL's own errors and those raised for the caller."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class TollgateSchema(strawberry.Schema):
    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        # `execute` serves HTTP. Subscriptions run over graphql-transport-ws only, where the
        # connection is authenticated once and its operations are capped: refused here (400).
        allowed = set(allowed_operation_types or OperationType) - {OperationType.SUBSCRIPTION}
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed,
            operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        unexpected = []
        for error in errors:
            strip_suggestion(error)
            if _should_mask(error):
                unexpected.append(error)
            else:
                # The caller's own mistake (bad query, missing key): no traceback in our logs.
                log.info("refused: %s", error.message)
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(*, introspection: bool) -> strawberry.Schema:
    # Factories, not instances: each operation gets extensions of its own. The limiters'
    # validation rules are built once, though: the validation cache is keyed by the rule
    # classes, and a new class per operation would never hit it.
    rules = [
        *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    extensions: list[Any] = [
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
        lambda: MaskErrors(should_mask_error=_should_mask),
        RejectNulCharacters,
    ]
    return TollgateSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=True, scalar_map=SCALARS),
    )


def schema_sdl() -> str:
    return build_schema(introspection=True).as_str() + "\n"
