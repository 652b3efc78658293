"""Framing: bytes → sentence lines, with every drop counted by reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.nmea.framing import BAD_BYTE, GARBAGE, LINE_TOO_LONG, REASONS, TRUNCATED, Framer

GPSD_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nmea" / "gpsd"

# Real sentences (beidou-bd.log, ublox-8.log).
GGA = "$GNGGA,074155.799,3114.8770,N,12135.2463,E,1,05,1.3,156.9,M,8.3,M,,0000,4.9*77"
RMC = "$GNRMC,074155.799,A,3114.8770,N,12135.2463,E,0.30,4.94,250215,,,A*76"


def frame(data: bytes, **kw: int) -> tuple[list[str], Framer]:
    f = Framer(**kw)
    lines = f.feed(data)
    f.close()
    return lines, f


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r", b"\n\r"])
def test_any_line_end_ends_a_sentence(eol: bytes) -> None:
    lines, f = frame(GGA.encode() + eol + RMC.encode() + eol)
    assert lines == [GGA, RMC]
    assert f.counts == {}
    assert f.lines == 2


def test_chunks_split_anywhere_give_the_same_lines() -> None:
    data = (GGA + "\r\n" + RMC + "\r\n").encode()
    f = Framer()
    out = [line for i in range(len(data)) for line in f.feed(data[i : i + 1])]
    assert out == [GGA, RMC]


def test_garbage_before_a_sentence_is_skipped_and_counted_once_per_run() -> None:
    lines, f = frame(b"xx\xff\x01junk" + GGA.encode() + b"\r\nmore junk\r\n" + RMC.encode() + b"\n")
    assert lines == [GGA, RMC]
    assert f.counts == {GARBAGE: 3}  # "xx\xff\x01junk", "more", "junk"


def test_blank_lines_are_not_garbage() -> None:
    lines, f = frame(b"\r\n\r\n  \t\n" + GGA.encode() + b"\r\n\r\n")
    assert lines == [GGA]
    assert f.counts == {}


def test_nul_run_inside_a_sentence_drops_it_as_bad_byte() -> None:
    # gp-320fw-2019-04-07-coldboot.log: an RMC cut off by NULs, then spaces.
    real = b"$GPRMC,000346.03,A,4808" + b"\x00" * 12 + b"                  \r\n"
    lines, f = frame(real + RMC.encode() + b"\r\n")
    assert lines == [RMC]
    assert f.counts == {BAD_BYTE: 1}


def test_a_new_start_inside_a_sentence_truncates_it() -> None:
    # gp-320fw: the receiver glued two sentences together.
    real = (
        b"$GPGSA,A,1,,,,,,,,,,,,,,,*1E"
        b"$GPRMC,235949.00,V,0000.0000,N,00000.0000,E,,,161206,,,N*44\r\n"
    )
    lines, f = frame(real)
    assert lines == ["$GPRMC,235949.00,V,0000.0000,N,00000.0000,E,,,161206,,,N*44"]
    assert f.counts == {TRUNCATED: 1}


def test_unfinished_last_line_is_truncated_at_close() -> None:
    f = Framer()
    assert f.feed((GGA + "\r\n" + RMC[:30]).encode()) == [GGA]
    assert f.counts == {}
    f.close()
    assert f.counts == {TRUNCATED: 1}


def test_line_too_long_is_dropped_and_the_next_one_kept() -> None:
    long_line = "$GPTXT," + "A" * 600 + "*00"
    lines, f = frame((long_line + "\r\n" + GGA + "\r\n").encode())
    assert lines == [GGA]
    assert f.counts == {LINE_TOO_LONG: 1}


def test_line_length_limit_is_configurable_and_inclusive() -> None:
    lines, f = frame((GGA + "\r\n").encode(), max_line_bytes=len(GGA))
    assert lines == [GGA]
    lines, f = frame((GGA + "\r\n").encode(), max_line_bytes=len(GGA) - 1)
    assert lines == []
    assert f.counts == {LINE_TOO_LONG: 1}


def test_sirf_binary_gives_no_line() -> None:
    # bu303-*.log are SiRF binary (0xA0 0xA2 … 0xB0 0xB3), not NMEA.
    data = (GPSD_DIR / "bu303-moving.log").read_bytes()
    body = data[data.index(b"\xa0\xa2") :]
    lines, f = frame(body)
    assert lines == []
    assert set(f.counts) <= {GARBAGE, BAD_BYTE, TRUNCATED}
    assert f.counts[GARBAGE] > 0


def test_a_lone_dollar_in_binary_noise_is_garbage_not_a_sentence() -> None:
    lines, f = frame(b"\x01\x02$\x03\x04$GP\x05\x06\r\n")
    assert lines == []
    assert f.counts == {GARBAGE: 1}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(1, 64), max_size=40))
def test_arbitrary_bytes_never_raise_and_lines_are_clean(data: bytes, cuts: list[int]) -> None:
    f = Framer(max_line_bytes=100)
    lines: list[str] = []
    pos = 0
    for size in [*cuts, len(data)]:
        lines += f.feed(data[pos : pos + size])
        pos += size
    f.close()
    for line in lines:
        assert line[0] in "$!"
        assert len(line) <= 100
        assert all(" " <= c <= "~" for c in line)
    assert set(f.counts) <= set(REASONS)
    whole = Framer(max_line_bytes=100)
    assert whole.feed(data) == lines  # chunking changes nothing
