"""The SSRF guard: address classification, URL checks, and the guarded resolver."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from cloud.webhooks.ssrf import GuardedResolver, TargetRefused, check_url, refusal_reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        # IPv4
        ("8.8.8.8", None),
        ("114.114.114.114", None),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("172.32.0.1", None),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link_local"),  # cloud metadata service
        ("100.64.0.1", "shared"),  # carrier-grade NAT
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "private"),  # reserved class E; Python counts it private
        ("255.255.255.255", "private"),
        ("192.0.2.10", "private"),  # documentation range
        ("198.18.0.1", "private"),  # benchmarking
        # IPv6
        ("2606:4700:4700::1111", None),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link_local"),
        ("fe80::1%eth0", "link_local"),
        ("fc00::1", "private"),
        ("fd12:3456:789a::1", "private"),
        ("ff02::1", "multicast"),
        ("fec0::1", "site_local"),
        ("2001:db8::1", "private"),
        ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible form
        # IPv6 addresses that carry an IPv4 address are judged by it
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link_local"),
        ("::ffff:8.8.8.8", None),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("2002:808:808::", None),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("64:ff9b::808:808", None),
    ],
)
def test_classifier(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "link_local"),
        ("http://10.0.0.5/", "private"),
        ("http://[fe80::1]/", "link_local"),
        ("http://0.0.0.0:5432/", "unspecified"),
        ("http://2130706433/", "bad_url"),  # 127.0.0.1 as one number
        ("http://127.1/", "bad_url"),
        ("http://user:pw@example.com/", "bad_url"),
        ("http:///nohost", "bad_url"),
    ],
)
def test_urls_refused(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused) as caught:
        check_url(url, allow_private=False)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "url",
    ["https://lending.example.com/webhooks", "http://8.8.8.8/x", "https://[2606:4700::1]:8443/"],
)
def test_public_urls_pass(url: str) -> None:
    assert str(check_url(url, allow_private=False)) == url


def test_allow_private_lets_loopback_through_but_not_other_schemes() -> None:
    assert check_url("http://127.0.0.1:9/x", allow_private=True).port == 9
    with pytest.raises(TargetRefused, match="scheme"):
        check_url("ftp://127.0.0.1/", allow_private=True)


class FakeResolver(AbstractResolver):
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
            for a in self.answers[host]
        ]

    async def close(self) -> None:
        self.closed = True


async def test_resolver_passes_public_names() -> None:
    guarded = GuardedResolver(FakeResolver({"hooks.example.com": ["93.184.216.34"]}))
    results = await guarded.resolve("hooks.example.com", 443)
    assert [r["host"] for r in results] == ["93.184.216.34"]


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["127.0.0.1"], "loopback"),
        (["93.184.216.34", "10.0.0.7"], "private"),  # one bad answer refuses the name
        (["::ffff:192.168.0.1"], "private"),
        (["fe80::2"], "link_local"),
    ],
)
async def test_resolver_refuses_names_that_point_inside(answers: list[str], reason: str) -> None:
    inner = FakeResolver({"rebind.example.com": answers})
    guarded = GuardedResolver(inner)
    with pytest.raises(TargetRefused) as caught:
        await guarded.resolve("rebind.example.com", 80)
    assert caught.value.reason == reason
    assert "rebind.example.com" in caught.value.detail
    await guarded.close()
    assert inner.closed
