from __future__ import annotations

from typing import Any, NewType

import strawberry
from graphql import GraphQLError, IntValueNode, StringValueNode, ValueNode
from strawberry.types.scalar import ScalarDefinition

# GraphQL's Int is 32-bit; credit and money amounts are 64-bit integers, sent as JSON numbers
# (exact in JavaScript up to 2^53, far above any amount the ledger accepts).
BigInt = NewType("BigInt", int)


def _parse_bigint(value: object) -> BigInt:
    if isinstance(value, bool):
        raise ValueError("BigInt cannot be a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.lstrip("-").isdigit():
        number = int(value)
    else:
        raise ValueError("BigInt must be a whole number")
    if not -(2**63) <= number < 2**63:
        raise ValueError("BigInt out of range")
    return BigInt(number)


def _parse_bigint_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> BigInt:
    if isinstance(node, IntValueNode | StringValueNode):
        try:
            return _parse_bigint(int(node.value) if isinstance(node, IntValueNode) else node.value)
        except ValueError as error:
            raise GraphQLError(f"BigInt: {error}") from None
    raise GraphQLError("BigInt must be a whole number")


SCALARS: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A 64-bit integer (credits, micro-USD, minor currency units).",
        serialize=int,
        parse_value=_parse_bigint,
        parse_literal=_parse_bigint_literal,
    )
}
