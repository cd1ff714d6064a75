"""Seeding the demo: the model catalog, the tiers, token packages and a few subscribed
customers. Every step is keyed, so seeding again (each start with --demo) adds nothing twice."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts import service as accounts
from tollgate.accounts.models import Account
from tollgate.db import Database
from tollgate.demo.tiers import FEATURES, PACKAGES, TIERS
from tollgate.ledger.requests import GrantRequest
from tollgate.ledger.service import grant_credits
from tollgate.plans import packages, publishing
from tollgate.plans import service as plans
from tollgate.plans.models import PlanVersion
from tollgate.pricing.catalog_file import load_catalog
from tollgate.subscriptions import service as subscriptions

log = logging.getLogger(__name__)
ACTOR = "system:demo"

# (external id, name, plan, cycle, country, days since they subscribed)
CUSTOMERS = (
    ("acme-ai", "Acme AI", "enterprise", "ANNUAL", "US", 40),
    ("globex", "Globex Labs", "team", "MONTHLY", "DE", 12),
    ("initech", "Initech", "professional", "MONTHLY", "PL", 20),
    ("hooli", "Hooli Chat", "professional", "ANNUAL", "US", 3),
    ("piedpiper", "Pied Piper", "starter", "MONTHLY", "US", 2),
    ("umbrella", "Umbrella Notes", "free", "MONTHLY", None, 5),
)


async def _plans(session: AsyncSession, now: datetime) -> None:
    for feature in FEATURES:
        await plans.upsert_feature(session, feature)
    for code, name, description, content in TIERS:
        if await plans.get_plan(session, code) is not None:
            continue
        draft = await plans.create_plan(session, code, name, description, content)
        assert isinstance(draft, PlanVersion), draft
        await publishing.publish(session, draft.id, publishing.NONE, actor=ACTOR, now=now)
    for package in PACKAGES:
        await packages.upsert(session, package)


async def _customers(session: AsyncSession, now: datetime) -> None:
    for external_id, name, plan, cycle, country, days in CUSTOMERS:
        account = await accounts.get_account(session, external_id)
        if account is None:
            created = await accounts.create_account(session, accounts.NewAccount(external_id, name))
            assert isinstance(created, Account), created
            account = created
        if await subscriptions.live_subscription(session, account.id) is None:
            await subscriptions.subscribe(
                session,
                subscriptions.SubscribeRequest(
                    external_id, plan, cycle, f"demo-subscribe-{external_id}", country,
                    now - timedelta(days=days),
                ),
                actor=ACTOR, now=now,
            )  # fmt: skip
        await grant_credits(
            session,
            GrantRequest(
                amount=5_000, source="BONUS", idempotency_key=f"demo-welcome-{external_id}",
                account_external_id=external_id, reason="welcome bonus",
            ),
            actor=ACTOR,
        )  # fmt: skip


async def seed(db: Database, *, now: datetime) -> None:
    async with db.transaction() as session:
        await load_catalog(session)
    async with db.transaction() as session:
        await _plans(session, now)
    async with db.transaction() as session:
        await _customers(session, now)
    log.info("demo data ready: %d plans, %d customers", len(TIERS), len(CUSTOMERS))
