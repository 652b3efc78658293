"""Small pure helpers: resident point, chase arguments, durations, text rendering."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cloud.recovery.cli import parse_duration
from cloud.recovery.commands import chase_args, chase_validity
from cloud.recovery.render import age, table, width
from cloud.recovery.worklist import resident_point


def test_resident_point_prefers_the_evidence() -> None:
    assert resident_point({"lat": 30.6, "lon": 104.0}, 31.0, 105.0) == (30.6, 104.0)
    assert resident_point({"lat": "30.6", "lon": 104.0}, 31.0, 105.0) == (31.0, 105.0)
    assert resident_point({"lat": True, "lon": 104.0}, None, None) is None
    assert resident_point({"lat": 95.0, "lon": 104.0}, None, None) is None
    assert resident_point({}, None, 105.0) is None
    assert resident_point(None, 31.0, 105.0) == (31.0, 105.0)


def test_chase_arguments_match_the_agent() -> None:
    # edge/agent/commands.py: "on" defaults to true; duration 0 means the default hour,
    # so "off" must be on=false.
    assert chase_args(600) == {"on": True, "duration_s": 600}
    assert chase_args(None) == {"on": False}
    assert chase_validity(3600) == timedelta(hours=1)
    assert chase_validity(60) == timedelta(minutes=5)
    assert chase_validity(None) == timedelta(hours=24)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("30m", 1800), ("1h30m", 5400), ("90s", 90), ("3600", 3600), (" 2H ", 7200)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1d", "-5", "1.5h", "m30"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_ages() -> None:
    assert age(None) == "-"
    assert age(timedelta(seconds=-3)) == "ahead"
    assert age(timedelta(seconds=45)) == "45s"
    assert age(timedelta(minutes=12, seconds=59)) == "12m"
    assert age(timedelta(hours=3, minutes=5)) == "3h"
    assert age(timedelta(days=2, hours=4)) == "2d4h"
    assert age(timedelta(days=2)) == "2d"


def test_table_aligns_chinese_plates() -> None:
    assert width("沪A12345") == 8
    text = table(("PLATE", "N"), [("沪A12345", "1"), ("ABC", "22")])
    # 沪 takes two terminal columns: the plate is 8 wide, the second column starts at 10.
    assert text.splitlines() == ["PLATE     N", "沪A12345  1", "ABC       22"]
