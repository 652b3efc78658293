"""Golden test: our NMEA stack against GPSD's decoding of its own regression logs.

Every ``*.log`` in ``../shared/data/nmea/gpsd/`` is replayed and compared with
its ``.chk`` (see ``gpsd_compare``). The expected numbers below are the ones
``docs/gpsd-agreement.md`` documents; each disagreement we keep is listed,
with its reason, in ``gpsd_compare.KNOWN_*``. A changed number, a new
disagreement or a vanished one fails the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from edge.nmea.replay import Pipeline, replay
from tests.golden.gpsd_compare import (
    BINARY_LOGS,
    GPSD_DIR,
    KNOWN_EXTRA,
    KNOWN_MISSING,
    KNOWN_MODE,
    POSITION_TOLERANCE_DEG,
    Agreement,
    compare,
    logs,
    render_markdown,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "gpsd-agreement.md"


class Expect(NamedTuple):
    gpsd_fixed: int  # fixed epochs in GPSD's output
    matched: int  # of those, the ones we fix at the same instant and place
    our_records: int
    our_fixed: int


EXPECTED: dict[str, Expect] = {
    "beidou-bd.log": Expect(5, 5, 10, 5),
    "beidou-gb.log": Expect(2, 2, 5, 2),
    "bu303-moving.log": Expect(12, 12, 12, 12),  # via GPSD's NMEA rendering of SiRF binary
    "bu303-nofix.log": Expect(0, 0, 0, 0),
    "bu303-stillfix.log": Expect(11, 11, 11, 11),
    "bu353-glonass.log": Expect(9, 9, 19, 9),
    "garmin25lp.log": Expect(10, 10, 20, 10),
    "gp-320fw-2019-04-07-coldboot.log": Expect(2, 2, 20, 2),
    "hp58534a.log": Expect(0, 0, 0, 0),
    "mtk-3301.log": Expect(4, 4, 11, 4),
    "navika-100-fix.log": Expect(20, 20, 20, 20),
    "nmea-fuzzy-cases.log": Expect(14, 14, 14, 14),
    "quectel-L70.log": Expect(16, 16, 16, 16),
    "quectel-eg25-g.log": Expect(23, 23, 60, 23),
    "quectel.log": Expect(33, 33, 34, 34),
    "skytraq.log": Expect(0, 0, 17, 0),
    "ublox-8.log": Expect(72, 72, 72, 72),
}

_cache: dict[str, Agreement] = {}


def result(name: str) -> Agreement:
    if name not in _cache:
        _cache[name] = compare(GPSD_DIR / name)
    return _cache[name]


def _when(entry: str) -> str:
    return entry.split(": ", 1)[0]


def test_every_log_is_expected() -> None:
    assert logs(), f"no GPSD logs in {GPSD_DIR}"
    assert {p.name for p in logs()} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_agreement_with_gpsd(name: str) -> None:
    r = result(name)
    assert Expect(r.gpsd_fixed, r.matched, r.our_epochs, r.our_fixed) == EXPECTED[name]
    assert r.max_error_deg <= POSITION_TOLERANCE_DEG
    assert {_when(m) for m in r.missing} == set(KNOWN_MISSING.get(name, {}))
    assert {_when(m) for m in r.extra} == set(KNOWN_EXTRA.get(name, {}))
    assert {_when(m) for m in r.mode_differs} == set(KNOWN_MODE.get(name, {}))
    # Units are converted right: GPSD prints speed with 3 decimals, altitude with 4.
    assert r.max_speed_diff <= 0.001
    assert r.max_course_diff <= 0.001
    assert r.max_alt_diff <= 0.01


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - BINARY_LOGS))
def test_we_accept_exactly_the_sentences_gpsd_accepts(name: str) -> None:
    r = result(name)
    assert r.sentence_diff == []
    assert r.our_sentences == r.gpsd_sentences


@pytest.mark.parametrize("name", sorted(BINARY_LOGS))
def test_binary_logs_give_no_sentence_and_no_record(name: str) -> None:
    p = Pipeline()
    assert list(replay([(GPSD_DIR / name).read_bytes()], p)) == []
    assert p.framer.lines == 0
    assert set(p.rejected()) <= {"garbage", "bad_byte", "truncated"}


def test_no_checksum_log_is_ignored_entirely() -> None:
    r = result("hp58534a.log")
    assert r.gpsd_sentences == r.our_sentences == 0
    assert set(r.rejected) == {"no_checksum"}


def test_agreement_document_is_current() -> None:
    text = render_markdown([result(p.name) for p in logs()])
    assert DOC.read_text(encoding="utf-8") == text, "run .venv/bin/python scripts/gpsd_agreement.py"


def test_replay_command_prints_one_json_object_per_epoch(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from edge.nmea.cli import replay_file

    assert replay_file(str(GPSD_DIR / "beidou-bd.log"), jsonl=True, max_line_bytes=512) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == EXPECTED["beidou-bd.log"].our_records
    assert records[0] == {"time": "2015-02-25T07:41:50.799Z", "mode": 1}
    assert set(records[5]) == {
        "time",
        "mode",
        "lat",
        "lon",
        "alt",
        "speed",
        "course",
        "hdop",
        "sats",
    }
    assert records[5]["time"] == "2015-02-25T07:41:55.799Z"
    assert "rejected proprietary: 12" in err


def test_replay_command_reports_an_unreadable_file(capsys: pytest.CaptureFixture[str]) -> None:
    from edge.nmea.cli import replay_file

    assert replay_file(str(GPSD_DIR / "no-such.log"), jsonl=True, max_line_bytes=512) == 2
    assert "cannot read" in capsys.readouterr().err
