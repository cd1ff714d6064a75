"""GraphQL adapter of admin keys: only owners manage them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import NotFound, ValidationFailed, is_domain_error, to_graphql
from tollgate.api.permissions import OWN, READ
from tollgate.auth import models, service
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


@strawberry.type
class Me:
    name: str
    role: AdminRole


CreateAdminKeyResult = Annotated[
    CreatedAdminKey | ValidationFailed, strawberry.union("CreateAdminKeyResult")
]
RevokeAdminKeyResult = Annotated[AdminKey | NotFound, strawberry.union("RevokeAdminKeyResult")]


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
