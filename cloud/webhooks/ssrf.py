"""The SSRF guard: webhooks go only to public http(s) addresses unless configured otherwise.

A tenant chooses its endpoint URL, so without a guard a webhook could be aimed at
the database, the broker or a cloud metadata service on our own network. Every
address a host name resolves to is classified with :func:`refusal_reason`; the
connector's resolver (:class:`GuardedResolver`) checks them at connect time, so
a name that changes its answer between a check and the connection (DNS
rebinding) still cannot reach a private address. IP literals in the URL, which
aiohttp connects to without resolving, are checked by :func:`check_url`.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEMES = frozenset({"http", "https"})
_SHARED_V4 = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: IPv4 inside


class TargetRefused(Exception):  # noqa: N818 - it is a refusal, not a programmer error
    """The URL may not be called; ``reason`` is a short name for logs and metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _embedded_v4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def refusal_reason(addr: IPAddress) -> str | None:
    """Why a webhook may not go to ``addr`` (``"loopback"``, ``"private"``…), or None if public."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = _embedded_v4(addr)
        if inner is not None:  # judged by the IPv4 address it carries
            return refusal_reason(inner)
        if addr.scope_id:
            return "link_local"
    checks = (
        ("unspecified", addr.is_unspecified),
        ("loopback", addr.is_loopback),
        ("link_local", addr.is_link_local),
        ("multicast", addr.is_multicast),
        ("shared", isinstance(addr, ipaddress.IPv4Address) and addr in _SHARED_V4),
        ("private", addr.is_private),
        ("reserved", addr.is_reserved),
        ("site_local", isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local),
        ("not_global", not addr.is_global),
    )
    for name, hit in checks:
        if hit:
            return name
    return None


def check_url(url: str, *, allow_private: bool) -> URL:
    """The parsed URL when its scheme and any literal address are acceptable; else TargetRefused.

    Host names are checked later, when the connector resolves them.
    """
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise TargetRefused("bad_url", f"cannot parse {url!r}: {exc}") from None
    if parsed.scheme not in _SCHEMES:
        raise TargetRefused("scheme", f"only http and https are allowed, not {parsed.scheme!r}")
    host = parsed.host
    if not host:
        raise TargetRefused("bad_url", f"no host in {url!r}")
    if parsed.user is not None or parsed.password is not None:
        raise TargetRefused("bad_url", "credentials in the URL are not allowed")
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if host.replace(".", "").isdigit():  # 2130706433, 127.1: numeric forms of an address
            raise TargetRefused("bad_url", f"{host!r} is not a canonical address") from None
        return parsed
    if not allow_private:
        reason = refusal_reason(addr)
        if reason is not None:
            raise TargetRefused(reason, f"{host} is a {reason.replace('_', '-')} address")
    return parsed


class GuardedResolver(AbstractResolver):
    """A resolver that refuses names resolving to any non-public address.

    One bad address refuses the name: a host that answers both public and
    private addresses could otherwise be steered to the private one.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            try:
                addr = ipaddress.ip_address(result["host"])
            except ValueError:
                raise TargetRefused(
                    "bad_address", f"{host} resolved to {result['host']!r}"
                ) from None
            reason = refusal_reason(addr)
            if reason is not None:
                raise TargetRefused(
                    reason, f"{host} resolves to {addr}, a {reason.replace('_', '-')} address"
                )
        return results

    async def close(self) -> None:
        await self._inner.close()
