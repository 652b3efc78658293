"""Reading request parameters: bounded, typed, and refused with a stable code when bad."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import msgspec
from aiohttp import web

from cloud.api.errors import ApiError

MAX_ID = 2**63 - 1
MAX_BODY_BYTES = 16 * 1024
T = TypeVar("T")


def _clean(value: str, name: str, max_chars: int) -> str:
    if len(value) > max_chars:
        raise ApiError(400, "invalid_parameter", f"{name} has at most {max_chars} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise ApiError(400, "invalid_parameter", f"{name} contains a NUL character")
    return value


def optional_text(query: Mapping[str, str], name: str, max_chars: int) -> str | None:
    value = query.get(name)
    return None if value is None or value == "" else _clean(value, name, max_chars)


def one_of(query: Mapping[str, str], name: str, choices: Sequence[str]) -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if value not in choices:
        raise ApiError(400, "invalid_parameter", f"{name} must be one of {', '.join(choices)}")
    return value


def path_id(request: web.Request, name: str, not_found: str) -> int:
    """A positive integer id from the path; anything else is the object's 404."""
    text = request.match_info[name]
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 0 < int(text) <= MAX_ID:
        raise ApiError(404, not_found, f"no such {not_found.removesuffix('_not_found')}")
    return int(text)


async def json_body(request: web.Request, typ: type[T]) -> T:
    """The request body decoded as ``typ``; 415 unless JSON, 400 unless valid."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "request_too_large", f"at most {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "request_too_large", f"at most {MAX_BODY_BYTES} bytes")
    try:
        return msgspec.json.decode(raw, type=typ)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    except msgspec.DecodeError:
        raise ApiError(400, "invalid_request", "the body is not valid JSON") from None


def query_params(request: web.Request, typ: type[T]) -> T:
    """The query string decoded as the Struct ``typ`` (strings converted: ``?limit=50``).

    The Struct is also what the route declares as ``query=`` for the OpenAPI
    document. An unknown or repeated parameter, or a value of the wrong type or
    out of its bounds, is ``400 invalid_parameter`` naming it.
    """
    seen: dict[str, str] = {}
    for key, value in request.query.items():
        if key in seen:
            raise ApiError(400, "invalid_parameter", f"{key} is given more than once")
        if "\x00" in value:
            raise ApiError(400, "invalid_parameter", f"{key} contains a NUL character")
        seen[key] = value
    try:
        return msgspec.convert(seen, type=typ, strict=False)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
