"""JSON errors with stable codes: ``{"error": {"code": ..., "message": ...}}``.

Handlers raise :class:`ApiError`; the :func:`json_errors` middleware turns it,
aiohttp's own HTTP exceptions (404, 405, 413…) and our own bugs (500, logged)
into the same JSON shape. Codes are part of the API contract (docs/api.md).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web

from cloud.api.cursor import PageError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A refusal with an HTTP status, a stable code and a human message."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = msgspec.json.encode({"error": {"code": code, "message": message}})
    resp = web.Response(status=status, body=body, content_type="application/json")
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="vgr-api"'
    resp.headers.update(headers or {})
    return resp


def json_response(doc: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(doc), content_type="application/json"
    )


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure is JSON with a stable code; only our own bugs are 500."""
    try:
        response: web.StreamResponse = await handler(request)
    except ApiError as exc:
        return error(exc.status, exc.code, exc.message, exc.headers)
    except PageError as exc:
        return error(400, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error(500, "internal", "internal error; it has been logged")
    return response


async def no_store(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: API answers (positions above all) are never cached."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
