"""Demo data: `serve --demo` seeds the tiers and customers once, and usage keeps flowing."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.conftest import GraphQLClient
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.db import Database
from tollgate.demo import seed, traffic
from tollgate.demo.seed import CUSTOMERS
from tollgate.metering.models import UsageEvent
from tollgate.subscriptions.models import Subscription

PLANS = """{
  plans { code name currentVersion { badge includedCredits trialDays
    prices { cycle currency amountMinor } featureValues { featureKey enabled limit } } }
}"""


async def _demo_app_calls(settings: Settings) -> dict[str, Any]:
    application = create_app(dataclasses.replace(settings, demo=True))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo.test") as http:
            return await GraphQLClient(http).data(PLANS)


async def test_the_demo_seeds_the_tiers_once(settings: Settings, db: Database) -> None:
    first = await _demo_app_calls(settings)
    again = await _demo_app_calls(settings)  # a restart with --demo adds nothing
    assert first == again
    plans = {p["code"]: p for p in first["plans"]}
    assert list(plans) == ["free", "starter", "professional", "team", "enterprise"]
    monthly = {
        code: {(x["cycle"], x["currency"]): x["amountMinor"] for x in p["currentVersion"]["prices"]}
        for code, p in plans.items()
    }
    assert [monthly[c][("MONTHLY", "USD")] for c in ("starter", "professional", "team")] == [
        1900, 4900, 14900,
    ]  # fmt: skip
    for prices in monthly.values():  # two months free on annual
        assert prices[("ANNUAL", "USD")] == 10 * prices[("MONTHLY", "USD")]
    assert plans["professional"]["currentVersion"]["badge"] == "Most popular"
    async with db.transaction() as session:
        live = await session.scalar(select(func.count()).select_from(Subscription))
    assert live == len(CUSTOMERS)


async def test_synthetic_usage_is_booked_through_metering(
    gql: GraphQLClient, app: Any, db: Database
) -> None:
    await seed.seed(db, now=datetime.now(UTC))
    await app.state.metering.deps.pricing.reload()  # seeded behind the running app's back
    task = asyncio.create_task(traffic.run(app.state.metering, calls_per_second=40, seed=7))
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            async with db.transaction() as session:
                booked = await session.scalar(select(func.count()).select_from(UsageEvent))
            if booked and booked >= 5:
                break
    finally:
        task.cancel()
    assert booked is not None and booked >= 5
    usage = await gql.data('{ account(externalId: "acme-ai") { balance { available } } }')
    assert usage["account"]["balance"]["available"] > 0
