"""The edge agent as a tracker sees it: offline region checks, trust, hardware I/O, commands."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from cloud.localsvc import PrivateMosquitto
from edge.agent.core import Agent
from edge.config import parse_config
from edge.outbox import Outbox
from protocols import hwio
from protocols.messages import CommandAck, Event, EventKind, FixBatch, decode, encode
from protocols.policy import Area, Circle, Policy
from protocols.tokens import (
    CommandClaims,
    TerminalClaims,
    generate_private_key,
    issue_terminal_token,
    new_nonce,
    policy_hash,
    public_key_to_pem,
    sign_command,
    sign_policy,
)
from protocols.topics import Channel, device_topic
from tests.integration.edge_support import NmeaFeeder, nmea_epoch, wait_until

DEVICE = "860000000000017"
CENTRE = (121.40, 31.20)  # lon, lat
RADIUS_M = 2000.0
KEY = generate_private_key()
METRES_PER_DEG_LAT = 111_320.0


def trust_files(d: Path, *, token: bool = True) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    policy = Policy(
        policy_id="p1", version=1, tenant="acme", device_id=DEVICE, issued_at=now,
        allowed=[Area(id="home", shape=Circle(lon=CENTRE[0], lat=CENTRE[1], radius_m=RADIUS_M))],
    )  # fmt: skip
    jws = sign_policy(KEY, policy)
    (d / "platform.pub").write_bytes(public_key_to_pem(KEY.public_key()))
    (d / "policy.jwt").write_text(jws)
    if token:
        claims = TerminalClaims(
            device_id=DEVICE, tenant="acme", vin="LSVAM4187C2184847", policy_id="p1",
            policy_hash=policy_hash(jws), token_id="t1", issued_at=now,
            expires_at=now + timedelta(days=30),
        )  # fmt: skip
        (d / "token.jwt").write_text(issue_terminal_token(KEY, claims))


def config(d: Path, *, gnss: Path, io: Path | None = None, broker_port: int = 1) -> str:
    io_part = f'[io]\nsource = "file"\npath = "{io}"\n' if io else ""
    return f"""kind = "edge"
[device]
id = "{DEVICE}"
tenant = "acme"
[gnss]
source = "file"
path = "{gnss}"
{io_part}[reporting]
moving_interval_s = 1
parked_interval_s = 600
chase_interval_s = 1
[outbox]
path = "{d}/outbox.sqlite3"
[uplink]
host = "127.0.0.1"
port = {broker_port}
tls = false
backoff_min_s = 0.2
backoff_max_s = 1
[trust]
platform_keys = ["{d}/platform.pub"]
token_file = "{d}/token.jwt"
policy_file = "{d}/policy.jwt"
"""


def track(offsets_m: list[float], *, start: datetime | None = None) -> str:
    """A drive due north, one epoch a second, at these distances (m) from the centre."""
    t0 = start or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return "".join(
        nmea_epoch(t0 + timedelta(seconds=i), CENTRE[1] + m / METRES_PER_DEG_LAT, CENTRE[0], 10.0)
        for i, m in enumerate(offsets_m)
    )


def run_offline(tmp: Path, nmea: str, io_lines: list[bytes] | None = None) -> Agent:
    """Run the agent with no broker at all (a tracker out of coverage) over a capture."""
    gnss = tmp / "gnss.nmea"
    gnss.write_text(nmea)
    io = None
    if io_lines is not None:
        io = tmp / "io.jsonl"
        io.write_bytes(b"".join(io_lines))
    cfg = parse_config(config(tmp, gnss=gnss, io=io), environ={}, source="test")
    from edge.agent.trust import load_keyring

    agent = Agent(cfg, keyring=load_keyring(cfg.trust.platform_keys))

    async def go() -> None:
        await agent.read_io()
        await agent.read_gnss()

    asyncio.run(go())
    agent.outbox.close()
    return agent


def outbox_events(tmp: Path) -> list[tuple[EventKind, dict[str, object]]]:
    with Outbox.open(tmp / "outbox.sqlite3", max_bytes=10**8) as box:
        records = box.take_batch("event", 1000, resend_after_s=0)
    events = [r.message for r in records if isinstance(r.message, Event)]
    return [(e.kind, dict(e.detail)) for e in events]


def outbox_fix_count(tmp: Path) -> int:
    with Outbox.open(tmp / "outbox.sqlite3", max_bytes=10**8) as box:
        return box.depth("fix")


# ---------------------------------------------------------------- region checks, offline


def test_region_exit_raised_offline_within_two_fixes_past_the_margin(tmp_path: Path) -> None:
    trust_files(tmp_path)
    # Drive north at 50 m/s from the centre, out of the 2 km circle and on past the 5 km margin.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    offsets = [50.0 * i for i in range(160)]
    agent = run_offline(tmp_path, track(offsets, start=start))
    assert agent.trust.enforcing
    exits = [(k, d) for k, d in outbox_events(tmp_path) if k is EventKind.REGION_EXIT]
    assert len(exits) == 1, "the exit must be raised exactly once"
    first_beyond = next(i for i, m in enumerate(offsets) if m > RADIUS_M + 5000.0)
    with Outbox.open(tmp_path / "outbox.sqlite3", max_bytes=10**8) as box:
        events = box.take_batch("event", 1000, resend_after_s=0)
    exit_time = next(
        r.time
        for r in events
        if isinstance(r.message, Event) and r.message.kind is EventKind.REGION_EXIT
    )
    fixes_late = int((exit_time - (start + timedelta(seconds=first_beyond))).total_seconds())
    assert 0 <= fixes_late <= 1, f"raised {fixes_late + 1} fixes after crossing the margin"
    # While the violation lasts the agent reports in chase mode.
    assert agent.region_state.violation_active
    assert agent.report_state.chasing(datetime.now(UTC))


def test_border_jitter_does_not_raise(tmp_path: Path) -> None:
    trust_files(tmp_path)
    jitter = [RADIUS_M + (-40.0 if i % 2 else 40.0) for i in range(60)]  # 80 m steps
    run_offline(tmp_path, track(jitter))
    kinds = [k for k, _ in outbox_events(tmp_path)]
    assert EventKind.REGION_EXIT not in kinds


def test_without_token_records_everything_but_enforces_nothing(tmp_path: Path) -> None:
    trust_files(tmp_path, token=False)
    far = [RADIUS_M + 10_000.0 + 20 * i for i in range(20)]
    agent = run_offline(tmp_path, track(far))
    assert not agent.trust.authorized
    assert agent.status().state.value == "unauthorized"
    kinds = [k for k, _ in outbox_events(tmp_path)]
    assert EventKind.REGION_EXIT not in kinds
    assert outbox_fix_count(tmp_path) == 20  # nothing thrown away: every gated fix reported


def test_forged_policy_is_never_enforced(tmp_path: Path) -> None:
    trust_files(tmp_path)
    # Someone swaps in a wider policy signed with their own key.
    forged = Policy(
        policy_id="p1", version=2, tenant="acme", device_id=DEVICE,
        issued_at=datetime.now(UTC).replace(microsecond=0),
        allowed=[Area(id="all", shape=Circle(lon=CENTRE[0], lat=CENTRE[1], radius_m=2e6))],
    )  # fmt: skip
    (tmp_path / "policy.jwt").write_text(sign_policy(generate_private_key(), forged))
    agent = run_offline(tmp_path, track([RADIUS_M + 10_000.0 + 20 * i for i in range(5)]))
    assert not agent.trust.enforcing
    assert agent.trust.reason == "token_policy_mismatch"


# ---------------------------------------------------------------- hardware I/O channel


def test_hardware_signals_become_events_and_bad_lines_are_counted(tmp_path: Path) -> None:
    trust_files(tmp_path)
    lines = [
        hwio.encode_signal(hwio.Ignition(on=True)),
        hwio.encode_signal(hwio.Power(state="lost", ext_v=0.3)),
        hwio.encode_signal(hwio.Tamper(source="light")),
        hwio.encode_signal(hwio.Battery(batt_v=3.3, low=True)),
        hwio.encode_signal(hwio.Battery(batt_v=3.2, low=True)),  # still low: no second event
        hwio.encode_signal(hwio.Antenna(state="cut")),
        b'{"signal":"power","state":"melted"}\n',
        b"not json\n",
        hwio.encode_signal(hwio.Power(state="restored", ext_v=12.6)),
    ]
    agent = run_offline(tmp_path, track([0.0] * 3), lines)
    kinds = [k for k, _ in outbox_events(tmp_path)]
    assert kinds == [
        EventKind.POWER_LOST, EventKind.TAMPER, EventKind.LOW_BATTERY,
        EventKind.ANTENNA_CUT, EventKind.POWER_RESTORED,
    ]  # fmt: skip
    assert agent.counts["io_schema_violation"] == 1
    assert agent.counts["io_malformed_json"] == 1
    assert agent.ignition is True


def test_records_held_in_a_blind_area_go_out_flagged_backlog_and_sessions_name_the_modem_ip(
    tmp_path: Path,
) -> None:
    """Stored while the modem had no link: the backlog batch; afterwards: live; SESSION ip."""
    from edge.agent.uplink import Uplink, UplinkSettings
    from protocols.messages import EventBatch

    trust_files(tmp_path)
    cfg = parse_config(config(tmp_path, gnss=tmp_path / "none"), environ={}, source="test")
    from edge.agent.trust import load_keyring

    agent = Agent(cfg, keyring=load_keyring(cfg.trust.platform_keys))
    agent.uplink = Uplink(
        UplinkSettings(host="127.0.0.1", port=1, device_id=DEVICE, username=DEVICE,
                       password=None, ca_file=None, tls=False, keepalive_s=30,
                       backoff_min_s=1, backoff_max_s=1),
        handler=agent.on_message, status=agent.status, on_connect=agent.on_uplink_connected,
    )  # fmt: skip
    agent.on_signal(hwio.Link(up=True, ip="not an address"))
    assert agent.counts["io_bad_ip"] == 1
    assert agent.modem_ip is None
    agent.emit(EventKind.TAMPER, {"source": "case"})  # live
    agent.on_signal(hwio.Link(up=False))
    agent.emit(EventKind.POWER_LOST, {"ext_v": 0.1})  # in the blind area
    agent.emit(EventKind.POWER_RESTORED, {"ext_v": 12.5})
    agent.on_signal(hwio.Link(up=True, ip="112.64.3.9"))
    agent.on_uplink_connected()  # what the uplink calls on each new broker session
    agent.emit(EventKind.ANTENNA_CUT)  # live again

    batch = agent.outbox.take_batch("event", 100, resend_after_s=0)
    sent = [decode(payload, EventBatch) for _, payload in agent._batch_payloads("event", batch)]
    agent.outbox.close()
    assert [(b.backlog, [e.kind for e in b.events]) for b in sent] == [
        (True, [EventKind.POWER_LOST, EventKind.POWER_RESTORED]),
        (False, [EventKind.TAMPER, EventKind.SESSION, EventKind.ANTENNA_CUT]),
    ]
    assert dict(sent[1].events[1].detail) == {"ip": "112.64.3.9"}


# ---------------------------------------------------------------- signed commands over MQTT


@pytest.mark.services
def test_signed_commands_applied_and_bad_ones_refused(
    tmp_path: Path, mosquitto: PrivateMosquitto
) -> None:
    trust_files(tmp_path)
    # A parked car streaming 20 GNSS seconds per wall second; parked interval 10 min.
    feeder = NmeaFeeder(seed=3, epochs=600, speed_mps=0.0, lat=CENTRE[1], lon=CENTRE[0])
    cfg = tmp_path / "edge.toml"
    text = config(tmp_path, gnss=tmp_path / "unused", broker_port=mosquitto.plain_port)
    text = text.replace('source = "file"', 'source = "tcp"').replace(
        f'path = "{tmp_path / "unused"}"', f'host = "127.0.0.1"\nport = {feeder.port}'
    )
    cfg.write_text(text)
    acks: list[CommandAck] = []
    fix_seqs: list[tuple[float, int]] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/cmd/ack"):
            acks.append(decode(bytes(msg.payload), CommandAck))
        elif msg.topic.endswith("/fix"):
            batch = decode(bytes(msg.payload), FixBatch)
            fix_seqs.extend((time.monotonic(), f.seq) for f in batch.fixes)

    client.on_message = on_message
    client.connect(mosquitto.host, mosquitto.plain_port)
    client.loop_start()
    client.subscribe(device_topic(DEVICE, Channel.CMD_ACK), qos=1)
    client.subscribe(device_topic(DEVICE, Channel.FIX), qos=1)
    now = datetime.now(UTC).replace(microsecond=0)

    def command(
        *, dev: str = DEVICE, age: int = 0, key: Ed25519PrivateKey = KEY, duration_s: int = 3600
    ) -> bytes:
        issued = now - timedelta(seconds=age)
        claims = CommandClaims(
            cmd="chase_mode", device_id=dev, issued_at=issued,
            expires_at=issued + timedelta(minutes=5), nonce=new_nonce(),
            args={"duration_s": duration_s},
        )  # fmt: skip
        return encode(sign_command(key, claims))

    agent = subprocess.Popen(
        [sys.executable, "-m", "cloud.console", "edge", "run", "--config", str(cfg)],
        stdout=(tmp_path / "agent.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    topic = device_topic(DEVICE, Channel.CMD)
    try:
        feeder.start()
        time.sleep(8)  # parked: about one fix so far
        commanded_at = time.monotonic()
        chase = command()
        client.publish(topic, chase, qos=1)
        client.publish(topic, chase, qos=1)  # the very same command again: a replay
        client.publish(topic, b'{"v":1,"jws":"eyJhbGciOiJub25lIn0.e30."}', qos=1)  # unsigned
        client.publish(topic, command(age=600), qos=1)  # expired 5 minutes ago
        client.publish(topic, command(dev="860000000000025"), qos=1)  # another device's
        client.publish(topic, command(key=generate_private_key()), qos=1)  # forged
        wait_until(feeder.done.is_set, 60, "the receiver to finish")
        time.sleep(2)
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        feeder.close()
        client.loop_stop()
        client.disconnect()
    log = (tmp_path / "agent.log").read_text()
    results = sorted((a.ok, a.reason or "") for a in acks)
    # The unsigned one carries no readable nonce to answer to: refused, counted, logged.
    assert results == sorted([
        (True, ""), (False, "replayed"), (False, "expired"),
        (False, "wrong_device"), (False, "unknown_key"),
    ]), log[-2000:]  # fmt: skip
    assert "command_refused_wrong_algorithm" in log
    assert log.count("event chase_mode_on") == 1
    # Nothing is acknowledged here (no ingest), so every recorded fix is still in the outbox.
    gnss_at_command = max(e.time for e in feeder.log if e.wall <= commanded_at)
    with Outbox.open(tmp_path / "outbox.sqlite3", max_bytes=10**8) as box:
        times = [r.time for r in box.take_batch("fix", 10_000, resend_after_s=0)]
    before = [t for t in times if t <= gnss_at_command]
    after = [t for t in times if t > gnss_at_command + timedelta(seconds=5)]
    # Parked: one fix per 10 minutes before the command; one per second after it.
    assert len(before) <= 2, before
    span = (max(after) - min(after)).total_seconds()
    assert len(after) >= 0.9 * span > 300, (len(after), span)
    assert fix_seqs, "fixes were published"
