"""The 34 provincial units and the many ways files name them."""

from __future__ import annotations

import pytest

from cloud.refdata.provinces import PROVINCES, province_adcode, province_of_adcode


def test_table_is_complete_and_unique() -> None:
    assert len(PROVINCES) == 34
    assert len({p.adcode for p in PROVINCES}) == 34
    assert len({p.iso for p in PROVINCES}) == 34
    assert all(p.adcode.endswith("0000") for p in PROVINCES)


@pytest.mark.parametrize(
    ("value", "adcode"),
    [
        ("320000", "320000"),
        (320000, "320000"),
        ("320106", "320000"),  # a district's province
        ("32", "320000"),
        ("江苏省", "320000"),
        ("江苏", "320000"),
        ("Jiangsu", "320000"),
        ("Jiangsu Sheng", "320000"),
        ("CN-JS", "320000"),
        ("cn-32", "320000"),
        ("JS", "320000"),
        ("Shanxi", "140000"),
        ("Shaanxi", "610000"),
        ("Inner Mongolia", "150000"),
        ("Nei Mongol Autonomous Region", "150000"),
        ("Guangxi Zhuang Autonomous Region", "450000"),
        ("Xinjiang Uygur Autonomous Region", "650000"),
        ("新疆维吾尔自治区", "650000"),
        ("Tibet", "540000"),
        ("Macao", "820000"),
        ("香港特别行政区", "810000"),
        ("CN-91", "810000"),
        ("Hong Kong SAR", "810000"),
        ("Beijing Shi", "110000"),
        ("Atlantis", None),
        ("990000", None),
        ("", None),
        (None, None),
    ],
)
def test_names_and_codes(value: str | int | None, adcode: str | None) -> None:
    assert province_adcode(value) == adcode


def test_province_of_adcode() -> None:
    assert province_of_adcode("429004") == "420000"
    assert province_of_adcode("012345") is None
    assert province_of_adcode("991234") is None
