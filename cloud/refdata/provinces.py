"""The 34 provincial-level units: adcodes, names, ISO 3166-2 codes, and how to recognise them.

IP databases and lenders' files name provinces many ways: ``320000``, ``32``,
``江苏省``, ``江苏``, ``Jiangsu``, ``Jiangsu Sheng``, ``CN-JS``, ``JS`` (GeoIP2
subdivision codes carry no country prefix) or the pre-2017 numeric ``CN-32``.
:func:`province_adcode` turns any of them into the six-digit adcode.

Hong Kong, Macau and Taiwan have adcodes (810000, 820000, 710000) but are
outside mainland China: :data:`OUTSIDE_MAINLAND` lists them, and GeoIP2
databases give them their own country codes (HK, MO, TW).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "MUNICIPALITIES",
    "OUTSIDE_MAINLAND",
    "PROVINCES",
    "Province",
    "is_adcode",
    "province_adcode",
    "province_of_adcode",
]


@dataclass(frozen=True, slots=True)
class Province:
    adcode: str
    name: str  # full Chinese name
    short: str  # short Chinese name
    english: tuple[str, ...]  # lower-case English / pinyin names seen in IP databases
    iso: str  # ISO 3166-2:CN subdivision code after "CN-" (2017 edition)


PROVINCES: tuple[Province, ...] = (
    Province("110000", "北京市", "北京", ("beijing",), "BJ"),
    Province("120000", "天津市", "天津", ("tianjin",), "TJ"),
    Province("130000", "河北省", "河北", ("hebei",), "HE"),
    Province("140000", "山西省", "山西", ("shanxi",), "SX"),
    Province(
        "150000", "内蒙古自治区", "内蒙古", ("inner mongolia", "nei mongol", "neimenggu"), "NM"
    ),
    Province("210000", "辽宁省", "辽宁", ("liaoning",), "LN"),
    Province("220000", "吉林省", "吉林", ("jilin",), "JL"),
    Province("230000", "黑龙江省", "黑龙江", ("heilongjiang",), "HL"),
    Province("310000", "上海市", "上海", ("shanghai",), "SH"),
    Province("320000", "江苏省", "江苏", ("jiangsu",), "JS"),
    Province("330000", "浙江省", "浙江", ("zhejiang",), "ZJ"),
    Province("340000", "安徽省", "安徽", ("anhui",), "AH"),
    Province("350000", "福建省", "福建", ("fujian",), "FJ"),
    Province("360000", "江西省", "江西", ("jiangxi",), "JX"),
    Province("370000", "山东省", "山东", ("shandong",), "SD"),
    Province("410000", "河南省", "河南", ("henan",), "HA"),
    Province("420000", "湖北省", "湖北", ("hubei",), "HB"),
    Province("430000", "湖南省", "湖南", ("hunan",), "HN"),
    Province("440000", "广东省", "广东", ("guangdong",), "GD"),
    Province("450000", "广西壮族自治区", "广西", ("guangxi",), "GX"),
    Province("460000", "海南省", "海南", ("hainan",), "HI"),
    Province("500000", "重庆市", "重庆", ("chongqing",), "CQ"),
    Province("510000", "四川省", "四川", ("sichuan",), "SC"),
    Province("520000", "贵州省", "贵州", ("guizhou",), "GZ"),
    Province("530000", "云南省", "云南", ("yunnan",), "YN"),
    Province("540000", "西藏自治区", "西藏", ("tibet", "xizang"), "XZ"),
    Province("610000", "陕西省", "陕西", ("shaanxi",), "SN"),
    Province("620000", "甘肃省", "甘肃", ("gansu",), "GS"),
    Province("630000", "青海省", "青海", ("qinghai",), "QH"),
    Province("640000", "宁夏回族自治区", "宁夏", ("ningxia",), "NX"),
    Province("650000", "新疆维吾尔自治区", "新疆", ("xinjiang",), "XJ"),
    Province("710000", "台湾省", "台湾", ("taiwan",), "TW"),
    Province("810000", "香港特别行政区", "香港", ("hong kong", "hongkong"), "HK"),
    Province("820000", "澳门特别行政区", "澳门", ("macau", "macao"), "MO"),
)

# Provincial units whose districts have no prefecture-level city above them.
MUNICIPALITIES = frozenset({"110000", "120000", "310000", "500000"})
OUTSIDE_MAINLAND = frozenset({"710000", "810000", "820000"})

_ADCODE = re.compile(r"^[1-9][0-9]{5}$")
# English suffixes IP databases append ("Guangdong Sheng", "Ningxia Hui Autonomous Region").
_EN_SUFFIX = re.compile(
    r"(\s+(sheng|shi|province|municipality|city|special administrative region|sar|"
    r"(zhuang|hui|uygur|uyghur|uighur)?\s*(autonomous region|zizhiqu)|zhuangzu|huizu))+$"
)
_ZH_SUFFIX = re.compile(r"(省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区)$")

_BY_KEY: dict[str, str] = {}
for _p in PROVINCES:
    for _key in (
        _p.adcode,
        _p.adcode[:2],
        _p.name,
        _p.short,
        _p.iso.lower(),
        f"cn-{_p.iso.lower()}",
        f"cn-{_p.adcode[:2]}",
        *_p.english,
    ):
        _BY_KEY[_key] = _p.adcode
# Pre-2017 ISO 3166-2:CN numeric codes that differ from the adcode prefix.
_BY_KEY.update({"cn-91": "810000", "cn-92": "820000"})
_BY_CODE = {p.adcode: p for p in PROVINCES}


def is_adcode(value: str) -> bool:
    """Six digits, not starting with 0 (GB/T 2260 division codes)."""
    return bool(_ADCODE.match(value))


def province_of_adcode(adcode: str) -> str | None:
    """The provincial unit a six-digit adcode belongs to (first two digits + ``0000``)."""
    code = adcode[:2] + "0000"
    return code if is_adcode(adcode) and code in _BY_CODE else None


def province_adcode(value: str | int | None) -> str | None:
    """The adcode of a province given by code, name or ISO code, or None if unrecognised.

    A six-digit adcode of a city or district resolves to its province.
    """
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text:
        return None
    if text.isdigit() and len(text) == 6:
        return province_of_adcode(text)
    key = text.lower()
    if key in _BY_KEY:
        return _BY_KEY[key]
    stripped = _EN_SUFFIX.sub("", key).strip()
    if stripped in _BY_KEY:
        return _BY_KEY[stripped]
    short = _ZH_SUFFIX.sub("", text)
    return _BY_KEY.get(short)


def province_name(adcode: str) -> str:
    """The Chinese name of a provincial unit's adcode ('' when unknown)."""
    p = _BY_CODE.get(adcode)
    return p.name if p is not None else ""
