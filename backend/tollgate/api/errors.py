"""GraphQL shapes of the domain's typed failures, and the one-to-one mapping onto them."""

from __future__ import annotations

import dataclasses
from typing import Any

import strawberry
from graphql import GraphQLError

from tollgate import errors
from tollgate.api.scalars import BigInt


class ClientError(GraphQLError):
    """Bad arguments to a query: shown to the caller as is (never masked)."""

    def __init__(self, message: str, *, code: str = "BAD_USER_INPUT") -> None:
        super().__init__(message, extensions={"code": code})


@strawberry.type(description="The input was refused; nothing was changed.")
class ValidationFailed:
    field: str
    message: str


@strawberry.type
class AccountNotFound:
    external_id: str
    message: str


@strawberry.type
class OrganizationNotFound:
    external_id: str
    message: str


@strawberry.type
class NotFound:
    id: str
    message: str


@strawberry.type
class AlreadyExists:
    field: str
    message: str


@strawberry.type(
    description="The idempotency key was used before with different parameters; nothing booked."
)
class IdempotencyConflict:
    idempotency_key: str
    message: str


@strawberry.type(description="Not enough credits; nothing booked.")
class InsufficientCredits:
    available: BigInt
    requested: BigInt
    message: str


@strawberry.type(description="The catalog has no price for this model at that time.")
class UnknownModel:
    model: str
    provider: str | None
    message: str


@strawberry.type(
    description="Not allowed in the current status (publish a published version, cancel a "
    "canceled subscription, …); nothing was changed."
)
class IllegalTransition:
    id: str
    status: str
    action: str
    message: str


_GRAPHQL_TYPES: dict[type, type] = {
    errors.ValidationFailed: ValidationFailed,
    errors.AccountNotFound: AccountNotFound,
    errors.OrganizationNotFound: OrganizationNotFound,
    errors.NotFound: NotFound,
    errors.AlreadyExists: AlreadyExists,
    errors.IdempotencyConflict: IdempotencyConflict,
    errors.InsufficientCredits: InsufficientCredits,
    errors.UnknownModel: UnknownModel,
    errors.IllegalTransition: IllegalTransition,
}
DOMAIN_ERRORS = tuple(_GRAPHQL_TYPES)


def is_domain_error(value: object) -> bool:
    return isinstance(value, DOMAIN_ERRORS)


def to_graphql(error: Any) -> Any:
    return _GRAPHQL_TYPES[type(error)](**dataclasses.asdict(error))
