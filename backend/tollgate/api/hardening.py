"""Input and error hygiene every operation gets, whatever its resolvers do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, StringValueNode, visit
from graphql.language import Visitor
from strawberry.extensions import SchemaExtension

SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def strip_suggestion(error: GraphQLError) -> None:
    """Without introspection, a 'Did you mean' would reveal the schema's names one by one."""
    error.message = SUGGESTION.sub("", error.message)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class _NulFinder(Visitor):
    found = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if "\x00" in node.value:
            self.found = True


class RejectNulCharacters(SchemaExtension):
    """PostgreSQL text cannot hold NUL. Refuse it up front with a clear error instead of letting
    a statement fail halfway through an operation."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        finder = _NulFinder()
        if context.graphql_document is not None:
            visit(context.graphql_document, finder)
        if finder.found or _has_nul(context.variables or {}):
            # Runs after the validation cache has filled in its errors (it comes later in the
            # extension list); any error here ends the operation before execution.
            context.pre_execution_errors = [
                *(context.pre_execution_errors or []),
                GraphQLError(
                    "text must not contain NUL characters", extensions={"code": "BAD_USER_INPUT"}
                ),
            ]
        yield
