"""Who may run what: every root field of the schema against every kind of caller: admin keys of
each role, people signed in to the admin app with each role (session cookie and CSRF token),
and callers without a usable key or session.

The list of fields comes from the schema itself, so a field added without an entry in
`FIELDS` below fails here instead of shipping without an access rule. Each field runs with a
valid operation prepared by the owner beforehand, so a refusal can only come from the
permission checks, and a refused mutation must leave the database exactly as it was.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from strawberry.types import ExecutionResult

from tests.conftest import OWNER_KEY, GraphQLClient, new_key
from tests.helpers import create_account, deduct, grant
from tests.plan_helpers import (
    NEW_DRAFT,
    create_plan,
    publish,
    published_plan,
    subscribe,
    version_input,
)
from tollgate.api.context import Context
from tollgate.api.schema import build_schema
from tollgate.auth import passwords, sessions
from tollgate.auth import service as auth_service
from tollgate.auth.http import CSRF_HEADER, SESSION_COOKIE
from tollgate.auth.models import USER_ROLES, AdminUser
from tollgate.db import Database

# Every role the code knows, so that a new role is checked against every field at once.
ROLES = tuple(role.label for role in auth_service.Role)
READERS = frozenset({"analyst", "admin", "owner"})
WRITERS = frozenset({"admin", "owner"})
OWNERS = frozenset({"owner"})
# The SaaS backend's service keys meter usage; admins and owners may too.
METERING = frozenset({"service", "admin", "owner"})
# Callers that present no usable key at all.
KEYLESS_CALLERS = ("anonymous", "garbage", "revoked")
# Signed-in admin users: the same roles as keys, except "service", which is for machines only.
USER_CALLERS = tuple(f"user-{role}" for role in USER_ROLES)
CALLERS = (*KEYLESS_CALLERS, *ROLES, *USER_CALLERS)


def role_of(caller: str) -> str | None:
    """The role a caller acts with; None for callers who are nobody."""
    role = caller.removeprefix("user-")
    return role if role in ROLES else None


Variables = dict[str, Any]
Prepare = Callable[[GraphQLClient], Awaitable[Variables]]


def unique(prefix: str) -> str:
    return f"{prefix}-{new_key()[:12]}"


async def nothing(owner: GraphQLClient) -> Variables:
    return {}


async def an_account(owner: GraphQLClient) -> Variables:
    external_id = unique("acct")
    await create_account(owner, external_id, name="Ada")
    return {"id": external_id}


async def an_organization(owner: GraphQLClient) -> Variables:
    external_id = unique("org")
    data = await owner.data(
        "mutation($id: String!) { createOrganization(input: {externalId: $id}) { __typename } }",
        id=external_id,
    )
    assert data["createOrganization"]["__typename"] == "Organization"
    return {"id": external_id}


async def funded_account(owner: GraphQLClient, credits: int = 100) -> str:
    external_id = unique("acct")
    await create_account(owner, external_id)
    granted = await grant(owner, external_id, credits)
    assert granted["__typename"] == "LedgerSuccess", granted
    return external_id


async def new_account_input(owner: GraphQLClient) -> Variables:
    return {"input": {"externalId": unique("acct"), "name": "New"}}


async def new_organization_input(owner: GraphQLClient) -> Variables:
    return {"input": {"externalId": unique("org"), "memberCap": 10}}


async def grant_input(owner: GraphQLClient) -> Variables:
    external_id = (await an_account(owner))["id"]
    return {
        "input": {
            "accountExternalId": external_id,
            "amount": 25,
            "source": "PURCHASE",
            "idempotencyKey": new_key(),
        }
    }


async def deduct_input(owner: GraphQLClient) -> Variables:
    external_id = await funded_account(owner)
    return {"input": {"accountExternalId": external_id, "amount": 10, "idempotencyKey": new_key()}}


async def refund_input(owner: GraphQLClient) -> Variables:
    external_id = await funded_account(owner)
    spent = await deduct(owner, external_id, 40)
    assert spent["__typename"] == "LedgerSuccess", spent
    return {
        "input": {
            "accountExternalId": external_id,
            "amount": 15,
            "refundOf": spent["transactionId"],
            "idempotencyKey": new_key(),
        }
    }


async def transfer_input(owner: GraphQLClient) -> Variables:
    sender = await funded_account(owner)
    receiver = (await an_account(owner))["id"]
    return {
        "input": {
            "fromAccountExternalId": sender,
            "toAccountExternalId": receiver,
            "amount": 30,
            "idempotencyKey": new_key(),
        }
    }


async def admin_key_input(owner: GraphQLClient) -> Variables:
    return {"name": unique("made"), "role": "ANALYST"}


async def key_to_revoke(owner: GraphQLClient) -> Variables:
    data = await owner.data(
        'mutation { createAdminKey(name: "doomed", role: ANALYST) '
        "{ ... on CreatedAdminKey { key { id } } } }"
    )
    return {"id": data["createAdminKey"]["key"]["id"]}


async def admin_user_input(owner: GraphQLClient) -> Variables:
    email = unique("person") + "@example.com"
    return {"input": {"email": email, "password": "long enough password", "role": "ANALYST"}}


async def admin_user(owner: GraphQLClient) -> Variables:
    data = await owner.data(
        "mutation($input: CreateAdminUserInput!) { createAdminUser(input: $input) "
        "{ __typename ... on AdminUser { id } } }",
        **await admin_user_input(owner),
    )
    assert data["createAdminUser"]["__typename"] == "AdminUser", data
    return {"id": data["createAdminUser"]["id"]}


async def limits_input(owner: GraphQLClient) -> Variables:
    external_id = (await an_account(owner))["id"]
    return {"input": {"accountExternalId": external_id, "callsPerDay": 100}}


async def boost_input(owner: GraphQLClient) -> Variables:
    external_id = (await an_account(owner))["id"]
    until = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    return {
        "input": {
            "accountExternalId": external_id,
            "credits": 50,
            "until": until,
            "idempotencyKey": new_key(),
        }
    }


async def model_price_input(owner: GraphQLClient) -> Variables:
    return {
        "input": {
            "provider": "acme",
            "model": unique("model"),
            "inputPerMillion": "1.25",
            "outputPerMillion": "5",
        }
    }


async def policy_input(owner: GraphQLClient) -> Variables:
    external_id = (await an_account(owner))["id"]
    return {"input": {"kind": "PASSTHROUGH", "accountExternalId": external_id}}


async def priced_model(owner: GraphQLClient) -> str:
    model = unique("model")
    data = await owner.data(
        "mutation($input: UpsertModelPriceInput!) { upsertModelPrice(input: $input) "
        "{ __typename } }",
        input={
            "provider": "acme",
            "model": model,
            "inputPerMillion": "1",
            "outputPerMillion": "2",
            "effectiveFrom": "2020-01-01T00:00:00Z",
        },
    )
    assert data["upsertModelPrice"]["__typename"] == "ModelPrice", data
    return model


async def authorize_input(owner: GraphQLClient) -> Variables:
    model = await priced_model(owner)
    external_id = await funded_account(owner, 1_000_000)
    return {
        "input": {
            "accountExternalId": external_id,
            "model": model,
            "estimatedInputTokens": 1_000,
            "maxOutputTokens": 1_000,
        }
    }


async def usage_events_input(owner: GraphQLClient) -> Variables:
    model = await priced_model(owner)
    external_id = await funded_account(owner, 1_000_000)
    event = {
        "eventId": new_key(),
        "accountExternalId": external_id,
        "model": model,
        "inputTokens": 1_000,
        "outputTokens": 500,
    }
    return {"events": [event]}


async def reservation_to_release(owner: GraphQLClient) -> Variables:
    data = await owner.data(
        "mutation($input: AuthorizeUsageInput!) { authorizeUsage(input: $input) "
        "{ __typename ... on Authorized { reservationId } } }",
        **await authorize_input(owner),
    )
    assert data["authorizeUsage"]["__typename"] == "Authorized", data
    return {"id": data["authorizeUsage"]["reservationId"]}


async def last_week(owner: GraphQLClient) -> Variables:
    now = datetime.now(UTC)
    return {"from": (now - timedelta(days=7)).isoformat(), "to": now.isoformat()}


async def api_key_input(owner: GraphQLClient) -> Variables:
    external_id = (await an_account(owner))["id"]
    return {"input": {"accountExternalId": external_id, "name": "laptop", "rpmLimit": 60}}


async def api_key_to_revoke(owner: GraphQLClient) -> Variables:
    data = await owner.data(
        "mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) "
        "{ __typename ... on CreatedApiKey { key { id } } } }",
        **await api_key_input(owner),
    )
    assert data["createApiKey"]["__typename"] == "CreatedApiKey", data
    return {"id": data["createApiKey"]["key"]["id"]}


async def provider_input(owner: GraphQLClient) -> Variables:
    return {
        "input": {
            "name": unique("upstream"),
            "baseUrl": "http://127.0.0.1:11434/v1",
            "models": ["llama*"],
        }
    }


async def a_plan(owner: GraphQLClient) -> Variables:
    code = unique("plan").lower()
    version_id = await published_plan(owner, code)
    return {"code": code, "version": version_id}


async def plan_input(owner: GraphQLClient) -> Variables:
    return {"input": {"code": unique("plan").lower(), "name": "New", "version": version_input()}}


async def a_published_version(owner: GraphQLClient) -> Variables:
    return {"id": (await a_plan(owner))["version"]}


async def a_draft(owner: GraphQLClient) -> Variables:
    created = await create_plan(owner, unique("plan").lower())
    return {"id": created["id"], "input": version_input(credits=5)}


async def a_migration(owner: GraphQLClient) -> Variables:
    plan = await a_plan(owner)
    draft = await owner.data(NEW_DRAFT, id=plan["version"])
    target = draft["createPlanVersion"]["id"]
    assert (await publish(owner, target))["__typename"] == "PublishedPlanVersion"
    return {"from": plan["version"], "to": target}


async def a_subscriber(owner: GraphQLClient) -> Variables:
    plan = await a_plan(owner)
    external_id = (await an_account(owner))["id"]
    assert (await subscribe(owner, external_id, plan["code"]))["__typename"] == "PlanSubscription"
    return {"id": external_id, "code": plan["code"]}


async def subscribe_input(owner: GraphQLClient) -> Variables:
    plan = await a_plan(owner)
    external_id = (await an_account(owner))["id"]
    return {"input": {"accountExternalId": external_id, "planCode": plan["code"],
                      "cycle": "MONTHLY", "idempotencyKey": new_key()}}  # fmt: skip


async def change_input(owner: GraphQLClient) -> Variables:
    sub = await a_subscriber(owner)
    other = await a_plan(owner)
    return {"input": {"accountExternalId": sub["id"], "planCode": other["code"],
                      "idempotencyKey": new_key()}}  # fmt: skip


async def package_input(owner: GraphQLClient) -> Variables:
    return {"input": {"code": unique("pack").lower(), "credits": 100,
                      "prices": [{"currency": "USD", "amountMinor": 500}]}}  # fmt: skip


async def a_package_purchase(owner: GraphQLClient) -> Variables:
    made = await owner.data(
        "mutation($input: UpsertTokenPackageInput!) { upsertTokenPackage(input: $input) "
        "{ ... on TokenPackage { code } } }",
        **(await package_input(owner)),
    )
    account = (await an_account(owner))["id"]
    return {"id": account, "code": made["upsertTokenPackage"]["code"], "key": new_key()}


async def feature_input(owner: GraphQLClient) -> Variables:
    return {"input": {"key": unique("f").lower(), "name": "Feature", "kind": "BOOLEAN"}}


@dataclass(frozen=True)
class FieldRule:
    roles: frozenset[str]
    document: str
    prepare: Prepare = nothing
    # Mutations: the result type a permitted caller gets back.
    success: str | None = None
    # Admin writes leave an audit row; metering, on the hot path, books usage instead.
    audited: bool = True


def mutation(
    roles: frozenset[str],
    signature: str,
    call: str,
    prepare: Prepare,
    success: str,
    *,
    audited: bool = True,
) -> FieldRule:
    document = f"mutation({signature}) {{ {call} {{ __typename }} }}"
    return FieldRule(roles, document, prepare, success, audited)


FIELDS: dict[str, FieldRule] = {
    "Query.account": FieldRule(
        READERS, "query($id: String!) { account(externalId: $id) { externalId } }", an_account
    ),
    "Query.accounts": FieldRule(
        READERS, "{ accounts(first: 5) { nodes { externalId } pageInfo { hasNextPage } } }"
    ),
    "Query.organization": FieldRule(
        READERS,
        "query($id: String!) { organization(externalId: $id) { externalId } }",
        an_organization,
    ),
    "Query.organizations": FieldRule(
        READERS, "{ organizations(first: 5) { nodes { externalId } } }"
    ),
    "Query.me": FieldRule(READERS, "{ me { name role } }"),
    "Query.adminKeys": FieldRule(OWNERS, "{ adminKeys { id name role prefix } }"),
    "Query.adminUsers": FieldRule(OWNERS, "{ adminUsers { id email role disabled } }"),
    "Query.auditLog": FieldRule(READERS, "{ auditLog(first: 5) { nodes { operation } } }"),
    "Query.accountLimits": FieldRule(
        READERS,
        "query($id: String!) { accountLimits(accountExternalId: $id) { __typename } }",
        an_account,
    ),
    "Query.controls": FieldRule(READERS, "{ controls { __typename } }"),
    "Query.notifications": FieldRule(
        READERS, "{ notifications(first: 5) { pageInfo { hasNextPage } } }"
    ),
    "Query.modelPrices": FieldRule(
        READERS, "{ modelPrices(first: 5) { pageInfo { hasNextPage } } }"
    ),
    "Query.pricingPolicy": FieldRule(READERS, "{ pricingPolicy { __typename } }"),
    "Query.quoteCall": FieldRule(
        READERS, '{ quoteCall(model: "no-such-model", inputTokens: 10) { __typename } }'
    ),
    "Query.usageEvents": FieldRule(
        READERS, "{ usageEvents(first: 5) { pageInfo { hasNextPage } } }"
    ),
    "Query.usageSummary": FieldRule(
        READERS,
        "query($from: DateTime!, $to: DateTime!) "
        "{ usageSummary(from: $from, to: $to, groupBy: [MODEL]) { __typename } }",
        last_week,
    ),
    "Mutation.createAccount": mutation(
        WRITERS,
        "$input: CreateAccountInput!",
        "createAccount(input: $input)",
        new_account_input,
        "Account",
    ),
    "Mutation.createOrganization": mutation(
        WRITERS,
        "$input: CreateOrganizationInput!",
        "createOrganization(input: $input)",
        new_organization_input,
        "Organization",
    ),
    "Mutation.grantCredits": mutation(
        WRITERS,
        "$input: GrantCreditsInput!",
        "grantCredits(input: $input)",
        grant_input,
        "LedgerSuccess",
    ),
    "Mutation.deductCredits": mutation(
        WRITERS,
        "$input: DeductCreditsInput!",
        "deductCredits(input: $input)",
        deduct_input,
        "LedgerSuccess",
    ),
    "Mutation.refundCredits": mutation(
        WRITERS,
        "$input: RefundCreditsInput!",
        "refundCredits(input: $input)",
        refund_input,
        "LedgerSuccess",
    ),
    "Mutation.transferCredits": mutation(
        WRITERS,
        "$input: TransferCreditsInput!",
        "transferCredits(input: $input)",
        transfer_input,
        "TransferSuccess",
    ),
    "Mutation.createAdminKey": mutation(
        OWNERS,
        "$name: String!, $role: AdminRole!",
        "createAdminKey(name: $name, role: $role)",
        admin_key_input,
        "CreatedAdminKey",
    ),
    "Mutation.revokeAdminKey": mutation(
        OWNERS, "$id: ID!", "revokeAdminKey(id: $id)", key_to_revoke, "AdminKey"
    ),
    "Mutation.setAccountLimits": mutation(
        WRITERS,
        "$input: SetAccountLimitsInput!",
        "setAccountLimits(input: $input)",
        limits_input,
        "AccountLimits",
    ),
    "Mutation.setEmergencyStop": mutation(
        WRITERS,
        "$id: String!",
        'setEmergencyStop(scope: ACCOUNT, on: true, reason: "drill", accountExternalId: $id)',
        an_account,
        "EmergencyStop",
    ),
    "Mutation.setAccountOverride": mutation(
        WRITERS,
        "$id: String!",
        "setAccountOverride(accountExternalId: $id, suspended: true)",
        an_account,
        "AccountControls",
    ),
    "Mutation.grantBoost": mutation(
        WRITERS,
        "$input: GrantBoostInput!",
        "grantBoost(input: $input)",
        boost_input,
        "LedgerSuccess",
    ),
    "Mutation.upsertModelPrice": mutation(
        WRITERS,
        "$input: UpsertModelPriceInput!",
        "upsertModelPrice(input: $input)",
        model_price_input,
        "ModelPrice",
    ),
    "Mutation.setPricingPolicy": mutation(
        WRITERS,
        "$input: SetPricingPolicyInput!",
        "setPricingPolicy(input: $input)",
        policy_input,
        "PricingPolicy",
    ),
    "Mutation.authorizeUsage": mutation(
        METERING,
        "$input: AuthorizeUsageInput!",
        "authorizeUsage(input: $input)",
        authorize_input,
        "Authorized",
        audited=False,
    ),
    "Mutation.recordUsage": mutation(
        METERING,
        "$events: [UsageEventInput!]!",
        "recordUsage(events: $events)",
        usage_events_input,
        "Recorded",
        audited=False,
    ),
    "Mutation.releaseReservation": mutation(
        METERING,
        "$id: ID!",
        "releaseReservation(reservationId: $id)",
        reservation_to_release,
        "Released",
        audited=False,
    ),
    "Mutation.clearPricingPolicy": mutation(
        WRITERS,
        "$id: String",
        "clearPricingPolicy(accountExternalId: $id)",
        an_account,
        "PricingPolicy",
    ),
    "Mutation.createAdminUser": mutation(
        OWNERS,
        "$input: CreateAdminUserInput!",
        "createAdminUser(input: $input)",
        admin_user_input,
        "AdminUser",
    ),
    "Mutation.setAdminUserRole": mutation(
        OWNERS, "$id: ID!", "setAdminUserRole(id: $id, role: ADMIN)", admin_user, "AdminUser"
    ),
    "Mutation.disableAdminUser": mutation(
        OWNERS, "$id: ID!", "disableAdminUser(id: $id)", admin_user, "AdminUser"
    ),
    "Query.apiKeys": FieldRule(
        READERS,
        "query($id: String!) { apiKeys(accountExternalId: $id) { id prefix } }",
        an_account,
    ),
    "Query.providers": FieldRule(READERS, "{ providers { name hasApiKey } }"),
    "Mutation.createApiKey": mutation(
        WRITERS,
        "$input: CreateApiKeyInput!",
        "createApiKey(input: $input)",
        api_key_input,
        "CreatedApiKey",
    ),
    "Mutation.revokeApiKey": mutation(
        WRITERS, "$id: ID!", "revokeApiKey(id: $id)", api_key_to_revoke, "ApiKey"
    ),
    "Mutation.upsertProvider": mutation(
        WRITERS,
        "$input: UpsertProviderInput!",
        "upsertProvider(input: $input)",
        provider_input,
        "Provider",
    ),
    "Query.features": FieldRule(READERS, "{ features { key } }"),
    "Query.plans": FieldRule(READERS, "{ plans { code } }"),
    "Query.plan": FieldRule(
        READERS, "query($code: String!) { plan(code: $code) { code } }", a_plan
    ),
    "Query.planVersion": FieldRule(
        READERS, "query($id: ID!) { planVersion(id: $id) { id } }", a_published_version
    ),
    "Query.priceFor": FieldRule(
        READERS,
        "query($code: String!) { priceFor(planCode: $code, cycle: MONTHLY) { __typename } }",
        a_plan,
    ),
    "Query.tokenPackages": FieldRule(READERS, "{ tokenPackages { code } }"),
    "Query.subscription": FieldRule(
        READERS,
        "query($id: String!) { subscription(accountExternalId: $id) { status } }",
        a_subscriber,
    ),
    "Query.subscriptions": FieldRule(READERS, "{ subscriptions { nodes { id } } }"),
    "Query.previewPlanChange": FieldRule(
        READERS,
        "query($input: ChangePlanInput!) { previewPlanChange(input: $input) { __typename } }",
        change_input,
    ),
    "Query.invoiceLines": FieldRule(
        READERS,
        "query($id: String!) { invoiceLines(accountExternalId: $id) { id } }",
        a_subscriber,
    ),
    "Mutation.upsertFeature": mutation(
        WRITERS,
        "$input: UpsertFeatureInput!",
        "upsertFeature(input: $input)",
        feature_input,
        "Feature",
    ),
    "Mutation.createPlan": mutation(
        WRITERS,
        "$input: CreatePlanInput!",
        "createPlan(input: $input)",
        plan_input,
        "PlanVersion",
    ),
    "Mutation.createPlanVersion": mutation(
        WRITERS,
        "$id: ID!",
        "createPlanVersion(fromVersionId: $id)",
        a_published_version,
        "PlanVersion",
    ),
    "Mutation.updatePlanVersion": mutation(
        WRITERS,
        "$id: ID!, $input: PlanVersionInput!",
        "updatePlanVersion(id: $id, input: $input)",
        a_draft,
        "PlanVersion",
    ),
    "Mutation.publishPlanVersion": mutation(
        WRITERS,
        "$id: ID!",
        "publishPlanVersion(id: $id)",
        a_draft,
        "PublishedPlanVersion",
    ),
    "Mutation.archivePlan": mutation(
        WRITERS, "$code: String!", "archivePlan(code: $code)", a_plan, "Plan"
    ),
    "Mutation.migrateSubscribers": mutation(
        WRITERS,
        "$from: ID!, $to: ID!",
        "migrateSubscribers(fromVersionId: $from, toVersionId: $to, effective: IMMEDIATELY)",
        a_migration,
        "SubscribersMigrated",
    ),
    "Mutation.upsertTokenPackage": mutation(
        WRITERS,
        "$input: UpsertTokenPackageInput!",
        "upsertTokenPackage(input: $input)",
        package_input,
        "TokenPackage",
    ),
    "Mutation.purchaseTokenPackage": mutation(
        WRITERS,
        "$id: String!, $code: String!, $key: String!",
        "purchaseTokenPackage(accountExternalId: $id, code: $code, idempotencyKey: $key)",
        a_package_purchase,
        "TokenPurchase",
    ),
    "Mutation.subscribe": mutation(
        WRITERS,
        "$input: SubscribeInput!",
        "subscribe(input: $input)",
        subscribe_input,
        "PlanSubscription",
    ),
    "Mutation.changePlan": mutation(
        WRITERS,
        "$input: ChangePlanInput!",
        "changePlan(input: $input)",
        change_input,
        "PlanSubscription",
    ),
    "Mutation.cancelSubscription": mutation(
        WRITERS,
        "$id: String!",
        "cancelSubscription(accountExternalId: $id, atPeriodEnd: false)",
        a_subscriber,
        "PlanSubscription",
    ),
}


def subscription(roles: frozenset[str], document: str) -> FieldRule:
    return FieldRule(roles, document, audited=False)


FIELDS |= {
    "Subscription.usageRecorded": subscription(
        READERS, 'subscription { usageRecorded(accountExternalId: "ada") { eventId } }'
    ),
    "Subscription.balanceChanged": subscription(
        READERS, "subscription { balanceChanged { accountExternalId } }"
    ),
    "Subscription.alertRaised": subscription(READERS, "subscription { alertRaised { id } }"),
    "Subscription.usageTicker": subscription(
        READERS, "subscription { usageTicker(interval: 1) { calls } }"
    ),
    "Subscription.pricingPublished": subscription(
        READERS, "subscription { pricingPublished { planCode } }"
    ),
}


def schema_root_fields() -> list[str]:
    graphql_schema = build_schema(introspection=True)._schema
    roots = [
        graphql_schema.query_type,
        graphql_schema.mutation_type,
        graphql_schema.subscription_type,
    ]
    return [f"{root.name}.{name}" for root in roots if root is not None for name in root.fields]


ROOT_FIELDS = schema_root_fields()


@dataclass(frozen=True)
class Caller:
    secret: str | None
    actor: str | None = None
    # A signed-in user: the session cookie and the CSRF token instead of a key.
    headers: dict[str, str] | None = None

    def client(self, gql: GraphQLClient) -> GraphQLClient:
        return gql.with_headers(self.headers) if self.headers else gql.as_key(self.secret)


@functools.cache
def password_hash() -> str:
    # One argon2 hash for every test user: these tests are about roles, not passwords.
    return passwords.hash_password("a password nobody types")


async def sign_in_user(db: Database, role: str) -> Caller:
    """A user of this role with an open session, as a browser holds it after signing in."""
    async with db.transaction() as session:
        user = AdminUser(email=f"{role}@users.test", password_hash=password_hash(), role=role)
        session.add(user)
        await session.flush()
        started = await sessions.start(session, user, idle=timedelta(hours=1))
    headers = {
        "Cookie": f"{SESSION_COOKIE}={started.token}",
        CSRF_HEADER: started.session.csrf_token,
    }
    return Caller(None, f"user:{user.id}:{user.email}", headers)


async def create_key(db: Database, name: str, role: str) -> tuple[str, str]:
    async with db.transaction() as session:
        created = await auth_service.create_key(session, name=name, role=role)
    assert isinstance(created, auth_service.CreatedKey), created
    return created.secret, f"key:{created.key.id}:{created.key.name}"


@pytest.fixture
async def callers(gql: GraphQLClient, db: Database) -> dict[str, Caller]:
    """A key for every role, an owner key that has been revoked, and callers without a key.
    The analyst key goes through createAdminKey, the others straight through the service."""
    made = await gql.data(
        'mutation { createAdminKey(name: "analyst-key", role: ANALYST) '
        "{ ... on CreatedAdminKey { secret key { id name } } } }"
    )
    analyst = made["createAdminKey"]
    found: dict[str, Caller] = {
        "anonymous": Caller(None),
        "garbage": Caller("tgk_" + "not-a-key-" * 4),
        "owner": Caller(OWNER_KEY),
        "analyst": Caller(
            analyst["secret"], f"key:{analyst['key']['id']}:{analyst['key']['name']}"
        ),
    }
    for role in ROLES:
        if role not in found:
            found[role] = Caller(*await create_key(db, f"{role}-key", role))
    revoked_secret, _ = await create_key(db, "revoked-key", "owner")
    keys = (await gql.data("{ adminKeys { id name } }"))["adminKeys"]
    ids = {k["name"]: k["id"] for k in keys}
    found["owner"] = Caller(OWNER_KEY, f"key:{ids['bootstrap']}:bootstrap")
    revoked = await gql.data(
        "mutation($id: ID!) { revokeAdminKey(id: $id) { __typename } }", id=ids["revoked-key"]
    )
    assert revoked["revokeAdminKey"]["__typename"] == "AdminKey"
    found["revoked"] = Caller(revoked_secret)
    for role in USER_ROLES:
        found[f"user-{role}"] = await sign_in_user(db, role)
    assert set(found) == set(CALLERS)
    return found


TABLES_QUERY = """
SELECT table_name FROM information_schema.tables
WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
  AND table_name <> 'alembic_version'
ORDER BY table_name
"""


async def state(db: Database) -> dict[str, Any]:
    """Row counts of every table (audit log included), how many keys are revoked, and the
    roles and disabled flags of admin users."""
    async with db.transaction() as session:
        tables = (await session.execute(text(TABLES_QUERY))).scalars().all()
        counts = ", ".join(f'(SELECT count(*) FROM "{t}")' for t in tables)
        row = (await session.execute(text(f"SELECT {counts}"))).one()
        revoked = await session.scalar(
            text("SELECT count(*) FROM admin_api_keys WHERE revoked_at IS NOT NULL")
        )
        people = (
            await session.execute(
                text("SELECT role, disabled_at IS NOT NULL FROM admin_users ORDER BY id")
            )
        ).all()
    assert "audit_log" in tables and "accounts" in tables
    return {
        **dict(zip(tables, row, strict=True)),
        "revoked keys": revoked,
        "admin users": hash(tuple(map(tuple, people))),
    }


def allowed(rule: FieldRule, caller: str) -> bool:
    return role_of(caller) in rule.roles


def test_every_field_has_an_access_rule() -> None:
    missing = sorted(set(ROOT_FIELDS) - set(FIELDS))
    stale = sorted(set(FIELDS) - set(ROOT_FIELDS))
    assert not missing, f"root fields without an access rule in FIELDS: {missing}"
    assert not stale, f"FIELDS names fields the schema no longer has: {stale}"


def test_the_matrix_covers_every_root() -> None:
    assert any(f.startswith("Query.") for f in ROOT_FIELDS)
    assert any(f.startswith("Mutation.") for f in ROOT_FIELDS)
    assert any(f.startswith("Subscription.") for f in ROOT_FIELDS)
    assert len(ROOT_FIELDS) == len(set(ROOT_FIELDS))


@pytest.mark.parametrize("qualified", ROOT_FIELDS)
async def test_access(
    qualified: str, gql: GraphQLClient, db: Database, callers: dict[str, Caller], app: Any
) -> None:
    """One field, every caller; all callers are tried before the test reports, so one run
    shows the whole row of the matrix."""
    rule = FIELDS.get(qualified)
    assert rule is not None, f"{qualified} has no access rule: add it to FIELDS"
    failures = []
    for caller in CALLERS:
        try:
            if qualified.startswith("Subscription."):
                await check_subscription(qualified, rule, caller, db, callers, app)
            else:
                await check_access(qualified, rule, caller, gql, db, callers)
        except AssertionError as failure:
            failures.append(f"{qualified} as {caller}: {str(failure).splitlines()[0]}")
    assert not failures, "\n".join(failures)


async def check_access(
    qualified: str,
    rule: FieldRule,
    caller: str,
    gql: GraphQLClient,
    db: Database,
    callers: dict[str, Caller],
) -> None:
    root, field = qualified.split(".")
    # Prepared by the owner, so the operation is valid and only the caller decides.
    variables = await rule.prepare(gql)
    before = await state(db)

    body = await callers[caller].client(gql).execute(rule.document, **variables)

    if allowed(rule, caller):
        assert not body.get("errors"), body
        value = body["data"][field]
        assert value is not None, body
        if field == "me":
            assert value["role"] == (role_of(caller) or "").upper()
        if root == "Mutation":
            results = value if isinstance(value, list) else [value]
            assert results and {r["__typename"] for r in results} == {rule.success}, body
            if rule.audited:
                await check_audited(gql, field, role_of(caller) or "", callers[caller])
        return

    expected = "FORBIDDEN" if role_of(caller) is not None else "UNAUTHENTICATED"
    errors = body.get("errors") or []
    assert [e.get("extensions", {}).get("code") for e in errors] == [expected], body
    assert errors[0]["path"] == [field]
    assert body["data"] is None or body["data"][field] is None, body
    # Refused before the resolver ran: nothing written, not even an audit row.
    assert await state(db) == before


async def check_subscription(
    qualified: str,
    rule: FieldRule,
    caller: str,
    db: Database,
    callers: dict[str, Caller],
    app: Any,
) -> None:
    """Subscriptions run over a websocket, whose principal is set by connection_init from a key
    or the admin app's session cookie (a caller without either never gets that far); here the
    field's own rule is checked."""
    field = qualified.split(".")[1]
    state_ = app.state
    context = Context(
        db=state_.db,
        redis=state_.redis,
        settings=state_.settings,
        bus=state_.bus,
        metering=state_.metering,
        principals=state_.principals,
        principal=await connection_principal(state_.principals, callers[caller]),
        request=None,  # type: ignore[arg-type]
        live=state_.live,
        ticker=state_.ticker,
    )
    before = await state(db)
    stream = await build_schema(introspection=True).subscribe(rule.document, context_value=context)
    result = None
    if isinstance(stream, ExecutionResult):
        result = stream
    else:
        try:
            # A permitted subscription waits for events; a refused one answers at once.
            result = await asyncio.wait_for(anext(stream), 0.3)
        except TimeoutError:
            pass
        finally:
            await stream.aclose()

    if allowed(rule, caller):
        assert result is None or not result.errors, result
        return
    assert result is not None and result.errors, f"{qualified} as {caller} was not refused"
    expected = "FORBIDDEN" if caller in ROLES else "UNAUTHENTICATED"
    assert [(e.extensions or {}).get("code") for e in result.errors] == [expected], result
    assert result.errors[0].path == [field]
    assert await state(db) == before


async def connection_principal(principals: Any, caller: Caller) -> Any:
    """Who a websocket of this caller acts for: its key, else its session cookie."""
    if caller.secret:
        return await principals.authenticate(caller.secret)
    name, _, token = (caller.headers or {}).get("Cookie", "").partition("=")
    return await principals.session(token) if name == SESSION_COOKIE and token else None


async def check_audited(gql: GraphQLClient, operation: str, role: str, caller: Caller) -> None:
    data = await gql.as_key(OWNER_KEY).data(
        "{ auditLog(first: 1) { nodes { actor actorRole operation input result } } }"
    )
    (entry,) = data["auditLog"]["nodes"]
    assert entry["operation"] == operation
    assert entry["actor"] == caller.actor
    assert entry["actorRole"] == role
    assert isinstance(entry["input"], dict) and entry["input"], entry
    assert isinstance(entry["result"], dict) and entry["result"].get("type"), entry


# Headers a client may send that carry no valid key.
BAD_AUTHORIZATIONS = [
    pytest.param("", id="empty"),
    pytest.param("Bearer", id="scheme-only"),
    pytest.param("Bearer    ", id="blank-token"),
    pytest.param(f"Basic {OWNER_KEY}", id="wrong-scheme"),
    pytest.param(OWNER_KEY, id="no-scheme"),
    pytest.param(f"Bearer {OWNER_KEY}x", id="key-plus-one"),
    pytest.param(f"Bearer {OWNER_KEY[:-1]}", id="key-minus-one"),
    pytest.param(f"Bearer {OWNER_KEY.upper()}", id="key-uppercased"),
    pytest.param(f"Bearer {auth_service.hash_secret(OWNER_KEY)}", id="stored-hash"),
]


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATIONS)
async def test_malformed_or_wrong_keys_are_unauthenticated(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ me { role } }"},
        headers={"Authorization": authorization},
    )
    body = response.json()
    assert body["data"] is None, body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_scheme_is_case_insensitive(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ me { role } }"},
        headers={"Authorization": f"bearer {OWNER_KEY}"},
    )
    assert response.json() == {"data": {"me": {"role": "OWNER"}}}


async def test_revocation_takes_effect_on_the_next_request(gql: GraphQLClient) -> None:
    created = await gql.data(
        'mutation { createAdminKey(name: "short-lived", role: ADMIN) '
        "{ ... on CreatedAdminKey { secret key { id revokedAt } } } }"
    )
    secret = created["createAdminKey"]["secret"]
    key_id = created["createAdminKey"]["key"]["id"]
    assert created["createAdminKey"]["key"]["revokedAt"] is None
    holder = gql.as_key(secret)
    assert (await holder.data("{ me { name role } }"))["me"] == {
        "name": "short-lived",
        "role": "ADMIN",
    }

    revoked = await gql.data(
        "mutation($id: ID!) { revokeAdminKey(id: $id) { ... on AdminKey { revokedAt } } }",
        id=key_id,
    )
    assert revoked["revokeAdminKey"]["revokedAt"] is not None

    for document in (
        "{ me { name } }",
        'mutation { createAccount(input: {externalId: "after-revoke"}) { __typename } }',
    ):
        body = await holder.execute(document)
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
        assert codes == ["UNAUTHENTICATED"], f"revoked key still accepted: {body}"
    assert (await gql.data('{ account(externalId: "after-revoke") { id } }'))["account"] is None
    # Revoking again is harmless and keeps the first revocation time.
    again = await gql.data(
        "mutation($id: ID!) { revokeAdminKey(id: $id) { ... on AdminKey { revokedAt } } }",
        id=key_id,
    )
    assert again["revokeAdminKey"]["revokedAt"] == revoked["revokeAdminKey"]["revokedAt"]


async def test_unknown_key_id_is_a_typed_not_found(gql: GraphQLClient) -> None:
    for key_id in ("424242", "not-a-number", "-1"):
        data = await gql.data(
            "mutation($id: ID!) { revokeAdminKey(id: $id) "
            "{ __typename ... on NotFound { id message } } }",
            id=key_id,
        )
        assert data["revokeAdminKey"]["__typename"] == "NotFound", data


async def test_admin_mutations_are_audited_with_actor_input_and_result(
    gql: GraphQLClient, db: Database
) -> None:
    secret, actor = await create_key(db, "ops", "admin")
    admin = gql.as_key(secret)
    await create_account(admin, "audited-1", name="Grace", email="grace@example.com")
    refused = await admin.data(
        'mutation { createAccount(input: {externalId: "audited-1"}) { __typename } }'
    )
    assert refused["createAccount"]["__typename"] == "AlreadyExists"

    data = await admin.data(
        "{ auditLog(first: 10) { nodes { actor actorRole operation input result createdAt } } }"
    )
    newest, oldest = data["auditLog"]["nodes"]
    for entry in (newest, oldest):
        assert entry["actor"] == actor
        assert entry["actorRole"] == "admin"
        assert entry["operation"] == "createAccount"
        assert entry["createdAt"]
    assert oldest["input"] == {
        "external_id": "audited-1",
        "name": "Grace",
        "email": "grace@example.com",
        "organization_external_id": None,
    }
    assert oldest["result"]["type"] == "Account"
    assert oldest["result"]["external_id"] == "audited-1"
    # Typed refusals are audited too, with what was refused and why.
    assert newest["result"]["type"] == "AlreadyExists"
    assert newest["result"]["field"] == "externalId"


async def test_created_key_secret_is_shown_once_and_never_logged(
    gql: GraphQLClient, db: Database
) -> None:
    created = await gql.data(
        'mutation { createAdminKey(name: "ci-bot", role: ADMIN) '
        "{ __typename ... on CreatedAdminKey { secret key { id prefix } } } }"
    )
    result = created["createAdminKey"]
    secret = result["secret"]
    assert secret.startswith(auth_service.KEY_PREFIX)
    assert len(secret) >= 40
    assert secret.startswith(result["key"]["prefix"]) and result["key"]["prefix"] != secret
    # The new key works, with the role it was given.
    assert (await gql.as_key(secret).data("{ me { role } }"))["me"]["role"] == "ADMIN"

    audit = await gql.data("{ auditLog(first: 50) { nodes { actor operation input result } } }")
    entries = audit["auditLog"]["nodes"]
    assert [e["operation"] for e in entries] == ["createAdminKey"]
    assert entries[0]["input"] == {"name": "ci-bot", "role": "admin"}
    assert entries[0]["result"]["type"] == "CreatedKey"

    random_part = secret[len(auth_service.KEY_PREFIX) :]
    listed = json.dumps(await gql.data("{ adminKeys { id name role prefix createdAt } }"))
    async with db.transaction() as session:
        stored = (await session.execute(text("SELECT a::text FROM audit_log a"))).scalars().all()
    for where, blob in (
        ("auditLog", json.dumps(audit)),
        ("adminKeys", listed),
        ("audit_log table", "\n".join(stored)),
    ):
        assert secret not in blob, where
        assert random_part not in blob, where
