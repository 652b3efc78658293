"""Bad input at ingest: each kind is counted by reason, quarantined, and harms nothing else."""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.localsvc import PrivateMosquitto
from protocols.messages import CommitAck, decode
from protocols.topics import Channel, device_topic
from tests.integration.ingest_support import device_ids, prepare_db, wait_subscribed, workers

pytestmark = pytest.mark.services


def metrics(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def dropped(m: dict[str, float], stage: str, reason: str) -> float:
    return m.get(f'vgr_ingest_dropped_total{{reason="{reason}",stage="{stage}"}}', 0.0)


def test_each_bad_input_is_counted_quarantined_and_isolated(
    tmp_path: Path, fresh_db: str, mosquitto: PrivateMosquitto
) -> None:
    good, revoked, unknown = device_ids(3)
    prepare_db(fresh_db, [good, revoked], revoked=(revoked,))
    now = datetime.now(UTC).replace(microsecond=0)

    def fix(dev: str, seq: int, **over: object) -> dict[str, object]:
        f = {
            "device_id": dev,
            "boot_id": "b1",
            "seq": seq,
            "time": (now - timedelta(seconds=60 - seq)).isoformat(),
            "lat": 31.2,
            "lon": 121.4,
        }
        f.update(over)
        return f  # fmt: skip

    def batch(*fixes: dict[str, object]) -> bytes:
        return msgspec.json.encode({"v": 1, "fixes": list(fixes)})

    acks: list[CommitAck] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, msg: acks.append(decode(bytes(msg.payload), CommitAck))
    client.connect(mosquitto.host, mosquitto.plain_port)
    client.loop_start()
    client.subscribe(device_topic(good, Channel.ACK), qos=1)
    with workers(tmp_path, fresh_db, mosquitto) as w:
        w.start("w1")
        wait_subscribed(fresh_db, mosquitto, w)
        topic = device_topic(good, Channel.FIX)
        sends = [
            (topic, b'{"v":1,"fixes":[{"device_id":'),  # truncated JSON
            (topic, b"\xff\xfe garbage"),  # not JSON at all
            (topic, batch(fix(good, 0, lat=123.0))),  # out of range: schema
            (topic, batch(fix(good, 1, lat=0.0, lon=0.0))),  # null island: plausibility
            (topic, batch(fix(revoked, 2))),  # claims another device's identity
            (device_topic(revoked, Channel.FIX), batch(fix(revoked, 0))),  # revoked
            (device_topic(unknown, Channel.FIX), batch(fix(unknown, 0))),  # unknown
            (topic, batch(fix(good, 3), fix(good, 4))),  # good ones still go through
            (topic, batch(fix(good, 3))),  # an exact replay
        ]
        for t, payload in sends:
            client.publish(t, payload, qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _settled(fresh_db) != (2, 7):
            time.sleep(0.2)
        time.sleep(0.5)  # acks are published right after the commit
        m = metrics(w.metrics_ports["w1"])
    client.loop_stop()
    client.disconnect()

    assert dropped(m, "decode", "malformed_json") == 2
    assert dropped(m, "decode", "schema_violation") == 1
    assert dropped(m, "decode", "device_mismatch") == 1
    assert dropped(m, "plausibility", "null_island") == 1
    assert dropped(m, "authorize", "revoked_device") == 1
    assert dropped(m, "authorize", "unknown_device") == 1
    assert m.get('vgr_signals_raised_total{kind="unauthorized_terminal"}') == 2
    assert m.get('vgr_fixes_ingested_total{tenant="acme-finance"}') == 2

    with psycopg.connect(fresh_db) as conn:
        stored = conn.execute("SELECT device_id, seq FROM fixes ORDER BY seq").fetchall()
        reasons: dict[str, int] = dict(
            conn.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall()
        )
        signals = conn.execute("SELECT device_id, kind FROM signals ORDER BY device_id").fetchall()
    assert stored == [(good, 3), (good, 4)]
    assert reasons == {
        "malformed_json": 2, "schema_violation": 1, "device_mismatch": 1, "null_island": 1,
        "revoked_device": 1, "unknown_device": 1,
    }  # fmt: skip
    assert sorted(signals) == sorted(
        [(revoked, "unauthorized_terminal"), (unknown, "unauthorized_terminal")]
    )
    # The good device is told that what it sent is safe: 1 (quarantined), 3, 4 (stored) and
    # the replay of 3. (Payloads that could not be decoded have no identity to acknowledge.)
    acked = {s for a in acks for r in a.ranges for s in range(r.first, r.last + 1)}
    assert acked == {1, 3, 4}


def _settled(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM fixes), (SELECT count(*) FROM quarantine)"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
