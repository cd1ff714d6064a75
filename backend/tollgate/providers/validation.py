"""Checks shared by providers and virtual keys: provider names, model patterns, secrets."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from tollgate.errors import ValidationFailed

MAX_NAME = 64
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
MAX_PATTERNS = 200
MAX_PATTERN = 200
MAX_SECRET = 4096


def check_name(field: str, name: str) -> ValidationFailed | None:
    if not (0 < len(name) <= MAX_NAME and NAME.fullmatch(name)):
        return ValidationFailed(
            field,
            f"1 to {MAX_NAME} characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    return None


def check_patterns(field: str, patterns: Sequence[str]) -> ValidationFailed | None:
    """Exact model names or glob patterns (`gpt-4o*`, `o?-mini`, `*`), at least one."""
    if not patterns:
        return ValidationFailed(field, "give at least one model name or pattern")
    if len(patterns) > MAX_PATTERNS:
        return ValidationFailed(field, f"at most {MAX_PATTERNS} entries")
    for pattern in patterns:
        if not (0 < len(pattern) <= MAX_PATTERN and pattern.isprintable()) or (
            pattern != pattern.strip()
        ):
            return ValidationFailed(
                field,
                f"each entry 1 to {MAX_PATTERN} printable characters, no surrounding spaces",
            )
    return None


def matches(model: str, patterns: Iterable[str]) -> bool:
    """Case-sensitive, as upstreams treat model names."""
    return any(model == p or fnmatchcase(model, p) for p in patterns)


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def check_secret(field: str, secret: str) -> ValidationFailed | None:
    # Sent upstream in an Authorization header: anything beyond visible ASCII could split or
    # corrupt the header.
    if not 0 < len(secret) <= MAX_SECRET:
        return ValidationFailed(field, f"1 to {MAX_SECRET} characters")
    if not all("!" <= c <= "~" for c in secret):
        return ValidationFailed(field, "visible ASCII characters only, no spaces")
    return None


def unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
