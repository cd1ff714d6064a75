"""Fuzzing the whole GraphQL API with schemathesis.

Every query and mutation gets operations generated from the schema the server itself publishes
(valid ones, and deliberately invalid ones), sent with the owner key so that nothing stops at
the permission checks. Whatever the input, the server must answer with data, a typed result, or
an error the caller can act on: never a 5xx, and never "Unexpected error.", which is what a
masked exception looks like from outside.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.graphql import nodes
from schemathesis.graphql.loaders import get_introspection_query
from sqlalchemy import update

from tests.conftest import OWNER_KEY, GraphQLClient, new_key
from tests.helpers import create_account, deduct, grant
from tollgate.auth.models import AdminApiKey
from tollgate.auth.service import hash_secret
from tollgate.db import Database

# Per operation and generation mode. Around thirty operations stay well within a minute.
POSITIVE_EXAMPLES = 30
NEGATIVE_EXAMPLES = 8
MASKED = "Unexpected error."
AUTH = {"Authorization": f"Bearer {OWNER_KEY}"}

# Scalars schemathesis has no strategy for. The strings include garbage on purpose: the server
# has to turn it into a validation error, not trip over it.
EXTRA_SCALARS = {
    "Decimal": st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.sampled_from(["0", "1.25", "-1", "1e400", "1e-400", "NaN", "sNaN", "-Infinity"]),
        st.text(max_size=12),
    ).map(nodes.String),
    "JSON": st.one_of(st.text(max_size=8).map(nodes.String), st.integers().map(nodes.Int)),
}


@dataclass(frozen=True)
class Finding:
    operation: str
    problem: str
    query: str


@pytest.fixture(autouse=True, scope="module")
def extra_scalars() -> None:
    for name, strategy in EXTRA_SCALARS.items():
        schemathesis.graphql.scalar(name, strategy)


@dataclass(frozen=True)
class Seeded:
    accounts: list[str]
    organizations: list[str]
    deductions: list[str]
    key_ids: list[str]
    models: list[str]


async def seed(gql: GraphQLClient) -> Seeded:
    """Rows for the generated operations to find: without them every lookup by id misses and
    only the not-found paths run."""
    org = await gql.data(
        'mutation { createOrganization(input: {externalId: "org-1", memberCap: 500}) '
        "{ __typename } }"
    )
    assert org["createOrganization"]["__typename"] == "Organization"
    await create_account(gql, "acct-1", name="Ada", organizationExternalId="org-1")
    await create_account(gql, "acct-2", email="b@example.com")
    await grant(gql, "acct-1", 1_000)
    await grant(gql, "acct-2", 1_000)
    pool = await gql.data(
        "mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { __typename } }",
        input={
            "organizationExternalId": "org-1",
            "amount": 300,
            "source": "PLAN_ALLOCATION",
            "idempotencyKey": new_key(),
        },
    )
    assert pool["grantCredits"]["__typename"] == "LedgerSuccess"
    deductions = []
    for account, amount in (("acct-1", 1_100), ("acct-2", 10)):
        spent = await deduct(gql, account, amount)
        assert spent["__typename"] == "LedgerSuccess", spent
        deductions.append(spent["transactionId"])
    price = await gql.data(
        "mutation($input: UpsertModelPriceInput!) { upsertModelPrice(input: $input) "
        "{ __typename } }",
        input={
            "provider": "fuzz",
            "model": "fuzz-model",
            "inputPerMillion": "1",
            "outputPerMillion": "2",
            "effectiveFrom": "2020-01-01T00:00:00Z",
        },
    )
    assert price["upsertModelPrice"]["__typename"] == "ModelPrice", price
    spare = await gql.data(
        'mutation { createAdminKey(name: "spare", role: ANALYST) '
        "{ ... on CreatedAdminKey { key { id } } } }"
    )
    return Seeded(
        accounts=["acct-1", "acct-2"],
        organizations=["org-1"],
        deductions=deductions,
        key_ids=[spare["createAdminKey"]["key"]["id"]],
        models=["fuzz-model"],
    )


def fuzz_config(seeded: Seeded) -> schemathesis.Config:
    """Half of the time, arguments naming a row name one that exists."""
    account_arguments = [
        "*.*.accountExternalId",
        "*.*.input.accountExternalId",
        "*.*.input.fromAccountExternalId",
        "*.*.input.toAccountExternalId",
        "*.*.events[*].accountExternalId",
        "*.*.filter.accountExternalId",
        "Query.account.externalId",
    ]
    bindings: dict[str, dict[str, Any]] = {
        key: {"dictionary": "accounts", "probability": 0.5} for key in account_arguments
    }
    bindings["*.*.input.organizationExternalId"] = {"dictionary": "orgs", "probability": 0.5}
    bindings["Query.organization.externalId"] = {"dictionary": "orgs", "probability": 0.5}
    bindings["*.*.input.refundOf"] = {"dictionary": "deductions", "probability": 0.5}
    bindings["Mutation.revokeAdminKey.id"] = {"dictionary": "keys", "probability": 0.3}
    for key in ("*.*.model", "*.*.input.model", "*.*.events[*].model"):
        bindings[key] = {"dictionary": "models", "probability": 0.5}
    return schemathesis.Config.from_dict(
        {
            "dictionaries": {
                "accounts": {"values": seeded.accounts},
                "orgs": {"values": seeded.organizations},
                "deductions": {"values": seeded.deductions},
                "keys": {"values": seeded.key_ids},
                "models": {"values": seeded.models},
            },
            "parameters": bindings,
        }
    )


def generate(operation: Any, mode: GenerationMode, count: int) -> list[Case]:
    """Draw the cases up front: generation is pure, so the requests can then run on the test's
    own event loop, against the app whose lifespan the fixture owns."""
    drawn: list[Case] = []

    # Derandomized so that every run sends the same operations: a failure is reproducible.
    @hypothesis_settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    return drawn


def problems_in(case: Case, response: httpx.Response) -> list[str]:
    found: list[str] = []
    if response.status_code >= 500:
        found.append(f"HTTP {response.status_code}")
    try:
        payload = response.json()
    except ValueError:
        return [*found, f"not JSON: {response.text[:200]!r}"]
    if not isinstance(payload, dict):
        return [*found, f"not a GraphQL response: {payload!r}"[:200]]
    for error in payload.get("errors") or []:
        if error.get("message") == MASKED:
            where = error.get("path") or "validation (no path)"
            found.append(f"masked exception at {where}")
    if found:
        return found
    # schemathesis' own judgement: an error raised while resolving must carry a client code
    # (BAD_USER_INPUT and the like) or it counts as a server error.
    try:
        case.validate_response(response, checks=[not_a_server_error])
    except FailureGroup as group:
        found += [f"{type(f).__name__}: {f.message}"[:300] for f in group.exceptions]
    return found


async def load_schema(client: httpx.AsyncClient, seeded: Seeded | None = None) -> Any:
    introspection = await client.post(
        "/graphql", json={"query": get_introspection_query()}, headers=AUTH
    )
    assert introspection.status_code == 200, introspection.text
    config = fuzz_config(seeded) if seeded else None
    return schemathesis.graphql.from_dict(introspection.json(), config=config)


async def restore_owner(db: Database) -> None:
    """The fuzzer may revoke the very key it sends; give it back so later cases still run."""
    async with db.transaction() as session:
        await session.execute(
            update(AdminApiKey)
            .where(AdminApiKey.key_hash == hash_secret(OWNER_KEY))
            .values(revoked_at=None)
        )


async def test_no_operation_makes_the_server_fail(
    client: httpx.AsyncClient,
    gql: GraphQLClient,
    db: Database,
    record_property: Callable[[str, object], None],
) -> None:
    started = time.monotonic()
    seeded = await seed(gql)
    schema = await load_schema(client, seeded)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    # A schema that failed to load fully would make a green run meaningless.
    assert {"Query.accounts", "Mutation.deductCredits", "Mutation.revokeAdminKey"} <= labels

    findings: dict[tuple[str, str], Finding] = {}
    sent = 0
    for operation in operations:
        cases = generate(operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
        cases += generate(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)
        for case in cases:
            response = await client.post("/graphql", json={"query": case.body}, headers=AUTH)
            sent += 1
            for problem in problems_in(case, response):
                key = (operation.label, problem)
                known = findings.get(key)
                # Keep the shortest reproduction of each distinct failure.
                if known is None or len(case.body) < len(known.query):
                    findings[key] = Finding(operation.label, problem, case.body)
            if operation.label == "Mutation.revokeAdminKey":
                await restore_owner(db)

    elapsed = time.monotonic() - started
    print(f"schemathesis: {sent} cases over {len(operations)} operations in {elapsed:.1f} s")
    record_property("schemathesis_cases", sent)
    assert sent >= len(operations) * POSITIVE_EXAMPLES // 2, "too few cases were generated"
    report = "\n\n".join(
        f"{f.operation}: {f.problem}\n  query: {json.dumps(f.query)}"
        for f in sorted(findings.values(), key=lambda f: (f.operation, f.problem))
    )
    assert not findings, f"{len(findings)} distinct server failures:\n\n{report}"


async def test_the_checks_catch_a_masked_exception(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard against a fuzzer that cannot fail: a resolver that blows up must be reported, by
    the masked-message check and by schemathesis' own server-error check alike."""
    schema = await load_schema(client)
    operation = next(
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().label == "Query.accounts"
    )

    async def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("tollgate.accounts.service.list_accounts", explode)
    case = operation.Case(body="{ accounts { nodes { id } } }", media_type="application/json")
    response = await client.post("/graphql", json={"query": case.body}, headers=AUTH)
    assert any(p.startswith("masked exception") for p in problems_in(case, response))
    with pytest.raises(FailureGroup):
        case.validate_response(response, checks=[not_a_server_error])
