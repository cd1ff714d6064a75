"""Creating and finding accounts and organisations. Each gets its ledger wallet on creation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account, Organization
from tollgate.errors import AlreadyExists, OrganizationNotFound, ValidationFailed
from tollgate.ledger.models import Wallet

MAX_EXTERNAL_ID = 200


@dataclass(frozen=True)
class NewAccount:
    external_id: str
    name: str = ""
    email: str | None = None
    organization_external_id: str | None = None


def _check_external_id(value: str) -> ValidationFailed | None:
    if not value.strip():
        return ValidationFailed("externalId", "must not be empty")
    if len(value) > MAX_EXTERNAL_ID:
        return ValidationFailed("externalId", f"at most {MAX_EXTERNAL_ID} characters")
    return None


def _check_email(value: str | None) -> ValidationFailed | None:
    if value is None:
        return None
    local, _, domain = value.partition("@")
    if not local or "." not in domain or len(value) > 320 or any(c.isspace() for c in value):
        return ValidationFailed("email", "not an email address")
    return None


async def get_account(session: AsyncSession, external_id: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.external_id == external_id))


async def get_organization(session: AsyncSession, external_id: str) -> Organization | None:
    return await session.scalar(select(Organization).where(Organization.external_id == external_id))


async def create_organization(
    session: AsyncSession, *, external_id: str, name: str = "", member_cap: int | None = None
) -> Organization | ValidationFailed | AlreadyExists:
    if (invalid := _check_external_id(external_id)) is not None:
        return invalid
    if member_cap is not None and member_cap < 0:
        return ValidationFailed("memberCap", "must be zero or more")
    if await get_organization(session, external_id) is not None:
        return AlreadyExists("externalId", "an organization with this external id exists")
    org = Organization(external_id=external_id, name=name, member_cap=member_cap)
    session.add(org)
    await session.flush()
    session.add(Wallet(kind="ORGANIZATION", organization_id=org.id))
    await session.flush()
    return org


async def create_account(
    session: AsyncSession, new: NewAccount
) -> Account | ValidationFailed | AlreadyExists | OrganizationNotFound:
    for invalid in (_check_external_id(new.external_id), _check_email(new.email)):
        if invalid is not None:
            return invalid
    org_id = None
    if new.organization_external_id is not None:
        org = await get_organization(session, new.organization_external_id)
        if org is None:
            return OrganizationNotFound(new.organization_external_id)
        org_id = org.id
    if await get_account(session, new.external_id) is not None:
        return AlreadyExists("externalId", "an account with this external id exists")
    account = Account(
        external_id=new.external_id, name=new.name, email=new.email, organization_id=org_id
    )
    session.add(account)
    await session.flush()
    session.add(Wallet(kind="ACCOUNT", account_id=account.id))
    await session.flush()
    return account


async def list_accounts(
    session: AsyncSession, *, first: int, after_id: int | None, search: str | None
) -> Sequence[Account]:
    """Oldest first by id; one extra row tells the caller whether another page exists."""
    query = select(Account).order_by(Account.id).limit(first + 1)
    if after_id is not None:
        query = query.where(Account.id > after_id)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
        query = query.where(
            or_(
                Account.external_id.ilike(pattern),
                Account.name.ilike(pattern),
                Account.email.ilike(pattern),
            )
        )
    return (await session.scalars(query)).all()


async def list_organizations(
    session: AsyncSession, *, first: int, after_id: int | None
) -> Sequence[Organization]:
    query = select(Organization).order_by(Organization.id).limit(first + 1)
    if after_id is not None:
        query = query.where(Organization.id > after_id)
    return (await session.scalars(query)).all()
