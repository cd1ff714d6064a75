"""GraphQL adapter of the plan catalog: features, plans and versions, token packages."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.api.audited import audited
from tollgate.api.context import Info
from tollgate.api.errors import (
    AccountNotFound,
    AlreadyExists,
    IdempotencyConflict,
    IllegalTransition,
    NotFound,
    ValidationFailed,
    is_domain_error,
    to_graphql,
)
from tollgate.api.permissions import READ, WRITE
from tollgate.api.scalars import BigInt
from tollgate.errors import ValidationFailed as Invalid
from tollgate.live import publish as live
from tollgate.notifications.service import publish_alerts
from tollgate.pagination import parse_id
from tollgate.plans import models, packages, publishing, service
from tollgate.plans.content import ResolvedPrice as ResolvedPriceRow
from tollgate.plans.graphql_types import (
    BillingCycle,
    CreatePlanInput,
    Feature,
    Plan,
    PlanVersion,
    PlanVersionInput,
    ResolvedPrice,
    TokenPackage,
    UpsertFeatureInput,
    UpsertTokenPackageInput,
    content_of,
)
from tollgate.pricing.cache import TOPIC as PRICING_TOPIC


@strawberry.enum(description="What happens to subscribers of the plan's older versions.")
class PublishMigration(Enum):
    NONE = "NONE"
    NEXT_RENEWAL = "NEXT_RENEWAL"
    IMMEDIATELY = "IMMEDIATELY"


@strawberry.enum
class MigrationTiming(Enum):
    NEXT_RENEWAL = "NEXT_RENEWAL"
    IMMEDIATELY = "IMMEDIATELY"


@strawberry.type
class PublishedPlanVersion:
    version: PlanVersion
    affected_subscribers: int = strawberry.field(
        description="Live subscribers of older versions, each notified."
    )
    migrate: PublishMigration


@strawberry.type
class SubscribersMigrated:
    moved: int
    effective: MigrationTiming


@strawberry.type
class TokenPurchase:
    transaction_id: str
    credits: BigInt
    payment_id: strawberry.ID
    payment_status: str
    currency: str
    amount_minor: BigInt


FeatureResult = Annotated[Feature | ValidationFailed, strawberry.union("FeatureResult")]
PlanVersionResult = Annotated[
    PlanVersion | ValidationFailed | NotFound | AlreadyExists | IllegalTransition,
    strawberry.union("PlanVersionResult"),
]
PublishResult = Annotated[
    PublishedPlanVersion | ValidationFailed | NotFound | IllegalTransition,
    strawberry.union("PublishPlanVersionResult"),
]
ArchiveResult = Annotated[
    Plan | NotFound | IllegalTransition, strawberry.union("ArchivePlanResult")
]
MigrateResult = Annotated[
    SubscribersMigrated | ValidationFailed | NotFound | IllegalTransition,
    strawberry.union("MigrateSubscribersResult"),
]
PriceForResult = Annotated[
    ResolvedPrice | NotFound | ValidationFailed, strawberry.union("PriceForResult")
]
TokenPackageResult = Annotated[
    TokenPackage | ValidationFailed, strawberry.union("TokenPackageResult")
]
PurchaseResult = Annotated[
    TokenPurchase
    | AccountNotFound
    | NotFound
    | ValidationFailed
    | IllegalTransition
    | IdempotencyConflict,
    strawberry.union("PurchaseTokenPackageResult"),
]


async def plan_view(session: AsyncSession, plan: models.Plan) -> Plan:
    return Plan.of(plan, (await service.versions_of(session, [plan.id]))[plan.id])


async def version_view(session: AsyncSession, version: models.PlanVersion) -> PlanVersion:
    plan = await session.get(models.Plan, version.plan_id)
    assert plan is not None
    return PlanVersion.of(version, plan.code)


def _version_id(value: strawberry.ID, field: str) -> int | Invalid:
    parsed = parse_id(str(value))
    return Invalid(field, "not a plan version id") if parsed is None else parsed


@strawberry.type
class Query:
    @strawberry.field(permission_classes=READ)
    async def features(self, info: Info) -> list[Feature]:
        async with info.context.db.transaction() as session:
            return [Feature.of(f) for f in await service.features(session)]

    @strawberry.field(permission_classes=READ)
    async def plans(self, info: Info, include_archived: bool = False) -> list[Plan]:
        async with info.context.db.transaction() as session:
            found = await service.list_plans(session, include_archived=include_archived)
            versions = await service.versions_of(session, [p.id for p in found])
            return [Plan.of(p, versions[p.id]) for p in found]

    @strawberry.field(permission_classes=READ, description="Null when there is no such plan.")
    async def plan(self, info: Info, code: str) -> Plan | None:
        async with info.context.db.transaction() as session:
            found = await service.get_plan(session, code)
            return None if found is None else await plan_view(session, found)

    @strawberry.field(permission_classes=READ)
    async def plan_version(self, info: Info, id: strawberry.ID) -> PlanVersion | None:
        version_id = parse_id(str(id))
        if version_id is None:
            return None
        async with info.context.db.transaction() as session:
            found = await service.get_version(session, version_id)
            return None if found is None else await version_view(session, found)

    @strawberry.field(
        permission_classes=READ,
        description="The plan's current price for a cycle in a country: its regional price, "
        "else the default currency's.",
    )
    async def price_for(
        self, info: Info, plan_code: str, cycle: BillingCycle, country: str | None = None
    ) -> PriceForResult:
        async with info.context.db.transaction() as session:
            found = await service.price_for(session, plan_code, cycle.value, country)
        if not isinstance(found, ResolvedPriceRow):
            return to_graphql(found)  # type: ignore[no-any-return]
        return ResolvedPrice(
            plan_code=plan_code,
            cycle=BillingCycle(found.cycle),
            currency=found.currency,
            amount_minor=BigInt(found.amount_minor),
            country=found.country,
            regional=found.regional,
        )

    @strawberry.field(permission_classes=READ)
    async def token_packages(
        self, info: Info, include_inactive: bool = False
    ) -> list[TokenPackage]:
        async with info.context.db.transaction() as session:
            found = await packages.all_packages(session, include_inactive=include_inactive)
            return [TokenPackage.of(p) for p in found]


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=WRITE)
    async def upsert_feature(self, info: Info, input: UpsertFeatureInput) -> FeatureResult:
        given = service.FeatureInput(
            input.key, input.name, input.kind.value, input.description, input.unit
        )
        result = await audited(
            info, "upsertFeature", given, lambda s: service.upsert_feature(s, given)
        )
        return to_graphql(result) if is_domain_error(result) else Feature.of(result)  # type: ignore[arg-type]

    @strawberry.mutation(permission_classes=WRITE, description="A plan with a draft version 1.")
    async def create_plan(self, info: Info, input: CreatePlanInput) -> PlanVersionResult:
        content = content_of(input.version)

        async def work(session: AsyncSession) -> object:
            if isinstance(content, Invalid):
                return Invalid("version." + content.field, content.message)
            created = await service.create_plan(
                session, input.code, input.name, input.description, content
            )
            return created if is_domain_error(created) else await version_view(session, created)  # type: ignore[arg-type]

        result = await audited(info, "createPlan", {"code": input.code, "name": input.name}, work)
        return to_graphql(result) if is_domain_error(result) else result  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=WRITE, description="A new draft copied from an existing version."
    )
    async def create_plan_version(
        self, info: Info, from_version_id: strawberry.ID
    ) -> PlanVersionResult:
        version_id = _version_id(from_version_id, "fromVersionId")

        async def work(session: AsyncSession) -> object:
            if isinstance(version_id, Invalid):
                return version_id
            created = await service.create_version(session, version_id)
            return created if is_domain_error(created) else await version_view(session, created)  # type: ignore[arg-type]

        result = await audited(
            info, "createPlanVersion", {"fromVersionId": str(from_version_id)}, work
        )
        return to_graphql(result) if is_domain_error(result) else result  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=WRITE, description="Replace a draft's content.")
    async def update_plan_version(
        self, info: Info, id: strawberry.ID, input: PlanVersionInput
    ) -> PlanVersionResult:
        version_id = _version_id(id, "id")
        content = content_of(input)

        async def work(session: AsyncSession) -> object:
            if isinstance(version_id, Invalid):
                return version_id
            if isinstance(content, Invalid):
                return content
            updated = await service.update_version(session, version_id, content)
            return updated if is_domain_error(updated) else await version_view(session, updated)  # type: ignore[arg-type]

        result = await audited(info, "updatePlanVersion", {"id": str(id)}, work)
        return to_graphql(result) if is_domain_error(result) else result  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=WRITE)
    async def publish_plan_version(
        self, info: Info, id: strawberry.ID, migrate: PublishMigration = PublishMigration.NONE
    ) -> PublishResult:
        version_id = _version_id(id, "id")
        actor = info.context.principal.actor if info.context.principal else ""
        views: dict[str, PlanVersion] = {}

        async def work(session: AsyncSession) -> object:
            if isinstance(version_id, Invalid):
                return version_id
            done = await publishing.publish(
                session, version_id, migrate.value, actor=actor, now=datetime.now(UTC)
            )
            if isinstance(done, publishing.Published):
                views["version"] = PlanVersion.of(done.version, done.plan.code)
            return done

        result = await audited(
            info, "publishPlanVersion", {"id": str(id), "migrate": migrate.value}, work
        )
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, publishing.Published)
        await _after_commit(info, result.alerts)
        await publishing.announce(info.context.redis, result)
        return PublishedPlanVersion(
            version=views["version"], affected_subscribers=result.affected, migrate=migrate
        )

    @strawberry.mutation(
        permission_classes=WRITE, description="No new subscribers; existing ones stay."
    )
    async def archive_plan(self, info: Info, code: str) -> ArchiveResult:
        async def work(session: AsyncSession) -> object:
            archived = await service.archive(session, code, datetime.now(UTC))
            return archived if is_domain_error(archived) else await plan_view(session, archived)  # type: ignore[arg-type]

        result = await audited(info, "archivePlan", {"code": code}, work)
        return to_graphql(result) if is_domain_error(result) else result  # type: ignore[return-value]

    @strawberry.mutation(permission_classes=WRITE)
    async def migrate_subscribers(
        self, info: Info, from_version_id: strawberry.ID, to_version_id: strawberry.ID,
        effective: MigrationTiming,
    ) -> MigrateResult:  # fmt: skip
        source = _version_id(from_version_id, "fromVersionId")
        target = _version_id(to_version_id, "toVersionId")
        actor = info.context.principal.actor if info.context.principal else ""

        async def work(session: AsyncSession) -> object:
            if isinstance(source, Invalid):
                return source
            if isinstance(target, Invalid):
                return target
            return await publishing.migrate_subscribers(
                session, source, target, effective.value, actor=actor, now=datetime.now(UTC)
            )

        params = {
            "from": str(from_version_id),
            "to": str(to_version_id),
            "effective": effective.value,
        }
        result = await audited(info, "migrateSubscribers", params, work)
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, publishing.Migrated)
        await _after_commit(info, result.alerts)
        return SubscribersMigrated(moved=result.moved, effective=effective)

    @strawberry.mutation(permission_classes=WRITE)
    async def upsert_token_package(
        self, info: Info, input: UpsertTokenPackageInput
    ) -> TokenPackageResult:
        prices = {p.currency: int(p.amount_minor) for p in input.prices}
        given = packages.PackageInput(
            code=input.code, credits=input.credits, prices=prices, name=input.name,
            validity_days=input.validity_days, available_to_plans=tuple(input.available_to_plans),
            active=input.active,
        )  # fmt: skip

        async def work(session: AsyncSession) -> object:
            if len(prices) != len(input.prices):
                return Invalid("prices", "each currency once")
            return await packages.upsert(session, given)

        result = await audited(info, "upsertTokenPackage", given, work)
        return to_graphql(result) if is_domain_error(result) else TokenPackage.of(result)  # type: ignore[arg-type]

    @strawberry.mutation(
        permission_classes=WRITE,
        description="Grant the package's credits now and record a pending payment for them.",
    )
    async def purchase_token_package(
        self, info: Info, account_external_id: str, code: str, idempotency_key: str,
        currency: str | None = None,
    ) -> PurchaseResult:  # fmt: skip
        actor = info.context.principal.actor if info.context.principal else ""

        async def work(session: AsyncSession) -> object:
            return await packages.purchase(
                session, account_external_id, code, idempotency_key, currency=currency,
                actor=actor, now=datetime.now(UTC),
            )  # fmt: skip

        params = {"account": account_external_id, "code": code, "key": idempotency_key}
        result = await audited(info, "purchaseTokenPackage", params, work)
        if is_domain_error(result):
            return to_graphql(result)  # type: ignore[no-any-return]
        assert isinstance(result, packages.Purchase)
        ctx = info.context
        await live.publish_account_balance(ctx.db, ctx.redis, account_external_id, "GRANT")
        p = result.payment
        return TokenPurchase(
            transaction_id=result.transaction_id, credits=BigInt(result.credits),
            payment_id=strawberry.ID(str(p.id)), payment_status=p.status, currency=p.currency,
            amount_minor=BigInt(p.amount_minor),
        )  # fmt: skip


async def _after_commit(info: Info, alerts: list[dict[str, object]]) -> None:
    """Subscribers' caches and live screens hear of a change only once it is committed."""
    await publish_alerts(info.context.redis, alerts)
    await info.context.bus.publish(PRICING_TOPIC)
