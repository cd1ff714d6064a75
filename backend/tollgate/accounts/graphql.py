"""GraphQL adapter of accounts and organisations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from tollgate.accounts import models, service
from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import (
    AlreadyExists,
    OrganizationNotFound,
    ValidationFailed,
    is_domain_error,
    to_graphql,
)
from tollgate.api.pagination import Connection, connection, page_args
from tollgate.api.permissions import READ, WRITE
from tollgate.api.scalars import BigInt
from tollgate.ledger import history, wallets
from tollgate.ledger.graphql import AccountLedgerLine, Balance, CreditGrant, LedgerTransaction
from tollgate.ledger.service import live_grants


@strawberry.type
class Organization:
    id: strawberry.ID
    external_id: str
    name: str
    member_cap: BigInt | None
    created_at: datetime

    @strawberry.field(description="The shared pool.")
    async def balance(self, info: Info) -> Balance:
        async with info.context.db.transaction() as session:
            org = await session.get(models.Organization, int(self.id))
            assert org is not None
            return Balance.of(await wallets.organization_balance(session, org))

    @classmethod
    def of(cls, o: models.Organization) -> Organization:
        return cls(
            id=strawberry.ID(str(o.id)),
            external_id=o.external_id,
            name=o.name,
            member_cap=None if o.member_cap is None else BigInt(o.member_cap),
            created_at=o.created_at,
        )


@strawberry.type
class Account:
    id: strawberry.ID
    external_id: str
    name: str
    email: str | None
    created_at: datetime
    organization_id: strawberry.Private[int | None]

    @strawberry.field
    async def organization(self, info: Info) -> Organization | None:
        if self.organization_id is None:
            return None
        async with info.context.db.transaction() as session:
            org = await session.get(models.Organization, self.organization_id)
        return Organization.of(org) if org else None

    @strawberry.field
    async def balance(self, info: Info) -> Balance:
        async with info.context.db.transaction() as session:
            account = await session.get(models.Account, int(self.id))
            assert account is not None
            return Balance.of(await wallets.account_balance(session, account))

    @strawberry.field(description="Grants with credits left, in the order they will be consumed.")
    async def grants(self, info: Info) -> list[CreditGrant]:
        async with info.context.db.transaction() as session:
            wallet_id = await wallets.account_wallet_id(session, int(self.id))
            return [CreditGrant.of(g) for g in await live_grants(session, wallet_id)]

    @strawberry.field(description="Transactions that touched this account, newest first.")
    async def ledger(
        self, info: Info, first: int = 50, after: str | None = None
    ) -> Connection[AccountLedgerLine]:
        before = page_args(first, after)
        async with info.context.db.transaction() as session:
            wallet_id = await wallets.account_wallet_id(session, int(self.id))
            rows = await history.wallet_history(session, wallet_id, first=first, before_seq=before)
        return connection(
            rows,
            first,
            key=lambda r: r.transaction.seq,
            node=lambda r: AccountLedgerLine(
                delta=BigInt(r.delta), transaction=LedgerTransaction.of(r.transaction)
            ),
        )

    @classmethod
    def of(cls, a: models.Account) -> Account:
        return cls(
            id=strawberry.ID(str(a.id)),
            external_id=a.external_id,
            name=a.name,
            email=a.email,
            created_at=a.created_at,
            organization_id=a.organization_id,
        )


@strawberry.input
class CreateAccountInput:
    external_id: str
    name: str = ""
    email: str | None = None
    organization_external_id: str | None = None


@strawberry.input
class CreateOrganizationInput:
    external_id: str
    name: str = ""
    member_cap: BigInt | None = strawberry.field(
        default=None, description="Most pool credits one member may draw (net of refunds)."
    )


CreateAccountResult = Annotated[
    Account | ValidationFailed | AlreadyExists | OrganizationNotFound,
    strawberry.union("CreateAccountResult"),
]
CreateOrganizationResult = Annotated[
    Organization | ValidationFailed | AlreadyExists, strawberry.union("CreateOrganizationResult")
]


@strawberry.type
class Query:
    @strawberry.field(permission_classes=READ)
    async def account(self, info: Info, external_id: str) -> Account | None:
        async with info.context.db.transaction() as session:
            found = await service.get_account(session, external_id)
        return Account.of(found) if found else None

    @strawberry.field(
        permission_classes=READ, description="Oldest first; search matches id, name, email."
    )
    async def accounts(
        self, info: Info, first: int = 50, after: str | None = None, search: str | None = None
    ) -> Connection[Account]:
        after_id = page_args(first, after)
        async with info.context.db.transaction() as session:
            rows = await service.list_accounts(
                session, first=first, after_id=after_id, search=search
            )
        return connection(rows, first, key=lambda a: a.id, node=Account.of)

    @strawberry.field(permission_classes=READ)
    async def organization(self, info: Info, external_id: str) -> Organization | None:
        async with info.context.db.transaction() as session:
            found = await service.get_organization(session, external_id)
        return Organization.of(found) if found else None

    @strawberry.field(permission_classes=READ)
    async def organizations(
        self, info: Info, first: int = 50, after: str | None = None
    ) -> Connection[Organization]:
        after_id = page_args(first, after)
        async with info.context.db.transaction() as session:
            rows = await service.list_organizations(session, first=first, after_id=after_id)
        return connection(rows, first, key=lambda o: o.id, node=Organization.of)


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=WRITE)
    async def create_account(self, info: Info, input: CreateAccountInput) -> CreateAccountResult:
        new = service.NewAccount(
            external_id=input.external_id,
            name=input.name,
            email=input.email,
            organization_external_id=input.organization_external_id,
        )
        result = await audited(info, "createAccount", new, lambda s: service.create_account(s, new))
        return to_graphql(result) if is_domain_error(result) else Account.of(result)  # type: ignore[arg-type]

    @strawberry.mutation(permission_classes=WRITE)
    async def create_organization(
        self, info: Info, input: CreateOrganizationInput
    ) -> CreateOrganizationResult:
        params = {
            "externalId": input.external_id,
            "name": input.name,
            "memberCap": input.member_cap,
        }
        result = await audited(
            info,
            "createOrganization",
            params,
            lambda s: service.create_organization(
                s, external_id=input.external_id, name=input.name, member_cap=input.member_cap
            ),
        )
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        return Organization.of(result)  # type: ignore[arg-type]
