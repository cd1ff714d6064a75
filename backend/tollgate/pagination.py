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
    if kind != "c" or not number.isdigit():
        return None
    return int(number)
