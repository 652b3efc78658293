"""The self-test's pieces that need no network: table, deadlines, clock, GNSS file, outbox, disk."""

from __future__ import annotations

import asyncio
import functools
import operator
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.config import EdgeConfig, parse_config
from edge.installer import checks
from edge.installer.checks import CheckResult, Observed, with_deadline
from edge.installer.selftest import format_table
from edge.nmea.assembler import GnssFix

DEVICE = "860000000000017"


def config(tmp_path: Path, *, max_bytes: int = 2**20, **sections: str) -> EdgeConfig:
    text = f'kind = "edge"\n[device]\nid = "{DEVICE}"\ntenant = "alpha"\n'
    text += f'[outbox]\npath = "{tmp_path / "state" / "outbox.sqlite3"}"\nmax_bytes = {max_bytes}\n'
    for name, body in sections.items():
        text += f"[{name}]\n{body}\n"
    return parse_config(text, environ={}, source="t")


def sentence(body: str) -> bytes:
    cs = functools.reduce(operator.xor, body.encode(), 0)
    return f"${body}*{cs:02X}\r\n".encode()


def nmea(t: datetime, *, fixed: bool) -> bytes:
    hms, dmy = t.strftime("%H%M%S.00"), t.strftime("%d%m%y")
    if fixed:
        rmc = f"GPRMC,{hms},A,3113.8000,N,12128.2000,E,0.0,0.0,{dmy},,,A"
        gga = f"GPGGA,{hms},3113.8000,N,12128.2000,E,1,09,0.9,12.0,M,8.0,M,,"
    else:
        rmc = f"GPRMC,{hms},V,,,,,,,{dmy},,,N"
        gga = f"GPGGA,{hms},,,,,0,00,99.9,,M,,M,,"
    return sentence(rmc) + sentence(gga)


# ---------------------------------------------------------------- the table


def test_the_table_shows_every_check_and_a_remedy_under_each_failure() -> None:
    results = [
        CheckResult("gnss", True, "3D fix at 31.23000,121.47000"),
        CheckResult("broker", False, "127.0.0.1:8883 unreachable: refused", "check [uplink]"),
        CheckResult("token", False, "token_expired", ""),
    ]
    assert format_table(results).splitlines() == [
        "check   result  detail",
        "gnss    PASS    3D fix at 31.23000,121.47000",
        "broker  FAIL    127.0.0.1:8883 unreachable: refused",
        "                -> check [uplink]",
        "token   FAIL    token_expired",
        "",
        "FAILED: broker, token (2 of 3)",
    ]
    assert format_table(results[:1]).endswith("all 1 checks passed\n")


async def test_a_hanging_or_broken_check_fails_instead_of_stopping_the_selftest() -> None:
    async def hangs() -> CheckResult:
        await asyncio.sleep(60)
        return CheckResult("x", True, "never")

    async def breaks() -> CheckResult:
        raise RuntimeError("boom")

    late = await with_deadline("x", 0.05, hangs, "look at x")
    assert (late.ok, late.detail, late.remedy) == (False, "no answer within 0 s", "look at x")
    broken = await with_deadline("y", 1, breaks, "look at y")
    assert (broken.ok, broken.detail) == (False, "check failed: RuntimeError: boom")


# ---------------------------------------------------------------- clock


async def test_the_clock_is_compared_with_gnss_time_when_there_was_a_fix() -> None:
    now = datetime.now(UTC)
    assert (await checks.clock(Observed())).ok  # no fix: only "after 2024" is checked
    close = Observed(GnssFix(time=now - timedelta(seconds=3), mode=3), now)
    assert (await checks.clock(close)).ok
    far = Observed(GnssFix(time=now - timedelta(minutes=11), mode=3), now)
    result = await checks.clock(far)
    assert not result.ok
    assert "+660.0 s" in result.detail
    assert "clock" in result.remedy


# ---------------------------------------------------------------- GNSS from a file


async def test_gnss_takes_the_first_epoch_with_a_fix(tmp_path: Path) -> None:
    t0 = datetime(2025, 3, 3, 2, 15, 30, tzinfo=UTC)
    capture = tmp_path / "gnss.nmea"
    capture.write_bytes(nmea(t0, fixed=False) + nmea(t0 + timedelta(seconds=1), fixed=True))
    cfg = config(tmp_path, gnss=f'source = "file"\npath = "{capture}"')
    seen = Observed()
    result = await checks.gnss(cfg, seen, 5)
    assert result.ok, result
    assert result.detail.startswith("3D fix at 31.23000,121.47000, 9 satellites")
    assert seen.fix is not None
    assert seen.fix.time == t0 + timedelta(seconds=1)


async def test_gnss_fails_with_a_remedy_without_a_fix_or_a_receiver(tmp_path: Path) -> None:
    t0 = datetime(2025, 3, 3, 2, 15, 30, tzinfo=UTC)
    capture = tmp_path / "nofix.nmea"
    capture.write_bytes(b"".join(nmea(t0 + timedelta(seconds=i), fixed=False) for i in range(3)))
    cfg = config(tmp_path, gnss=f'source = "file"\npath = "{capture}"')
    result = await checks.gnss(cfg, Observed(), 5)
    assert not result.ok
    assert "none with a fix" in result.detail
    assert "open sky" in result.remedy
    absent = config(tmp_path, gnss='source = "serial"\npath = "/dev/ttyNOPE9"')
    result = await checks.gnss(absent, Observed(), 5)
    assert (result.ok, result.detail) == (
        False,
        "serial:/dev/ttyNOPE9: /dev/ttyNOPE9 does not exist",
    )


# ---------------------------------------------------------------- outbox and disk


async def test_the_outbox_directory_must_exist_and_take_sqlite_writes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    missing = await checks.outbox(cfg)
    assert not missing.ok
    assert "mkdir -p" in missing.remedy
    (tmp_path / "state").mkdir()
    ok = await checks.outbox(cfg)
    assert ok.ok, ok
    assert list((tmp_path / "state").iterdir()) == []  # the probe cleaned up
    (tmp_path / "state").chmod(0o500)
    try:
        if os.geteuid() != 0:  # root writes anywhere
            assert not (await checks.outbox(cfg)).ok
    finally:
        (tmp_path / "state").chmod(0o700)


async def test_free_disk_must_hold_twice_the_outbox(tmp_path: Path) -> None:
    small = await checks.disk(config(tmp_path))
    assert small.ok, small
    huge = config(tmp_path, max_bytes=2**62)
    result = await checks.disk(huge)
    assert not result.ok
    assert "max_bytes" in result.remedy
