"""Whether a browser page may open the live feed: the WebSocket's ``Origin`` check.

Pure code. A WebSocket is not covered by the same-origin policy: any page the
user visits could open ``wss://our-host/v1/live`` and the browser would attach
the session cookie. The browser always sends the page's ``Origin``, so the
feed accepts only its own origin (the ``Host`` the request was made to) or
the origins configured in ``[api] public_origins`` (behind a reverse proxy
that changes the host). A request without an Origin is refused too.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def _normal(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_allowed(origin: str | None, host: str | None, configured: tuple[str, ...]) -> bool:
    if not origin or origin == "null":
        return False
    if configured:
        return _normal(origin) in {_normal(o) for o in configured}
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or host is None:
        return False
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return False
    return parts.netloc.lower() == host.strip().lower()
