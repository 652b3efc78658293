"""Keyset pagination: opaque cursors and the ``limit`` / ``cursor`` query parameters.

A cursor is the sort key of the last row of a page, tagged with the list it
belongs to, as unpadded base64url JSON. It is opaque to clients (they pass it
back unchanged) but not secret: every query still filters on the caller's
tenant and role, so a forged cursor only moves the position within what the
caller may see. Pure code.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import msgspec

MAX_CURSOR_CHARS = 512
DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Key = tuple[str | int, ...]


class PageError(ValueError):
    """A bad ``limit`` or ``cursor``; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def encode_cursor(kind: str, key: Key) -> str:
    raw = msgspec.json.encode({"k": kind, "v": list(key)})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(kind: str, token: str, shape: tuple[type, ...]) -> Key:
    """The key in ``token``; PageError unless it is a cursor of ``kind`` with ``shape``."""
    bad = PageError("invalid_cursor", "cursor is not one this list handed out")
    if not token or len(token) > MAX_CURSOR_CHARS or not token.isascii():
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise bad from None
    if not isinstance(doc, dict) or doc.get("k") != kind or not isinstance(doc.get("v"), list):
        raise bad
    values: list[Any] = doc["v"]
    if len(values) != len(shape):
        raise bad
    for value, typ in zip(values, shape, strict=True):
        # bool is an int subclass; a cursor never holds one
        if type(value) is not typ:
            raise bad
    return tuple(values)


def page_params(query: Mapping[str, str]) -> tuple[int, str | None]:
    """``limit`` (1..MAX_LIMIT, default DEFAULT_LIMIT) and the raw ``cursor`` if given."""
    text = query.get("limit")
    if text is None:
        limit = DEFAULT_LIMIT
    elif text.isascii() and text.isdigit() and len(text) <= 4 and 1 <= int(text) <= MAX_LIMIT:
        limit = int(text)
    else:
        raise PageError("invalid_parameter", f"limit must be an integer from 1 to {MAX_LIMIT}")
    cursor = query.get("cursor")
    return limit, (cursor or None)
