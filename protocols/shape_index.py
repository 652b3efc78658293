"""Which of many shapely polygons contain a point: prepared geometry plus an STRtree.

For the cloud's bulk work (boundary files, thousands of shapes). Policy checks,
on the tracker and in the cloud, use the pure :mod:`protocols.policy_eval`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import shapely

from protocols.geometry import Polygonal

_TREE_FROM = 16  # below this many shapes a bounding-box scan beats an STRtree query


class ShapeIndex:
    """Which of a set of named polygonal shapes contain a point (the boundary counts).

    Shapes are prepared once; with many shapes candidates come from an STRtree.
    """

    __slots__ = ("_boxes", "_geoms", "_ids", "_tree")

    def __init__(self, ids: Sequence[str], geoms: Sequence[Polygonal]) -> None:
        if len(ids) != len(geoms):
            raise ValueError("one id per geometry")
        self._ids = tuple(ids)
        self._geoms = tuple(geoms)
        for geom in self._geoms:
            shapely.prepare(geom)
        self._boxes = tuple(tuple(g.bounds) for g in self._geoms)
        self._tree = shapely.STRtree(list(self._geoms)) if len(self._geoms) >= _TREE_FROM else None

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> tuple[str, ...]:
        return self._ids

    def _candidates(self, lon: float, lat: float) -> Iterable[int]:
        if self._tree is None:
            return (
                i
                for i, (x0, y0, x1, y1) in enumerate(self._boxes)
                if x0 <= lon <= x1 and y0 <= lat <= y1
            )
        found: list[int] = self._tree.query(shapely.Point(lon, lat)).tolist()
        return sorted(found)

    def hits(self, lon: float, lat: float) -> tuple[str, ...]:
        """Ids of the shapes containing the point, in index order."""
        return tuple(
            self._ids[i]
            for i in self._candidates(lon, lat)
            if shapely.intersects_xy(self._geoms[i], lon, lat)
        )

    def contains(self, lon: float, lat: float) -> bool:
        """Whether any shape contains the point."""
        return any(
            shapely.intersects_xy(self._geoms[i], lon, lat) for i in self._candidates(lon, lat)
        )
