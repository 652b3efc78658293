"""Ingest stages without services: what each stage keeps, drops and acknowledges."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cloud.ingest.model import Delivery, Terminal, compress_ranges
from cloud.ingest.stages import Pipeline, message_key
from protocols.messages import Fix, FixBatch, SeqRange, encode

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


class Directory:
    def __init__(self, terminals: dict[str, Terminal]) -> None:
        self.terminals = terminals

    def lookup(self, device_ids: Iterable[str]) -> dict[str, Terminal]:
        return {d: self.terminals[d] for d in device_ids if d in self.terminals}


def delivery(dev: str, seqs: range, **over: object) -> Delivery:
    fields: dict[str, object] = {"lat": 31.2, "lon": 121.4, **over}
    fixes = [
        Fix(device_id=dev, boot_id="b1", seq=s, time=NOW - timedelta(seconds=100 - s),
            **fields)  # type: ignore[arg-type]
        for s in seqs
    ]  # fmt: skip
    return Delivery(f"vgr/v1/dev/{dev}/fix", encode(FixBatch(v=1, fixes=fixes)), NOW)


def pipeline() -> Pipeline:
    terms = {"d1": Terminal("d1", "t1", 7, False), "d2": Terminal("d2", "t1", None, True)}
    return Pipeline(Directory(terms), now=lambda: NOW)


def test_a_resent_message_is_recognised_whole_and_still_acknowledged() -> None:
    p = pipeline()
    first = p.run([delivery("d1", range(10))])
    assert len(first.fixes) == 10
    p.deduper.remember(first.message_keys)
    again = p.run([delivery("d1", range(10))])
    assert again.fixes == []
    assert compress_ranges(again.acks["d1"]) == [SeqRange("b1", 0, 9)]
    # A batch that only overlaps is not a resend: the database's unique key decides.
    overlap = p.run([delivery("d1", range(5, 15))])
    assert len(overlap.fixes) == 10


def test_message_key_names_first_last_and_count() -> None:
    d = delivery("d1", range(3, 6))
    fixes = [Fix(device_id="d1", boot_id="b1", seq=s, time=NOW, lat=1.0, lon=1.0)
             for s in (3, 4, 5)]  # fmt: skip
    assert message_key("d1", "fix", fixes) == ("d1", "fix", "b1", 3, "b1", 5, 3)
    assert d.topic.endswith("/fix")


def test_revoked_and_implausible_go_to_quarantine_with_acks() -> None:
    p = pipeline()
    work = p.run([delivery("d2", range(3)), delivery("d1", range(2), lat=0.0, lon=0.0)])
    reasons = sorted(q.reason for q in work.quarantine)
    assert reasons == ["null_island", "null_island", "revoked_device", "revoked_device",
                       "revoked_device"]  # fmt: skip
    assert [s.kind for s in work.signals] == ["unauthorized_terminal"]
    assert set(work.acks) == {"d1", "d2"}
    assert work.fixes == []


def test_suspect_fixes_are_kept_with_flags() -> None:
    work = pipeline().run([delivery("d1", range(1), speed_mps=90.0)])
    assert work.fixes[0].flags == ("speed_too_high",)
    assert work.fixes[0].vehicle_id == 7
