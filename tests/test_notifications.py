"""Notifications: written once per account, kind, subject and window; published after commit;
listed newest first."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from tests.conftest import GraphQLClient
from tests.helpers import create_account as create_account_via_api
from tollgate.accounts.models import Account
from tollgate.accounts.service import NewAccount, create_account
from tollgate.db import Database
from tollgate.notifications.models import Notification
from tollgate.notifications.service import ALERTS_CHANNEL, notify_once, publish_alerts

PAGE = """
query($account: String, $first: Int!, $after: String) {
  notifications(accountExternalId: $account, first: $first, after: $after) {
    nodes { id kind accountExternalId subject window payload createdAt }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def _account(db: Database, external_id: str = "u1") -> Account:
    async with db.transaction() as s:
        account = await create_account(s, NewAccount(external_id))
    assert isinstance(account, Account)
    return account


async def _count(db: Database) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(Notification)) or 0)


async def test_notify_once_twice_writes_one_row(db: Database) -> None:
    account = await _account(db)
    for account_id in (account.id, None):
        async with db.transaction() as s:
            first = await notify_once(
                s, account_id=account_id, kind="LOW_BALANCE", subject="LOW_BALANCE",
                window="day:2026-11-21", payload={"used": 3},
            )  # fmt: skip
        async with db.transaction() as s:
            second = await notify_once(
                s, account_id=account_id, kind="LOW_BALANCE", subject="LOW_BALANCE",
                window="day:2026-11-21", payload={"used": 2},
            )  # fmt: skip
        assert first is not None and second is None
    assert await _count(db) == 2


async def test_concurrent_notify_once_writes_one_row(db: Database) -> None:
    account = await _account(db)

    async def notify() -> dict | None:
        async with db.transaction() as s:
            return await notify_once(
                s, account_id=account.id, kind="WARNING", subject="CALLS_PER_DAY",
                window="day:2026-11-21", payload={},
            )  # fmt: skip

    results = await asyncio.gather(*(notify() for _ in range(10)))
    assert sum(r is not None for r in results) == 1
    assert await _count(db) == 1


async def test_alerts_are_published_on_the_channel(db: Database, redis: Redis) -> None:
    account = await _account(db)
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(ALERTS_CHANNEL)
        await pubsub.get_message(timeout=1)  # the subscription's confirmation
        async with db.transaction() as s:
            event = await notify_once(
                s, account_id=account.id, kind="BLOCK", subject="TOKENS_PER_DAY",
                window="day:2026-11-21", payload={"used": 951},
            )  # fmt: skip
        await publish_alerts(redis, [event, None])
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert message is not None
    assert json.loads(message["data"]) == event


async def test_unknown_kinds_are_a_programming_error(db: Database) -> None:
    async with db.transaction() as s:
        with pytest.raises(ValueError, match="SHRUG"):
            await notify_once(s, account_id=None, kind="SHRUG", subject="x", window="w", payload={})


async def test_listed_newest_first_per_account(gql: GraphQLClient, db: Database) -> None:
    await create_account_via_api(gql, "u1")
    await create_account_via_api(gql, "u2")
    async with db.transaction() as s:
        ids = {
            a.external_id: a.id
            for a in (await s.scalars(select(Account).order_by(Account.id))).all()
        }
        for day in range(1, 4):
            await notify_once(
                s, account_id=ids["u1"], kind="WARNING", subject="TOKENS_PER_DAY",
                window=f"day:2026-11-0{day}", payload={"used": day},
            )  # fmt: skip
        await notify_once(
            s, account_id=ids["u2"], kind="LOW_BALANCE", subject="LOW_BALANCE",
            window="day:2026-11-03", payload={"used": 0},
        )  # fmt: skip
        await notify_once(
            s, account_id=None, kind="EMERGENCY_STOP", subject="GLOBAL",
            window="at:2026-11-03T10:00:00+00:00", payload={"on": True},
        )  # fmt: skip

    first = (await gql.data(PAGE, account="u1", first=2))["notifications"]
    assert [n["window"] for n in first["nodes"]] == ["day:2026-11-03", "day:2026-11-02"]
    assert first["nodes"][0]["payload"] == {"used": 3}
    assert first["nodes"][0]["accountExternalId"] == "u1"
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await gql.data(PAGE, account="u1", first=2, after=first["pageInfo"]["endCursor"]))[
        "notifications"
    ]
    assert [n["window"] for n in rest["nodes"]] == ["day:2026-11-01"]
    assert rest["pageInfo"]["hasNextPage"] is False

    everything = (await gql.data(PAGE, first=10))["notifications"]["nodes"]
    assert [(n["kind"], n["accountExternalId"]) for n in everything][:2] == [
        ("EMERGENCY_STOP", None),
        ("LOW_BALANCE", "u2"),
    ]
    assert len(everything) == 5

    bad = await gql.execute(PAGE, first=0)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    anonymous = await gql.as_key(None).execute(PAGE, first=1)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
