"""Relay-style connections over integer keys, with validated arguments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from tollgate.api.errors import ClientError
from tollgate.pagination import MAX_PAGE, decode_cursor, encode_cursor

T = TypeVar("T")
R = TypeVar("R")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[T]:
        return [e.node for e in self.edges]


def page_args(first: int, after: str | None) -> int | None:
    """Check `first` and decode `after`; raises a client error on bad values."""
    if not 1 <= first <= MAX_PAGE:
        raise ClientError(f"first must be between 1 and {MAX_PAGE}")
    if after is None:
        return None
    position = decode_cursor(after)
    if position is None:
        raise ClientError("after is not a cursor this API gave out")
    return position


def connection(
    rows: Sequence[R], first: int, key: Callable[[R], int], node: Callable[[R], T]
) -> Connection[T]:
    """`rows` holds up to first + 1 items; the extra one only says a next page exists."""
    page = rows[:first]
    edges = [Edge(cursor=encode_cursor(key(r)), node=node(r)) for r in page]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > first, end_cursor=edges[-1].cursor if edges else None
        ),
    )
