"""Typed pages for list routes: the ``limit`` / ``cursor`` query Struct and the ``Page`` answer.

A list route declares ``query=`` a Struct that inherits :class:`PageQuery`
(so the OpenAPI document shows ``limit`` and ``cursor`` with their bounds)
and answers ``Page[Item]``. Cursors are the keyset positions of
:mod:`cloud.api.cursor`; :func:`datetime_key` reads the common
``(timestamp, id)`` one back. Pure code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Generic, TypeVar

import msgspec

from cloud.api.cursor import (
    DEFAULT_LIMIT,
    MAX_CURSOR_CHARS,
    MAX_LIMIT,
    Key,
    PageError,
    decode_cursor,
    encode_cursor,
)

T = TypeVar("T")

Limit = Annotated[
    int, msgspec.Meta(ge=1, le=MAX_LIMIT, description="page size (default 50, at most 200)")
]
Cursor = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_CURSOR_CHARS,
        description="next_cursor of the previous page, passed back unchanged",
    ),
]
Text = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^[^\x00]*$")]


class PageQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None


class Page(msgspec.Struct, Generic[T]):
    """One page of a list, newest or most urgent first; ``next_cursor`` null on the last page."""

    items: list[T]
    next_cursor: str | None


def page_of(kind: str, rows: list[T], limit: int, key: Callable[[T], Key]) -> Page[T]:
    """The first ``limit`` of ``rows`` (fetched with ``limit + 1``) and the cursor after them.

    ``key`` maps the last row kept to its keyset position.
    """
    kept = rows[:limit]
    cursor = encode_cursor(kind, key(kept[-1])) if len(rows) > limit else None
    return Page(kept, cursor)


def datetime_key(kind: str, cursor: str | None) -> tuple[datetime | None, int | None]:
    """``(time, id)`` from a cursor of ``kind``, or ``(None, None)`` without one."""
    if cursor is None:
        return None, None
    text, row_id = decode_cursor(kind, cursor, (str, int))
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        raise PageError("invalid_cursor", "cursor is not one this list handed out") from None
    if when.tzinfo is None:
        raise PageError("invalid_cursor", "cursor is not one this list handed out")
    return when, int(row_id)


def id_key(kind: str, cursor: str | None) -> int | None:
    """The id from a cursor of ``kind`` for lists ordered by id alone."""
    return None if cursor is None else int(decode_cursor(kind, cursor, (int,))[0])
