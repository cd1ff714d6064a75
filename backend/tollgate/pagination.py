"""Opaque cursors over monotonically increasing integer keys."""

from __future__ import annotations

import base64

MAX_PAGE = 200


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(f"c:{value}".encode()).decode()


def decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    kind, _, number = text.partition(":")
    if kind != "c":
        return None
    return parse_id(number)


def parse_id(text: str) -> int | None:
    """A database id given as text: ASCII digits within a bigint, else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value < 2**63 else None
