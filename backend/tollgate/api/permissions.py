"""Role checks for every field, the same for admin keys and signed-in users: nobody
authenticated is UNAUTHENTICATED, too low a role is FORBIDDEN."""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from tollgate.api.context import Info
from tollgate.auth.service import Role


class Authenticated(BasePermission):
    message = (
        "authentication required: send an admin key as 'Authorization: Bearer <key>'"
        " or sign in at /auth/login"
    )
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.principal is not None


class _AtLeast(BasePermission):
    required: Role
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.role >= self.required


class AnalystRole(_AtLeast):
    required = Role.ANALYST
    message = "forbidden: needs the analyst role or higher"


class AdminRole(_AtLeast):
    required = Role.ADMIN
    message = "forbidden: needs the admin role or higher"


class OwnerRole(_AtLeast):
    required = Role.OWNER
    message = "forbidden: needs the owner role"


class MeteringRole(BasePermission):
    """The SaaS backend's service keys, and admins."""

    message = "forbidden: needs a service key or the admin role"
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal = info.context.principal
        return principal is not None and principal.role in (Role.SERVICE, Role.ADMIN, Role.OWNER)


READ: list[type[BasePermission]] = [Authenticated, AnalystRole]
WRITE: list[type[BasePermission]] = [Authenticated, AdminRole]
OWN: list[type[BasePermission]] = [Authenticated, OwnerRole]
METER: list[type[BasePermission]] = [Authenticated, MeteringRole]
