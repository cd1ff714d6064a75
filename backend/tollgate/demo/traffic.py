"""Synthetic usage for the demo: a few calls a second from the demo customers, through the
same metering path real traffic takes, so the admin screens move from the first minute."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import replace

from tollgate.demo.seed import CUSTOMERS
from tollgate.metering.requests import AuthorizeRequest, UsageEventInput
from tollgate.metering.results import Authorized
from tollgate.metering.service import Metering

log = logging.getLogger(__name__)
# Models every demo tier may use, so most calls are booked rather than denied.
MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "claude-3-5-haiku", "gemini-2.0-flash")
FEATURES = ("chat", "summarize", "search", "autocomplete")


def one_call(rng: random.Random) -> tuple[AuthorizeRequest, UsageEventInput]:
    account = rng.choice(CUSTOMERS)[0]
    model, feature = rng.choice(MODELS), rng.choice(FEATURES)
    prompt, answer = rng.randint(200, 3_000), rng.randint(50, 800)
    ask = AuthorizeRequest(account, model, prompt, answer * 2, feature=feature)
    used = UsageEventInput(
        event_id=f"demo-{uuid.uuid4()}", account_external_id=account, model=model,
        input_tokens=prompt, output_tokens=answer, feature=feature,
    )  # fmt: skip
    return ask, used


async def run(
    metering: Metering, *, calls_per_second: float = 3.0, seed: int | None = None
) -> None:
    """Until cancelled: authorize, then record, each call, like an app in front of an LLM."""
    rng = random.Random(seed)  # noqa: S311 - synthetic demo traffic, nothing secret
    while True:
        await asyncio.sleep(rng.expovariate(calls_per_second))
        ask, used = one_call(rng)
        try:
            authorized = await metering.authorize(ask)
            if isinstance(authorized, Authorized):
                await metering.record([replace(used, reservation_id=authorized.reservation_id)])
        except Exception:  # the demo must never take the service down
            log.exception("synthetic usage call failed")
