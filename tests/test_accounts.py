"""Accounts and organisations through GraphQL: creation rules, lookup, pagination, search."""

from __future__ import annotations

from tests.conftest import GraphQLClient
from tests.helpers import CREATE_ACCOUNT, create_account

CREATE_ORG = """
mutation($input: CreateOrganizationInput!) {
  createOrganization(input: $input) {
    __typename
    ... on Organization { externalId memberCap balance { total } }
    ... on ValidationFailed { field message }
    ... on AlreadyExists { field }
  }
}"""
PAGE = """
query($first: Int!, $after: String, $search: String) {
  accounts(first: $first, after: $after, search: $search) {
    nodes { externalId }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def test_create_and_find_account_with_organization(gql: GraphQLClient) -> None:
    org = await gql.data(CREATE_ORG, input={"externalId": "acme", "name": "Acme", "memberCap": 50})
    assert org["createOrganization"] == {
        "__typename": "Organization",
        "externalId": "acme",
        "memberCap": 50,
        "balance": {"total": 0},
    }
    await create_account(
        gql, "user-1", name="Ada", email="ada@acme.io", organizationExternalId="acme"
    )
    data = await gql.data(
        'query { account(externalId: "user-1") { name email organization { externalId } } }'
    )
    assert data["account"] == {
        "name": "Ada",
        "email": "ada@acme.io",
        "organization": {"externalId": "acme"},
    }
    missing = await gql.data('query { account(externalId: "nobody") { id } }')
    assert missing["account"] is None


async def test_account_creation_refusals(gql: GraphQLClient) -> None:
    await create_account(gql, "dup")

    async def create(**fields: object) -> dict:
        return (await gql.data(CREATE_ACCOUNT, input=fields))["createAccount"]

    assert (await create(externalId="dup"))["__typename"] == "AlreadyExists"
    assert (await create(externalId="  "))["__typename"] == "ValidationFailed"
    assert (await create(externalId="x" * 201))["__typename"] == "ValidationFailed"
    assert (await create(externalId="e", email="not-an-email"))["field"] == "email"
    assert (await create(externalId="o", organizationExternalId="ghost"))[
        "__typename"
    ] == "OrganizationNotFound"
    again = await gql.data(CREATE_ORG, input={"externalId": "acme"})
    assert again["createOrganization"]["__typename"] == "Organization"
    dup = await gql.data(CREATE_ORG, input={"externalId": "acme"})
    assert dup["createOrganization"]["__typename"] == "AlreadyExists"
    negative = await gql.data(CREATE_ORG, input={"externalId": "neg", "memberCap": -1})
    assert negative["createOrganization"]["__typename"] == "ValidationFailed"


async def test_cursor_pagination_walks_every_account_once(gql: GraphQLClient) -> None:
    for n in range(7):
        await create_account(gql, f"acct-{n}", email=f"user{n}@example.com")
    seen, after = [], None
    while True:
        page = (await gql.data(PAGE, first=3, after=after))["accounts"]
        seen += [n["externalId"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"acct-{n}" for n in range(7)]


async def test_search_matches_id_name_and_email_literally(gql: GraphQLClient) -> None:
    await create_account(gql, "alpha", name="Alice")
    await create_account(gql, "beta", email="bob@beta.io")
    await create_account(gql, "50%_off")
    assert [
        n["externalId"] for n in (await gql.data(PAGE, first=10, search="ALI"))["accounts"]["nodes"]
    ] == ["alpha"]
    assert [
        n["externalId"]
        for n in (await gql.data(PAGE, first=10, search="beta.io"))["accounts"]["nodes"]
    ] == ["beta"]
    # % and _ are matched literally, not as wildcards.
    assert [
        n["externalId"] for n in (await gql.data(PAGE, first=10, search="%_"))["accounts"]["nodes"]
    ] == ["50%_off"]


async def test_bad_page_arguments_are_client_errors(gql: GraphQLClient) -> None:
    for variables in ({"first": 0}, {"first": 201}, {"first": 5, "after": "garbage"}):
        body = await gql.execute(PAGE, **variables)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
