"""Which address a request is accounted to, with and without trusted proxies."""

from __future__ import annotations

import pytest

from cloud.api.clientip import client_ip, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "::1"])


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip("203.0.113.5", "198.51.100.7", ()) == "203.0.113.5"
    assert client_ip("203.0.113.5", "198.51.100.7", PROXIES) == "203.0.113.5"


def test_behind_a_trusted_proxy_the_first_untrusted_hop_counts() -> None:
    assert client_ip("10.1.1.1", "198.51.100.7", PROXIES) == "198.51.100.7"
    assert client_ip("10.1.1.1", "1.2.3.4, 198.51.100.7, 10.2.2.2", PROXIES) == "198.51.100.7"
    assert client_ip("10.1.1.1", None, PROXIES) == "10.1.1.1"
    assert client_ip("10.1.1.1", "garbage, 198.51.100.7", PROXIES) == "198.51.100.7"
    assert client_ip("10.1.1.1", "198.51.100.7, garbage", PROXIES) == "10.1.1.1"


def test_odd_peers() -> None:
    assert client_ip(None, "1.2.3.4", PROXIES) is None
    assert client_ip("not-an-ip", None, ()) is None
    assert client_ip("::ffff:192.0.2.1", None, ()) == "192.0.2.1"
    assert client_ip("::1", "2001:db8::1", PROXIES) == "2001:db8::1"


def test_bad_proxy_entries() -> None:
    with pytest.raises(ValueError, match="does not appear"):
        parse_networks(["10.0.0.0/33"])
