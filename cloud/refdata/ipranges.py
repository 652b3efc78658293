"""IP address → province: curated CIDR ranges (CSV) and MaxMind-format databases.

The cloud sees the operator gateway's public address, not the car, so only
the province is used, and only as evidence (DOMAIN.md, "IP geolocation").
Strong evidence is an address outside mainland China (Hong Kong, Macau and
Taiwan included) or in a hosting / data-centre range.

CSV columns (header required, any order): ``cidr``; ``province`` (adcode,
``32``, ``江苏``, ``Jiangsu``, ``CN-JS``… or empty when not province-resolved;
``province_adcode``/``adcode``/``province_name`` are accepted as its name);
optional ``foreign`` and ``hosting`` flags (1/0, true/false, yes/no, y/n, 是/否,
empty = false). A range in HK/MO/TW is foreign whatever its flag says.
Private, loopback and other non-global addresses resolve to nothing.

Lookups take the longest matching prefix: curated ranges first, then the
MaxMind database (``refdata.maxmind_db``) for what they do not resolve.
"""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .provinces import OUTSIDE_MAINLAND, province_adcode
from .report import RowProblem

__all__ = [
    "IpIndex",
    "IpInfo",
    "IpLookup",
    "IpRange",
    "MaxMindProvinces",
    "info_from_geoip2",
    "parse_ip_csv",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_TRUE = {"1", "true", "t", "yes", "y", "是", "x"}
_FALSE = {"", "0", "false", "f", "no", "n", "否"}
_PROVINCE_COLUMNS = ("province", "province_adcode", "adcode", "province_name", "省份")
_HOSTING_TRAITS = (
    "is_hosting_provider",
    "is_anonymous_vpn",
    "is_public_proxy",
    "is_tor_exit_node",
    "is_residential_proxy",
)
_OUTSIDE_COUNTRIES = {"HK": "810000", "MO": "820000", "TW": "710000"}


@dataclass(frozen=True, slots=True)
class IpInfo:
    province: str | None  # provincial adcode, None when not province-resolved
    foreign: bool  # outside mainland China
    hosting: bool  # hosting / data-centre / anonymiser range


@dataclass(frozen=True, slots=True)
class IpRange:
    network: Network
    info: IpInfo


def _flag(value: str | None, column: str) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    msg = f"{column} must be a yes/no flag, not {value!r}"
    raise ValueError(msg)


def _info(province: str | None, foreign: bool, hosting: bool) -> IpInfo:
    return IpInfo(province, foreign or province in OUTSIDE_MAINLAND, hosting)


def parse_ip_csv(lines: Iterable[str]) -> tuple[list[IpRange], list[RowProblem]]:
    """The ranges of an IP CSV and the rows that were rejected, each with its reason."""
    reader = csv.DictReader(lines)
    fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
    if "cidr" not in fields:
        return [], [RowProblem("line 1", "missing_column", "the header has no 'cidr' column")]
    prov_col = next((fields[c] for c in _PROVINCE_COLUMNS if c in fields), None)
    ranges: list[IpRange] = []
    problems: list[RowProblem] = []
    for row in reader:
        line = f"line {reader.line_num}"
        raw_cidr = (row.get(fields["cidr"]) or "").strip()
        try:
            network = ipaddress.ip_network(raw_cidr, strict=True)
        except ValueError as exc:
            problems.append(RowProblem(line, "bad_cidr", f"{raw_cidr!r}: {exc}"))
            continue
        raw_prov = (row.get(prov_col) or "").strip() if prov_col else ""
        province = province_adcode(raw_prov) if raw_prov else None
        if raw_prov and province is None:
            problems.append(RowProblem(line, "unknown_province", f"{raw_prov!r} is no province"))
            continue
        try:
            foreign = _flag(row.get(fields["foreign"]) if "foreign" in fields else "", "foreign")
            hosting = _flag(row.get(fields["hosting"]) if "hosting" in fields else "", "hosting")
        except ValueError as exc:
            problems.append(RowProblem(line, "bad_flag", str(exc)))
            continue
        ranges.append(IpRange(network, _info(province, foreign, hosting)))
    return ranges, problems


class IpIndex:
    """Longest-prefix match over CIDR ranges: one dict per prefix length present."""

    def __init__(self, ranges: Iterable[IpRange]) -> None:
        self._tables: dict[int, dict[int, dict[int, IpInfo]]] = {4: {}, 6: {}}
        for r in ranges:
            net = r.network
            bits = net.max_prefixlen
            table = self._tables[net.version].setdefault(net.prefixlen, {})
            table[int(net.network_address) >> (bits - net.prefixlen)] = r.info
        self._lengths = {v: sorted(t, reverse=True) for v, t in self._tables.items()}

    def __len__(self) -> int:
        return sum(len(t) for tables in self._tables.values() for t in tables.values())

    def match(self, address: Address) -> IpInfo | None:
        bits = address.max_prefixlen
        value = int(address)
        tables = self._tables[address.version]
        for plen in self._lengths[address.version]:
            found = tables[plen].get(value >> (bits - plen))
            if found is not None:
                return found
        return None


def _names(entry: Mapping[str, Any]) -> Iterator[str]:
    names = entry.get("names")
    if isinstance(names, Mapping):
        for lang in ("zh-CN", "en"):
            if isinstance(names.get(lang), str):
                yield names[lang]
        yield from (v for v in names.values() if isinstance(v, str))


def info_from_geoip2(record: Mapping[str, Any]) -> IpInfo | None:
    """Province / foreign / hosting from a GeoIP2-shaped record (City, Country, Anonymous IP)."""
    country = record.get("country") or record.get("registered_country") or {}
    iso = country.get("iso_code") if isinstance(country, Mapping) else None
    traits = record.get("traits")
    traits = traits if isinstance(traits, Mapping) else {}
    hosting = any(bool(record.get(k) or traits.get(k)) for k in _HOSTING_TRAITS)
    if not isinstance(iso, str):
        return IpInfo(None, False, True) if hosting else None
    iso = iso.upper()
    if iso in _OUTSIDE_COUNTRIES:
        return IpInfo(_OUTSIDE_COUNTRIES[iso], True, hosting)
    if iso != "CN":
        return IpInfo(None, True, hosting)
    province = None
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], Mapping):
        first = subdivisions[0]
        code = first.get("iso_code")
        province = province_adcode(code) if isinstance(code, str) else None
        for name in _names(first):
            province = province or province_adcode(name)
    return IpInfo(province, False, hosting)


class MaxMindProvinces:
    """Province answers from a MaxMind DB file (GeoIP2/GeoLite2 City or Country, DB-IP lite…)."""

    def __init__(self, path: Path) -> None:
        import maxminddb

        self.path = path
        self._reader = maxminddb.open_database(str(path))

    def close(self) -> None:
        self._reader.close()

    def lookup(self, address: Address) -> IpInfo | None:
        if address.version == 6 and self._reader.metadata().ip_version == 4:
            return None
        record = self._reader.get(address)
        return info_from_geoip2(record) if isinstance(record, Mapping) else None


class IpLookup:
    """Curated ranges first, the MaxMind database for what they leave unresolved."""

    def __init__(self, ranges: IpIndex, maxmind: MaxMindProvinces | None = None) -> None:
        self.ranges = ranges
        self.maxmind = maxmind

    def info(self, ip: str) -> IpInfo | None:
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        curated = self.ranges.match(address)
        if curated is not None and curated.province is not None:
            return curated  # a range someone named on purpose, global or not (a private APN)
        if not address.is_global:
            return curated  # a public database knows nothing about private ranges
        db = self.maxmind.lookup(address) if self.maxmind is not None else None
        if curated is None:
            return db
        if db is None:
            return curated
        return IpInfo(
            db.province if not curated.foreign else None,
            curated.foreign or db.foreign,
            curated.hosting or db.hosting,
        )
