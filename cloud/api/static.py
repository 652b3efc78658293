"""The web pages: ``/`` (the recovery map), ``/cockpit``, and ``/static/...`` from ``cloud/web``.

Public routes (the pages log in through the API). Files are served from
``cloud/web`` only, by an allow-list of types, never a directory listing, a
hidden file, ``..`` or a symlink out of the tree; Leaflet comes from
``cloud/web/node_modules/leaflet/dist`` (installed by ``npm ci`` at setup) as
``/static/vendor/leaflet/...``: the map loads nothing from the internet.
Every page carries a strict Content-Security-Policy: scripts, styles and
connections to this origin only; images also from the configured tile
server's origin (``[api] tile_url``), nothing else.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from cloud.api.errors import ApiError
from cloud.api.policy import Routes, Scope
from cloud.api.state import SETTINGS
from cloud.config import ApiSettings

routes = Routes()
WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
VENDOR = {"leaflet": WEB_ROOT / "node_modules" / "leaflet" / "dist"}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".map": "application/json",
}
NOT_SERVED = frozenset({"package.json", "package-lock.json"})
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # no hidden files, no ".."
PAGE_SETTINGS = ("tile_url", "tile_crs", "tile_attribution")


def tile_origin(tile_url: str) -> str | None:
    """The CSP source of a tile URL template (``{s}`` subdomains become a wildcard)."""
    if not tile_url:
        return None
    parts = urlsplit(tile_url.replace("{s}", "SUBDOMAIN"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    netloc = parts.netloc.replace("SUBDOMAIN", "*")
    if "{" in netloc or "}" in netloc:
        return None
    return f"{parts.scheme}://{netloc}"


def content_security_policy(settings: ApiSettings) -> str:
    tiles = tile_origin(settings.tile_url)
    img = "'self'" + (f" {tiles}" if tiles else "")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {img}; connect-src 'self'; font-src 'self'; manifest-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    )


def resolve(relative: str) -> Path | None:
    """The file ``relative`` names under the web root (or a vendor package), or None."""
    segments = relative.split("/")
    if not segments or any(not _SEGMENT.match(s) for s in segments):
        return None
    if segments[0] == "vendor":
        if len(segments) < 3 or segments[1] not in VENDOR:
            return None
        base, rest = VENDOR[segments[1]], segments[2:]
    else:
        if segments[0] == "node_modules" or segments[-1] in NOT_SERVED:
            return None
        base, rest = WEB_ROOT, segments
    path = base.joinpath(*rest)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_file() or not real.is_relative_to(base.resolve()):
        return None
    if real.suffix not in TYPES:
        return None
    return real


def _file_response(path: Path, settings: ApiSettings) -> web.Response:
    body = path.read_bytes()
    if path.suffix == ".html":
        body = _fill_page(body.decode("utf-8"), settings).encode("utf-8")
    resp = web.Response(body=body, headers={"Content-Type": TYPES[path.suffix]})
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["Content-Security-Policy"] = content_security_policy(settings)
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Referrer-Policy"] = "strict-origin"
    return resp


def _fill_page(text: str, settings: ApiSettings) -> str:
    """Put the map settings into the page's ``{{tile_url}}``-style placeholders, escaped."""
    for name in PAGE_SETTINGS:
        text = text.replace("{{" + name + "}}", html.escape(str(getattr(settings, name))))
    return text


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no such file")


@routes("GET", "/", scope=Scope.PUBLIC, summary="The recovery map (HTML page)")
async def index(request: web.Request) -> web.Response:
    return _file_response(WEB_ROOT / "index.html", request.app[SETTINGS])


@routes("GET", "/cockpit", scope=Scope.PUBLIC, summary="The analysts' cockpit (HTML page)")
async def cockpit(request: web.Request) -> web.Response:
    path = resolve("cockpit.html")
    if path is None:
        raise _not_found()
    return _file_response(path, request.app[SETTINGS])


@routes("GET", "/static/{path:.+}", scope=Scope.PUBLIC,
        summary="The web pages' scripts, styles, translations and Leaflet")  # fmt: skip
async def static_file(request: web.Request) -> web.Response:
    path = resolve(request.match_info["path"])
    if path is None:
        raise _not_found()
    return _file_response(path, request.app[SETTINGS])
