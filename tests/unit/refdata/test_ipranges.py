"""IP → province: curated CSV ranges, longest prefix, MaxMind databases (a real .mmdb file)."""

from __future__ import annotations

import io
from ipaddress import ip_address
from pathlib import Path

import pytest

from cloud.refdata.ipranges import (
    IpIndex,
    IpInfo,
    IpLookup,
    MaxMindProvinces,
    info_from_geoip2,
    parse_ip_csv,
)
from cloud.refdata.lookup import Places
from tests.unit.refdata.mmdb_writer import write_mmdb

CSV = """cidr,province,foreign,hosting
1.80.0.0/13,陕西,,
1.80.64.0/18,Jiangsu,0,0
36.96.0.0/11,CN-SD,,
42.0.0.0/16,,yes,
47.74.0.0/15,,,1
58.176.0.0/13,810000,,
2408:8000::/20,320000,,
not-a-cidr,320000,,
1.2.3.4/8,320000,,
5.0.0.0/8,Atlantis,,
6.0.0.0/8,320000,maybe,
"""


@pytest.fixture
def lookup() -> IpLookup:
    ranges, problems = parse_ip_csv(io.StringIO(CSV, newline=""))
    assert [(p.where, p.reason) for p in problems] == [
        ("line 9", "bad_cidr"),
        ("line 10", "bad_cidr"),  # host bits set
        ("line 11", "unknown_province"),
        ("line 12", "bad_flag"),
    ]
    return IpLookup(IpIndex(ranges))


def test_longest_prefix_wins(lookup: IpLookup) -> None:
    assert lookup.info("1.80.1.1") == IpInfo("610000", False, False)
    assert lookup.info("1.80.70.1") == IpInfo("320000", False, False)
    assert lookup.info("36.100.0.1") == IpInfo("370000", False, False)
    assert lookup.info("2408:8000::1") == IpInfo("320000", False, False)


def test_flags_and_outside_mainland(lookup: IpLookup) -> None:
    assert lookup.info("42.0.1.1") == IpInfo(None, True, False)
    assert lookup.info("47.75.0.1") == IpInfo(None, False, True)
    assert lookup.info("58.177.0.1") == IpInfo("810000", True, False)  # Hong Kong is foreign


def test_unknown_private_and_garbage(lookup: IpLookup) -> None:
    assert lookup.info("9.9.9.9") is None
    assert lookup.info("10.1.2.3") is None
    assert lookup.info("192.168.1.1") is None
    assert lookup.info("::ffff:1.80.1.1") == IpInfo("610000", False, False)
    assert lookup.info("hello") is None


def test_a_curated_range_applies_to_non_global_addresses_too() -> None:
    """A lender's table may name a private APN's ranges (and the simulator's table names
    RFC 5737 documentation ranges); only the public database is skipped for them."""
    ranges, _ = parse_ip_csv(io.StringIO("cidr,province\n10.64.0.0/10,320000\n", newline=""))
    lookup = IpLookup(IpIndex(ranges))
    assert lookup.info("10.64.1.2") == IpInfo("320000", False, False)
    assert lookup.info("10.1.2.3") is None


def test_places_answers_through_the_protocol(lookup: IpLookup) -> None:
    places = Places.from_records()
    places = Places(places.regions, places.pois, lookup)
    assert places.ip_province("1.80.70.1") == "320000"
    assert places.ip_province("42.0.1.1") is None
    assert places.ip_is_foreign_or_hosting("42.0.1.1")
    assert places.ip_is_foreign_or_hosting("47.74.9.9")
    assert not places.ip_is_foreign_or_hosting("1.80.70.1")
    assert not places.ip_is_foreign_or_hosting("10.0.0.1")


def test_missing_cidr_column() -> None:
    ranges, problems = parse_ip_csv(io.StringIO("net,province\n1.0.0.0/8,32\n"))
    assert ranges == []
    assert problems[0].reason == "missing_column"


@pytest.mark.parametrize(
    ("record", "info"),
    [
        (
            {"country": {"iso_code": "CN"}, "subdivisions": [{"iso_code": "JS"}]},
            IpInfo("320000", False, False),
        ),
        (
            {"country": {"iso_code": "CN"}, "subdivisions": [{"iso_code": "CN-GD"}]},
            IpInfo("440000", False, False),
        ),
        (
            {
                "country": {"iso_code": "CN"},
                "subdivisions": [{"names": {"en": "Ningxia Hui Autonomous Region"}}],
            },
            IpInfo("640000", False, False),
        ),
        (
            {"country": {"iso_code": "CN"}, "subdivisions": [{"names": {"zh-CN": "内蒙古自治区"}}]},
            IpInfo("150000", False, False),
        ),
        ({"country": {"iso_code": "CN"}}, IpInfo(None, False, False)),
        ({"country": {"iso_code": "TW"}}, IpInfo("710000", True, False)),
        (
            {"country": {"iso_code": "US"}, "traits": {"is_hosting_provider": True}},
            IpInfo(None, True, True),
        ),
        ({"is_hosting_provider": True}, IpInfo(None, False, True)),  # Anonymous-IP database
        ({"registered_country": {"iso_code": "JP"}}, IpInfo(None, True, False)),
        ({}, None),
    ],
)
def test_geoip2_records(record: dict[str, object], info: IpInfo | None) -> None:
    assert info_from_geoip2(record) == info


def test_maxmind_database_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny-city.mmdb"
    write_mmdb(
        path,
        {
            "1.0.1.0/24": {
                "country": {"iso_code": "CN", "names": {"en": "China"}},
                "subdivisions": [{"iso_code": "FJ", "names": {"en": "Fujian"}}],
            },
            "1.0.2.0/23": {
                "country": {"iso_code": "CN"},
                "subdivisions": [{"names": {"en": "Guangdong", "zh-CN": "广东"}}],
            },
            "8.8.8.0/24": {"country": {"iso_code": "US"}, "traits": {"is_hosting_provider": True}},
            "203.0.113.0/24": {"country": {"iso_code": "HK"}},
            "1.80.0.0/16": {"country": {"iso_code": "CN"}, "subdivisions": [{"iso_code": "SN"}]},
        },
        "GeoIP2-City",
    )
    db = MaxMindProvinces(path)
    try:
        assert db.lookup(ip_address("1.0.1.200")) == IpInfo("350000", False, False)
        assert db.lookup(ip_address("1.0.3.1")) == IpInfo("440000", False, False)
        assert db.lookup(ip_address("8.8.8.8")) == IpInfo(None, True, True)
        assert db.lookup(ip_address("203.0.113.9")) == IpInfo("810000", True, False)
        assert db.lookup(ip_address("9.9.9.9")) is None
        assert db.lookup(ip_address("2001:db8::1")) is None  # an IPv4-only database
        # Curated ranges answer first; the database fills what they leave unresolved.
        ranges, _ = parse_ip_csv(io.StringIO("cidr,province\n1.0.1.0/24,32\n1.80.0.0/16,\n"))
        lookup = IpLookup(IpIndex(ranges), db)
        assert lookup.info("1.0.1.1") == IpInfo("320000", False, False)
        assert lookup.info("1.80.3.3") == IpInfo("610000", False, False)
        assert lookup.info("1.0.2.9") == IpInfo("440000", False, False)
    finally:
        db.close()
