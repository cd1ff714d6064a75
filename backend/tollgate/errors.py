"""Failures a caller can act on. Services return these; the API maps them one to one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ValidationFailed:
    field: str
    message: str


@dataclass(frozen=True)
class AccountNotFound:
    external_id: str
    message: str = "no account with this external id"


@dataclass(frozen=True)
class OrganizationNotFound:
    external_id: str
    message: str = "no organization with this external id"


@dataclass(frozen=True)
class NotFound:
    id: str
    message: str = "not found"


@dataclass(frozen=True)
class AlreadyExists:
    field: str
    message: str


@dataclass(frozen=True)
class IdempotencyConflict:
    idempotency_key: str
    message: str = "this idempotency key was used with different parameters"


@dataclass(frozen=True)
class InsufficientCredits:
    available: int
    requested: int
    message: str = "not enough credits"


@dataclass(frozen=True)
class UnknownModel:
    model: str
    provider: str | None = None
    message: str = "no price for this model at that time"


@dataclass(frozen=True)
class IllegalTransition:
    """The thing is in a state that does not allow this action (publish a published version,
    cancel a canceled subscription, …); nothing was changed."""

    id: str
    status: str
    action: str
    message: str


DomainError = (
    ValidationFailed
    | AccountNotFound
    | OrganizationNotFound
    | NotFound
    | AlreadyExists
    | IdempotencyConflict
    | InsufficientCredits
    | UnknownModel
    | IllegalTransition
)


class Rejected(Exception):
    """A failure found after writing began: the transaction is rolled back and the error is
    returned to the caller as if nothing had been tried."""

    def __init__(self, error: DomainError) -> None:
        super().__init__(error.message)
        self.error = error
