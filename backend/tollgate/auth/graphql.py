"""GraphQL adapter of admin keys and admin users: only owners manage them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry

from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import (
    AlreadyExists,
    NotFound,
    ValidationFailed,
    is_domain_error,
    to_graphql,
)
from tollgate.api.permissions import OWN, READ
from tollgate.auth import models, service, users
from tollgate.pagination import parse_id


@strawberry.enum
class AdminRole(Enum):
    OWNER = "owner"
    ADMIN = "admin"
    ANALYST = "analyst"
    SERVICE = "service"


@strawberry.type
class AdminKey:
    id: strawberry.ID
    name: str
    role: AdminRole
    prefix: str = strawberry.field(
        description="The first characters of the secret, to tell keys apart."
    )
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, k: models.AdminApiKey) -> AdminKey:
        return cls(
            id=strawberry.ID(str(k.id)),
            name=k.name,
            role=AdminRole(k.role),
            prefix=k.prefix,
            created_at=k.created_at,
            revoked_at=k.revoked_at,
            last_used_at=k.last_used_at,
        )


@strawberry.type(description="The secret is shown this once and never again.")
class CreatedAdminKey:
    key: AdminKey
    secret: str


@strawberry.type(description="A person who signs in to the admin app with email and password.")
class AdminUser:
    id: strawberry.ID
    email: str
    role: AdminRole
    disabled: bool
    created_at: datetime
    disabled_at: datetime | None
    last_login_at: datetime | None

    @classmethod
    def of(cls, u: models.AdminUser) -> AdminUser:
        return cls(
            id=strawberry.ID(str(u.id)),
            email=u.email,
            role=AdminRole(u.role),
            disabled=u.disabled_at is not None,
            created_at=u.created_at,
            disabled_at=u.disabled_at,
            last_login_at=u.last_login_at,
        )


@strawberry.input
class CreateAdminUserInput:
    email: str
    password: str = strawberry.field(description="At least 12 characters; stored as argon2id.")
    role: AdminRole = strawberry.field(description="OWNER, ADMIN or ANALYST (not SERVICE).")


@strawberry.type
class Me:
    name: str
    role: AdminRole


CreateAdminKeyResult = Annotated[
    CreatedAdminKey | ValidationFailed, strawberry.union("CreateAdminKeyResult")
]
RevokeAdminKeyResult = Annotated[AdminKey | NotFound, strawberry.union("RevokeAdminKeyResult")]
CreateAdminUserResult = Annotated[
    AdminUser | ValidationFailed | AlreadyExists, strawberry.union("CreateAdminUserResult")
]
SetAdminUserRoleResult = Annotated[
    AdminUser | NotFound | ValidationFailed, strawberry.union("SetAdminUserRoleResult")
]
DisableAdminUserResult = Annotated[
    AdminUser | NotFound | ValidationFailed, strawberry.union("DisableAdminUserResult")
]


@strawberry.type
class Query:
    @strawberry.field(permission_classes=READ, description="The caller's own identity and role.")
    def me(self, info: Info) -> Me:
        principal = info.context.principal
        assert principal is not None
        return Me(name=principal.name, role=AdminRole(principal.role.label))

    @strawberry.field(permission_classes=OWN)
    async def admin_keys(self, info: Info) -> list[AdminKey]:
        async with info.context.db.transaction() as session:
            return [AdminKey.of(k) for k in await service.list_keys(session)]

    @strawberry.field(permission_classes=OWN)
    async def admin_users(self, info: Info) -> list[AdminUser]:
        async with info.context.db.transaction() as session:
            return [AdminUser.of(u) for u in await users.list_users(session)]


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=OWN)
    async def create_admin_key(
        self, info: Info, name: str, role: AdminRole
    ) -> CreateAdminKeyResult:
        principal = info.context.principal
        assert principal is not None
        result = await audited(
            info,
            "createAdminKey",
            {"name": name, "role": role.value},
            lambda s: service.create_key(s, name=name, role=role.value, created_by=principal.actor),
        )
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, service.CreatedKey)
        return CreatedAdminKey(key=AdminKey.of(result.key), secret=result.secret)

    @strawberry.mutation(permission_classes=OWN)
    async def revoke_admin_key(self, info: Info, id: strawberry.ID) -> RevokeAdminKeyResult:
        key_id = parse_id(str(id)) or -1
        result = await audited(
            info, "revokeAdminKey", {"id": str(id)}, lambda s: service.revoke_key(s, key_id)
        )
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, models.AdminApiKey)
        await info.context.principals.revoked()
        return AdminKey.of(result)

    @strawberry.mutation(permission_classes=OWN)
    async def create_admin_user(
        self, info: Info, input: CreateAdminUserInput
    ) -> CreateAdminUserResult:
        principal = info.context.principal
        assert principal is not None
        result = await audited(
            info,
            "createAdminUser",
            # Never the password, not even redacted.
            {"email": users.normalize_email(input.email), "role": input.role.value},
            lambda s: users.create_user(
                s,
                email=input.email,
                password=input.password,
                role=input.role.value,
                created_by=principal.actor,
            ),
        )
        return _user_result(result)  # type: ignore[no-any-return]

    @strawberry.mutation(
        permission_classes=OWN,
        description="Takes effect on the user's next request, in every signed-in session.",
    )
    async def set_admin_user_role(
        self, info: Info, id: strawberry.ID, role: AdminRole
    ) -> SetAdminUserRoleResult:
        user_id = parse_id(str(id)) or -1
        result = await audited(
            info,
            "setAdminUserRole",
            {"id": str(id), "role": role.value},
            lambda s: users.set_role(s, user_id, role.value),
        )
        await info.context.principals.sessions_changed()
        return _user_result(result)  # type: ignore[no-any-return]

    @strawberry.mutation(
        permission_classes=OWN,
        description="The user can no longer sign in, and every session they have ends now.",
    )
    async def disable_admin_user(self, info: Info, id: strawberry.ID) -> DisableAdminUserResult:
        user_id = parse_id(str(id)) or -1
        result = await audited(
            info, "disableAdminUser", {"id": str(id)}, lambda s: users.disable_user(s, user_id)
        )
        await info.context.principals.sessions_changed()
        return _user_result(result)  # type: ignore[no-any-return]


def _user_result(result: object) -> Any:
    if is_domain_error(result):
        return to_graphql(result)
    assert isinstance(result, models.AdminUser)
    return AdminUser.of(result)
