"""Creating and changing upstream providers, addressed by name.

An upsert replaces everything it is given. The API key is the exception, since it is never
shown and so cannot be sent back unchanged: giving `api_key` stores it (encrypted) in place of
any environment variable, giving `api_key_env` replaces a stored key, `clear_api_key` removes
both, and giving none of them keeps what the provider has.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.crypto import SecretBox, SecretKeyMissing
from tollgate.errors import ValidationFailed
from tollgate.providers.models import MAX_TIMEOUT_SECONDS, MIN_TIMEOUT_SECONDS, Provider
from tollgate.providers.validation import (
    MAX_PATTERN,
    MAX_PATTERNS,
    check_name,
    check_patterns,
    check_secret,
    matches,
    unique,
)

PRIORITY_RANGE = (0, 10_000)
DEFAULT_PRIORITY = 100
DEFAULT_TIMEOUT_SECONDS = 60.0
MAX_URL = 2_000
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@dataclass(frozen=True)
class ProviderInput:
    name: str
    base_url: str
    models: tuple[str, ...]
    api_key_env: str | None = None
    api_key: str | None = field(default=None, repr=False)
    clear_api_key: bool = False
    # Request model -> upstream model name.
    model_map: tuple[tuple[str, str], ...] = ()
    priority: int = DEFAULT_PRIORITY
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    enabled: bool = True


def normalize_base_url(url: str) -> str | ValidationFailed:
    """An http(s) URL without credentials, query or fragment, and without a trailing slash
    (the gateway appends paths such as /chat/completions)."""
    refused = ValidationFailed(
        "baseUrl", "an http(s) URL with a host, e.g. https://api.openai.com/v1"
    )
    if not 0 < len(url) <= MAX_URL or not all("!" <= c <= "~" for c in url):
        return refused
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        return refused
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return refused
    if parts.username is not None or parts.password is not None:
        return ValidationFailed(
            "baseUrl", "no credentials in the URL: give apiKey or apiKeyEnv instead"
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return ValidationFailed("baseUrl", "no query string or fragment")
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))


def _check_model_map(
    model_map: Sequence[tuple[str, str]], patterns: Sequence[str]
) -> ValidationFailed | None:
    if len(model_map) > MAX_PATTERNS:
        return ValidationFailed("modelMap", f"at most {MAX_PATTERNS} entries")
    seen: set[str] = set()
    for model, upstream in model_map:
        for name in (model, upstream):
            if not (0 < len(name) <= MAX_PATTERN and name.isprintable()) or name != name.strip():
                return ValidationFailed(
                    "modelMap",
                    f"model names 1 to {MAX_PATTERN} printable characters, no surrounding spaces",
                )
        if model in seen:
            return ValidationFailed("modelMap", f"{model} is mapped twice")
        seen.add(model)
        if not matches(model, patterns):
            return ValidationFailed(
                "modelMap", f"{model} matches none of the provider's models patterns"
            )
    return None


def check(provider: ProviderInput) -> ValidationFailed | None:
    """The first problem with the input, or None. The base URL is checked by
    normalize_base_url."""
    if (invalid := check_name("name", provider.name)) is not None:
        return invalid
    if (invalid := check_patterns("models", provider.models)) is not None:
        return invalid
    if (invalid := _check_model_map(provider.model_map, provider.models)) is not None:
        return invalid
    given = [
        n
        for n, v in (
            ("apiKey", provider.api_key is not None),
            ("apiKeyEnv", provider.api_key_env is not None),
            ("clearApiKey", provider.clear_api_key),
        )
        if v
    ]
    if len(given) > 1:
        return ValidationFailed(given[0], "give one of apiKey, apiKeyEnv, clearApiKey")
    if provider.api_key_env is not None and not ENV_NAME.fullmatch(provider.api_key_env):
        return ValidationFailed(
            "apiKeyEnv", "an environment variable name: letters, digits and '_', at most 128"
        )
    if provider.api_key is not None and (
        invalid := check_secret("apiKey", provider.api_key.strip())
    ):
        return invalid
    low, high = PRIORITY_RANGE
    if isinstance(provider.priority, bool) or not low <= provider.priority <= high:
        return ValidationFailed("priority", f"between {low} and {high}; lower is tried first")
    timeout = provider.timeout_seconds
    if not (math.isfinite(timeout) and MIN_TIMEOUT_SECONDS <= timeout <= MAX_TIMEOUT_SECONDS):
        return ValidationFailed(
            "timeoutSeconds", f"between {MIN_TIMEOUT_SECONDS} and {MAX_TIMEOUT_SECONDS} seconds"
        )
    return None


async def upsert_provider(
    session: AsyncSession, provider: ProviderInput, *, crypto: SecretBox, actor: str
) -> Provider | ValidationFailed:
    if (invalid := check(provider)) is not None:
        return invalid
    base_url = normalize_base_url(provider.base_url)
    if isinstance(base_url, ValidationFailed):
        return base_url
    key_columns: dict[str, str | None] = {}
    if provider.api_key is not None:
        try:
            secret = crypto.encrypt(provider.api_key.strip())
        except SecretKeyMissing as missing:
            return ValidationFailed("apiKey", str(missing))
        key_columns = {"api_key_secret": secret, "api_key_env": None}
    elif provider.api_key_env is not None:
        key_columns = {"api_key_env": provider.api_key_env, "api_key_secret": None}
    elif provider.clear_api_key:
        key_columns = {"api_key_env": None, "api_key_secret": None}
    columns = {
        "base_url": base_url,
        "models": list(unique(provider.models)),
        "model_map": dict(provider.model_map),
        "priority": provider.priority,
        "timeout_seconds": float(provider.timeout_seconds),
        "enabled": provider.enabled,
        "updated_by": actor,
        "updated_at": func.now(),
        **key_columns,
    }
    # One statement, so two admins creating the same name at once both succeed, one after
    # the other, instead of one failing on the unique name.
    statement = (
        insert(Provider)
        .values(name=provider.name, **columns)
        .on_conflict_do_update(index_elements=[Provider.name], set_=columns)
        .returning(Provider)
        .execution_options(populate_existing=True)
    )
    saved = await session.scalar(statement)
    assert saved is not None
    return saved


async def list_providers(session: AsyncSession) -> Sequence[Provider]:
    """In the order the gateway tries them: priority, then name."""
    query = select(Provider).order_by(Provider.priority, Provider.name)
    return (await session.scalars(query)).all()


async def get_provider(session: AsyncSession, name: str) -> Provider | None:
    return await session.scalar(select(Provider).where(Provider.name == name))
