"""Pricing policies: the global default and per-account overrides, set, cleared and resolved.

The policy for an account is its own, else its plan version's, else the global default, else the
built-in PASSTHROUGH without a platform fee (see `resolve`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import Account
from tollgate.accounts.service import get_account
from tollgate.errors import AccountNotFound, ValidationFailed
from tollgate.pricing.charge import FIXED_PER_CALL, MULTIPLIER, PER_MODEL, Policy
from tollgate.pricing.models import PricingPolicy
from tollgate.pricing.policy_input import PolicyInput, build_policy, rules_from_json, rules_json
from tollgate.pricing.validation import plain, storable
from tollgate.subscriptions.current import plan_contents

ACCOUNT, PLAN, GLOBAL, BUILT_IN = "ACCOUNT", "PLAN", "GLOBAL", "BUILT_IN"
BUILT_IN_POLICY = Policy()


@dataclass(frozen=True)
class EffectivePolicy:
    policy: Policy
    scope: str  # ACCOUNT, PLAN, GLOBAL or BUILT_IN
    account_external_id: str | None = None
    updated_at: datetime | None = None


def policy_of(row: PricingPolicy) -> Policy:
    model_rules, time_rules = rules_from_json(row.model_rules, row.time_rules)
    return Policy(
        kind=row.kind,
        multiplier=plain(row.multiplier) if row.multiplier is not None else Policy.multiplier,
        fixed_per_call_usd=(
            plain(row.fixed_per_call_usd)
            if row.fixed_per_call_usd is not None
            else Policy.fixed_per_call_usd
        ),
        default_markup=(
            plain(row.default_markup) if row.default_markup is not None else Policy.default_markup
        ),
        platform_fee_usd=plain(row.platform_fee_usd),
        model_rules=model_rules,
        time_rules=time_rules,
    )


def resolve(own: Policy | None, plan: Policy | None, default: Policy | None) -> tuple[Policy, str]:
    """The one place that says which policy wins."""
    if own is not None:
        return own, ACCOUNT
    if plan is not None:
        return plan, PLAN
    if default is not None:
        return default, GLOBAL
    return BUILT_IN_POLICY, BUILT_IN


def _values(policy: Policy) -> dict[str, object]:
    model_rules, time_rules = rules_json(policy)
    return {
        "kind": policy.kind,
        "multiplier": policy.multiplier if policy.kind == MULTIPLIER else None,
        "fixed_per_call_usd": (
            policy.fixed_per_call_usd if policy.kind == FIXED_PER_CALL else None
        ),
        "default_markup": policy.default_markup if policy.kind == PER_MODEL else None,
        "platform_fee_usd": policy.platform_fee_usd,
        "model_rules": model_rules,
        "time_rules": time_rules,
        "updated_at": datetime.now(UTC),
    }


async def _row(session: AsyncSession, account_id: int | None) -> PricingPolicy | None:
    where = (
        PricingPolicy.scope == GLOBAL
        if account_id is None
        else PricingPolicy.account_id == account_id
    )
    return await session.scalar(select(PricingPolicy).where(where))


async def _account(
    session: AsyncSession, external_id: str | None
) -> Account | AccountNotFound | None:
    if external_id is None:
        return None
    if not storable(external_id):
        return AccountNotFound(external_id)
    account = await get_account(session, external_id)
    return AccountNotFound(external_id) if account is None else account


async def effective_policy(
    session: AsyncSession, account_external_id: str | None
) -> EffectivePolicy | AccountNotFound:
    account = await _account(session, account_external_id)
    if isinstance(account, AccountNotFound):
        return account
    own = await _row(session, account.id) if account is not None else None
    plan = (await plan_contents(session, [account.id])).get(account.id) if account else None
    default = await _row(session, None)
    policy, scope = resolve(
        policy_of(own) if own else None,
        plan.policy if plan else None,
        policy_of(default) if default else None,
    )
    row = own if scope == ACCOUNT else default if scope == GLOBAL else None
    return EffectivePolicy(
        policy=policy,
        scope=scope,
        account_external_id=account_external_id if scope in (ACCOUNT, PLAN) else None,
        updated_at=row.updated_at if row else None,
    )


async def set_policy(
    session: AsyncSession, given: PolicyInput
) -> EffectivePolicy | ValidationFailed | AccountNotFound:
    """Replace the account's own policy (or the global default when no account is given)."""
    policy = build_policy(given)
    if isinstance(policy, ValidationFailed):
        return policy
    account = await _account(session, given.account_external_id)
    if isinstance(account, AccountNotFound):
        return account
    values = _values(policy)
    statement = insert(PricingPolicy).values(
        scope=ACCOUNT if account else GLOBAL,
        account_id=account.id if account else None,
        **values,
    )
    if account is None:
        statement = statement.on_conflict_do_update(
            index_elements=["scope"], index_where=text("scope = 'GLOBAL'"), set_=values
        )
    else:
        statement = statement.on_conflict_do_update(index_elements=["account_id"], set_=values)
    await session.execute(statement)
    return await effective_policy(session, given.account_external_id)


async def clear_policy(
    session: AsyncSession, account_external_id: str | None
) -> EffectivePolicy | AccountNotFound:
    """Remove the account's own policy (or the global default); returns what applies now.
    Clearing what is not there changes nothing."""
    account = await _account(session, account_external_id)
    if isinstance(account, AccountNotFound):
        return account
    where = (
        PricingPolicy.scope == GLOBAL if account is None else PricingPolicy.account_id == account.id
    )
    await session.execute(delete(PricingPolicy).where(where))
    return await effective_policy(session, account_external_id)


async def all_policies(
    session: AsyncSession,
) -> tuple[Policy | None, dict[int, Policy], dict[int, Policy]]:
    """The global default, every account's own policy and every subscriber's plan policy, for
    the in-memory cache."""
    default: Policy | None = None
    by_account: dict[int, Policy] = {}
    by_plan = {
        a: c.policy for a, c in (await plan_contents(session)).items() if c.policy is not None
    }
    for row in await session.scalars(
        select(PricingPolicy).where(PricingPolicy.scope.in_((GLOBAL, ACCOUNT)))
    ):
        if row.scope == GLOBAL:
            default = policy_of(row)
        elif row.account_id is not None:
            by_account[row.account_id] = policy_of(row)
    return default, by_account, by_plan
