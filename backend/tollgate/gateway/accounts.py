"""Reads the gateway answers with: the balance left after a call, and when a limit resets."""

from __future__ import annotations

from datetime import datetime, timedelta

from tollgate.accounts.models import Account
from tollgate.db import Database
from tollgate.ledger import wallets
from tollgate.limits import rules as limit_rules
from tollgate.limits import service as limits

# A local day lasts 23 to 25 hours and a month 28 to 31 days, so these steps from a window's
# start always land inside the next window, whatever daylight saving does.
_INTO_NEXT = {"day": timedelta(hours=25), "month": timedelta(days=32)}
_PERIODS = {w.name: w.period for w in limit_rules.WINDOW_LIMITS}


class LedgerAccounts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def available(self, account_id: int) -> int:
        async with self._db.transaction() as session:
            account = await session.get(Account, account_id)
            if account is None:
                return 0
            return (await wallets.account_balance(session, account)).available

    async def window_reset(self, account_id: int, limit: str, now: datetime) -> datetime | None:
        period = _PERIODS.get(limit)
        if period is None:
            return None
        async with self._db.transaction() as session:
            rules = await limits.get_limits(session, account_id)
        timezone = rules.timezone if rules is not None else None
        _, _, day_start, month_start = limit_rules.windows_for(now, timezone)
        start = day_start if period == "day" else month_start
        _, _, next_day, next_month = limit_rules.windows_for(start + _INTO_NEXT[period], timezone)
        return next_day if period == "day" else next_month
