"""The client's IP address for throttling and the audit log. Pure code.

Behind a reverse proxy every request comes from the proxy, so the address
that matters is in ``X-Forwarded-For``; but anyone can send that header, so
it is believed only when the peer is one of ``[api] trusted_proxies``, and
then only up to the first hop (from the right) that is not itself trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """``trusted_proxies`` entries (addresses or CIDR blocks); ValueError on a bad one."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Address, trusted: Sequence[Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in trusted)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str | None:
    """The address to account the request to, or None when there is none (a Unix socket)."""
    addr = _address(peer)
    if addr is None or not trusted or not _trusted(addr, trusted):
        return None if addr is None else str(addr)
    for hop in reversed((forwarded_for or "").split(",")[-32:]):
        hop_addr = _address(hop)
        if hop_addr is None:
            break
        addr = hop_addr
        if not _trusted(hop_addr, trusted):
            break
    return str(addr)
