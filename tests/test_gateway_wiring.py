"""The gateway as `tollgate serve` runs it: keys from createApiKey, upstreams from
upsertProvider, billing through metering, driven by the official openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import OWNER_KEY
from tests.gateway_upstream import FakeUpstream, ServedApp
from tollgate.app import create_app
from tollgate.config import Settings

PRICE = """mutation($input: UpsertModelPriceInput!) {
  upsertModelPrice(input: $input) { __typename }
}"""
PROVIDER = """mutation($input: UpsertProviderInput!) {
  upsertProvider(input: $input) { __typename ... on ValidationFailed { field message } }
}"""
KEY = """mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { __typename ... on CreatedApiKey { secret } }
}"""
ACCOUNT = (
    """mutation($input: CreateAccountInput!) { createAccount(input: $input) { __typename } }"""
)
GRANT = """mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { __typename } }"""
USAGE = """query {
  usageEvents(first: 5) { nodes { model provider inputTokens outputTokens costMicros credits } }
}"""


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def served(settings: Settings) -> Iterator[str]:
    with ServedApp(create_app(settings), lifespan="on") as server:
        yield server.url


def admin(url: str, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {OWNER_KEY}"},
        timeout=30,
    )
    body: dict[str, Any] = response.json()
    assert not body.get("errors"), body
    return body["data"]


def test_a_virtual_key_and_a_provider_route_a_billed_call(
    served: str, upstream: FakeUpstream
) -> None:
    # $1 per 1M input and $2 per 1M output tokens: 25 in + 11 out = 47 micro-USD, 1 credit.
    admin(
        served,
        PRICE,
        input={
            "provider": "openai",
            "model": "test-chat",
            "aliases": [],
            "inputPerMillion": "1",
            "outputPerMillion": "2",
            "cachedInputPerMillion": "0.5",
            "perImage": "0",
            "perRequest": "0",
            "effectiveFrom": "2020-01-01T00:00:00Z",
        },
    )
    provider = admin(
        served,
        PROVIDER,
        input={
            "name": "fake",
            "baseUrl": upstream.base_url,
            "apiKey": "sk-upstream-secret",
            "models": ["test-*"],
            "priority": 1,
            "timeoutSeconds": 10,
        },
    )
    assert provider["upsertProvider"]["__typename"] == "Provider", provider
    admin(served, ACCOUNT, input={"externalId": "u1"})
    admin(
        served,
        GRANT,
        input={
            "accountExternalId": "u1",
            "amount": 100,
            "source": "PURCHASE",
            "idempotencyKey": "g1",
        },
    )
    created = admin(served, KEY, input={"accountExternalId": "u1", "name": "app"})["createApiKey"]
    secret = created["secret"]
    assert secret.startswith("tg-")

    client = openai.OpenAI(api_key=secret, base_url=f"{served}/v1", max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="test-chat", messages=[{"role": "user", "content": "hello"}], max_tokens=50
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == upstream.behaviour.reply
    assert raw.headers["x-tollgate-credits-remaining"] == "99"
    assert raw.headers["x-tollgate-request-id"]
    # The stored provider key, decrypted, is what the upstream saw.
    assert upstream.last.headers["authorization"] == "Bearer sk-upstream-secret"
    events = admin(served, USAGE)["usageEvents"]["nodes"]
    assert events == [
        {
            "model": "test-chat",
            # The route's provider is named "fake", not the catalog's "openai": the column
            # keeps catalog names only (the route's name goes into the event's metadata).
            "provider": None,
            "inputTokens": 25,
            "outputTokens": 11,
            "costMicros": 47,
            "credits": 1,
        }
    ]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="tg-unknown", base_url=f"{served}/v1", max_retries=0).models.list()
    assert [m.id for m in client.models.list().data] == ["test-chat"]


SPEND = """query { apiKeys(accountExternalId: "u1") { name spendCredits rpmLimit } }"""


def test_a_key_s_own_rate_and_spend(served: str, upstream: FakeUpstream) -> None:
    test_a_virtual_key_and_a_provider_route_a_billed_call(served, upstream)
    limited = admin(
        served, KEY, input={"accountExternalId": "u1", "name": "limited", "rpmLimit": 2}
    )["createApiKey"]["secret"]
    client = openai.OpenAI(api_key=limited, base_url=f"{served}/v1", max_retries=0, timeout=30)
    ask = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}
    client.chat.completions.create(**ask)
    client.chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(**ask)
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    keys = {k["name"]: k for k in admin(served, SPEND)["apiKeys"]}
    assert keys["app"]["spendCredits"] == 1
    assert keys["limited"]["spendCredits"] == 2 and keys["limited"]["rpmLimit"] == 2
