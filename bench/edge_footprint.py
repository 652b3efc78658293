"""Edge agent footprint: RSS and CPU at 1 Hz, startup to first publish, NMEA parse rate.

    .venv/bin/python -m bench.edge_footprint [--seconds 60]   (make bench-edge)

Starts a private Mosquitto, a simulated receiver at 1 Hz on a TCP port and
one real agent process, run as on a tracker: the ``vgr-agent.pyz`` zipapp that
``vgr edge bundle`` ships (``run --config``), with a signed token and a signed
policy (Shanghai, Jiangsu and Zhejiang from ``../shared/data/regions`` plus 20
forbidden circles), so every fix is verified against real boundaries. It
samples the agent's /proc/<pid> once a second. Baselines measured in the same
run: an idle Python interpreter (RSS floor), the third-party floor (asyncio,
aiomqtt, msgspec, pynmea2, sqlite3), the same interpreter after importing the
agent's modules, the development ``vgr`` dispatcher's imports, raw
``pynmea2.parse`` on the same sentences, ``cryptography`` verifying the same
JWS and shapely placing the same points.
Targets (from the issue): RSS <= 40 MB, startup to first publish < 3 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pynmea2
from paho.mqtt.enums import CallbackAPIVersion

from bench.edge_checks import region_rates, trust_files, verify_rates
from cloud.localsvc import PrivateMosquitto
from edge.installer.bundle import build_zipapp
from edge.nmea.replay import Pipeline
from tests.integration.edge_support import NmeaFeeder, agent_config

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def idle_rss(code: str) -> float:
    proc = subprocess.Popen([sys.executable, "-c", code + "\nimport time; time.sleep(30)"])
    time.sleep(2.5)
    try:
        return rss_mb(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def parse_rates(seconds: float = 3.0) -> tuple[float, float, int]:
    """Sentences/s through our three layers and through bare pynmea2.parse."""
    import random
    from datetime import UTC, datetime, timedelta

    from firmware_sim.receiver import Environment, Receiver, StartKind, TrueState

    rx = Receiver(random.Random(1))
    t0 = datetime.now(UTC)
    rx.power_on(t0, StartKind.HOT)
    lines: list[bytes] = []
    for i in range(600):
        lines += rx.epoch(
            TrueState(
                time=t0 + timedelta(seconds=i),
                lat=31.2 + i * 1e-4,
                lon=121.4,
                speed_mps=12.0,
                environment=Environment.OPEN,
            )
        )
    blob = b"".join(lines)

    def rate(fn: object) -> float:
        assert callable(fn)
        n, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            fn()
            n += len(lines)
        return n / (time.perf_counter() - began)

    ours = rate(lambda: Pipeline().feed(blob))
    text = [ln.decode().strip() for ln in lines]
    raw = rate(lambda: [pynmea2.parse(s, check=True) for s in text])
    return ours, raw, len(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    print("measuring baselines...", file=sys.stderr)
    floor = idle_rss("pass")
    third_party = idle_rss("import asyncio, aiomqtt, msgspec, pynmea2, sqlite3")
    imported = idle_rss(
        "import edge.installer.entry, edge.agent.cli, edge.agent.core, edge.agent.uplink, "
        "edge.agent.sources, edge.config"
    )
    dispatcher = idle_rss("from cloud.console import build_parser; build_parser()")
    ours, raw, n_lines = parse_rates()
    verify_ms, crypto_ms = verify_rates()
    region = region_rates()
    with tempfile.TemporaryDirectory() as tmp, PrivateMosquitto() as broker:
        feeder = NmeaFeeder(seed=1, epochs=args.seconds + 30, rate=1.0)
        device = "860000000000999"
        cfg = agent_config(Path(tmp), device, feeder.port, broker.plain_port)
        trust_files(cfg, device)
        pyz = Path(tmp) / "vgr-agent.pyz"
        build_zipapp(pyz)
        first: list[float] = []
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        sub.on_message = lambda *_: first.append(time.monotonic()) if not first else None
        sub.connect(broker.host, broker.plain_port)
        sub.subscribe("vgr/v1/dev/+/#", qos=1)
        sub.loop_start()
        feeder.start()
        began = time.monotonic()
        agent = subprocess.Popen(
            [sys.executable, str(pyz), "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        samples: list[tuple[float, float, float]] = []
        try:
            while time.monotonic() - began < args.seconds + 5:
                time.sleep(1)
                samples.append((time.monotonic(), rss_mb(agent.pid), cpu_s(agent.pid)))
                print(f"\r{len(samples):3d}s  rss {samples[-1][1]:.1f} MB", end="",
                      file=sys.stderr, flush=True)  # fmt: skip
        finally:
            print(file=sys.stderr)
            agent.terminate()
            _, log = agent.communicate(timeout=20)
            feeder.close()
            sub.loop_stop()
            sub.disconnect()
    if b"starting" not in log or b"unauthorized" in log or b"refused" in log:
        print(log.decode(errors="replace")[-2000:], file=sys.stderr)
        raise SystemExit("the agent did not start authorized with its policy")
    steady = [s for s in samples if s[0] - began >= 10]
    rss = max(s[1] for s in steady)
    cpu_pct = (steady[-1][2] - steady[0][2]) / (steady[-1][0] - steady[0][0]) * 100
    startup = (first[0] - began) if first else float("nan")
    rows = [
        "| figure | value | baseline (same run) | ratio |",
        "|---|---|---|---|",
        f"| agent RSS, steady state at 1 Hz | {rss:.1f} MB | target 40 MB; idle python "
        f"{floor:.1f} MB; python + asyncio, aiomqtt, msgspec, pynmea2, sqlite3 "
        f"{third_party:.1f} MB; python + agent imports {imported:.1f} MB | "
        f"{rss / 40:.2f} of target; {rss / imported:.2f}x imports |",
        f"| imports of the development `vgr` dispatcher (not used on a tracker) | "
        f"{dispatcher:.1f} MB | python + agent imports {imported:.1f} MB | "
        f"{dispatcher / imported:.2f} |",
        f"| agent CPU at 1 Hz | {cpu_pct:.2f} % of one core | - | - |",
        f"| start to first publish | {startup:.2f} s | target 3 s | {startup / 3:.2f} |",
        f"| NMEA sentences/s (framing + parse + assembly) | {ours:,.0f} | bare pynmea2.parse "
        f"{raw:,.0f} | {ours / raw:.2f} |",
        f"| JWS verification (pure-Python Ed25519, a whole terminal token) | {verify_ms:.1f} ms "
        f"| cryptography (OpenSSL), the signature alone {crypto_ms:.3f} ms "
        f"| {verify_ms / crypto_ms:.0f}x |",
        f"| region check per fix, {region.name} ({region.vertices:,} vertices, 5 km margin) | "
        f"{region.pure_us:.0f} µs | shapely prepared + buffered {region.shapely_us:.0f} µs "
        f"| {region.pure_us / region.shapely_us:.1f}x |",
        f"| policy compile, {region.name} | {region.compile_ms:.0f} ms | shapely repair + "
        f"buffer {region.shapely_compile_ms:.0f} ms | "
        f"{region.compile_ms / region.shapely_compile_ms:.2f} |",
    ]
    summary = (
        f"edge_rss_mb={rss:.1f} edge_cpu_pct={cpu_pct:.2f} startup_s={startup:.2f} "
        f"nmea_sentences_per_s={ours:.0f} pynmea2_per_s={raw:.0f} sentences={n_lines} "
        f"imports_mb={imported:.1f} third_party_mb={third_party:.1f} "
        f"verify_ms={verify_ms:.2f} region_us={region.pure_us:.1f}"
    )
    print("\n".join(rows))
    machine = f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, " + (
        f"Python {platform.python_version()}, load average {load_before:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after (other work slows the timed rows, not the RSS)"
    )
    doc = Path(__file__).resolve().parents[1] / "docs" / "bench-edge.md"
    doc.write_text(
        "# Edge agent footprint\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine} by "
        f"`make bench-edge` (`python -m bench.edge_footprint --seconds {args.seconds}`): "
        "one agent run from its zipapp as on a tracker, authorized, enforcing a signed "
        "policy (Shanghai, Jiangsu and Zhejiang as allowed areas, 20 forbidden circles), "
        "a simulated receiver at 1 Hz over TCP, a private Mosquitto, no ingest (the outbox "
        "grows; the agent resends after its ack timeout).\n\n"
        + "\n".join(rows)
        + f"\n\n`{summary}`\n"
    )
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
