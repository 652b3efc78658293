"""Point-in-polygon and distance-to-border for one polygon's rings, on a uniform grid; pure Python.

:class:`RingIndex` holds one polygon (an exterior ring and its holes, lon/lat,
edges straight in lon/lat as GeoJSON draws them) and answers, in a few
microseconds whatever the vertex count:

``contains(x, y)``
    Inside the exterior ring by the non-zero winding rule (a ray from the point
    crosses it more often upwards than downwards, or the reverse) and inside no
    hole (the holes, each turned counter-clockwise, wind zero times around it).
    This is defined for any rings, valid or not: a self-intersecting ring is
    read as the union of its lobes and a doubly wound part counts once, which
    is what GEOS ``MakeValid`` (``structure``) makes of them; even-odd would
    drop doubly wound parts (it did, near the Ningxia/Gansu defect).
``distance_m(x, y, within)``
    Geodesic metres to the nearest edge, or ``inf`` when none is within
    ``within`` metres.

How: a grid over the polygon's bounding box, about one cell per edge; each
cell lists the edges that touch it and knows the winding numbers at its
lower-left corner (computed once, one sweep per grid row). A point's are its
cell corner's, moved by one per edge crossed on the way from the corner to the
point: up the cell's left side, then right along the point's row. Only that
cell's edges can be crossed, so a query never scans the polygon. The
crossing tests use the same half-open rules as the classic ray-casting test
(an edge counts when one end is strictly above the line and the other not),
so the corner windings and the walk agree exactly; the grid starts a fraction
of a cell before the bounding box, and moves again if a corner would sit on
an edge, where the walk would be ambiguous. A cell no edge touches has one
answer everywhere (its corner's), so each cell is classified once when the
grid is built, as inside, outside or boundary (one byte per cell): most points
answer from that byte, and only a boundary cell's point walks its edges.

Distances: candidate edges come from the cells within ``within`` metres
(:func:`protocols.geodesy.degree_box`); each is measured in a plane tangent at
the point (metres per degree from the ellipsoid's radii there), and the few
nearest are measured again, exactly, with Vincenty from the point to the
nearest point of the edge.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections.abc import Iterable, Sequence

from protocols.geodesy import LocalScale, degree_box
from protocols.geodesy import distance_m as geodesic_m

_MAX_SIDE = 1024  # grid cells per side, at most
# Fractions of a cell by which the grid starts before the bounding box (different in x and
# y, so corners stay off diagonals); the next pair is tried if a corner lands on an edge.
_NUDGES = ((0.0137, 0.0291), (0.0419, 0.0173), (0.0067, 0.0383), (0.0311, 0.0059), (0.0229, 0.047))
_HAIR = 1e-9  # degrees of room past the bounding box's far side
_ON_EDGE = 1e-9  # degrees: a corner closer than this to an edge would make the walk ambiguous
_OUTSIDE, _INSIDE, _BOUNDARY = 0, 1, 2  # a cell's class: what every point in it is, or "walk"


def _signed_area(ring: Sequence[tuple[float, float]]) -> float:
    """Twice the shoelace area: positive for a counter-clockwise ring."""
    return sum(ax * by - bx * ay for (ax, ay), (bx, by) in itertools.pairwise(ring))


def _grid_shape(n_edges: int, width: float, height: float) -> tuple[int, int]:
    """Columns and rows for about one cell per edge, cells roughly square on the ground."""
    cells = max(1, n_edges)
    if width <= 0.0 or height <= 0.0:
        side = min(_MAX_SIDE, cells)
        return (side, 1) if width > 0.0 else (1, side) if height > 0.0 else (1, 1)
    # Clamped before rounding: a subnormal height makes the ratio overflow to infinity.
    nx = max(1, round(min(float(_MAX_SIDE), math.sqrt(cells * width / height))))
    ny = max(1, min(_MAX_SIDE, math.ceil(cells / nx)))
    return nx, ny


class RingIndex:
    """One polygon's rings (closed, lon/lat) with its grid; see the module doc."""

    __slots__ = (
        "_class",
        "_edges",
        "_gx",
        "_gy",
        "_hole",
        "_inv_h",
        "_inv_w",
        "_nx",
        "_ny",
        "_start",
        "_starts",
        "_wind_ext",
        "_wind_hole",
        "_xs",
        "_ys",
        "bounds",
        "n_edges",
    )

    def __init__(self, rings: Sequence[Sequence[tuple[float, float]]]) -> None:
        xs, ys, starts, hole = array("d"), array("d"), array("i"), bytearray()
        for n, given in enumerate(rings):
            if len(given) < 2:
                continue
            # Holes turned counter-clockwise, so overlapping holes add up instead of cancelling.
            ring = given[::-1] if n > 0 and _signed_area(given) < 0 else given
            base = len(xs)
            for x, y in ring:
                xs.append(x)
                ys.append(y)
            starts.extend(range(base, base + len(ring) - 1))  # edge i joins vertex i and i+1
            hole.extend([n > 0] * len(ring))
        if not xs:
            raise ValueError("a polygon needs at least one ring")
        self._xs, self._ys, self._starts, self._hole = xs, ys, starts, hole
        self.n_edges = len(starts)
        self.bounds = (min(xs), min(ys), max(xs), max(ys))
        for nudge in _NUDGES:
            self._layout(nudge)
            self._start, self._edges = self._bucket(starts)
            if not self._corner_on_edge():
                break
        self._wind_ext, self._wind_hole = self._corner_winding(starts)
        self._class = self._classify()

    # ------------------------------------------------------------ building

    def _layout(self, nudge: tuple[float, float]) -> None:
        x0, y0, x1, y1 = self.bounds
        mid = math.cos(math.radians((y0 + y1) / 2.0))
        nx, ny = _grid_shape(self.n_edges, (x1 - x0) * mid, y1 - y0)
        # Room before the box, a hair after: every inner grid line moves with the nudge.
        pad_x = (x1 - x0) / nx * nudge[0] + _HAIR
        pad_y = (y1 - y0) / ny * nudge[1] + _HAIR
        w = (x1 - x0 + pad_x + _HAIR) / nx
        h = (y1 - y0 + pad_y + _HAIR) / ny
        self._nx, self._ny = nx, ny
        self._inv_w, self._inv_h = 1.0 / w, 1.0 / h
        self._gx = [x0 - pad_x + i * w for i in range(nx)] + [x1 + _HAIR]
        self._gy = [y0 - pad_y + j * h for j in range(ny)] + [y1 + _HAIR]

    def _corner_on_edge(self) -> bool:
        """Whether some cell's corner lies (within _ON_EDGE) on one of the cell's edges."""
        xs, ys = self._xs, self._ys
        for c in range(self._nx * self._ny):
            cx, cy = self._gx[c % self._nx], self._gy[c // self._nx]
            for k in range(self._start[c], self._start[c + 1]):
                e = self._edges[k]
                ax, ay, bx, by = xs[e], ys[e], xs[e + 1], ys[e + 1]
                if not (min(ax, bx) - _ON_EDGE <= cx <= max(ax, bx) + _ON_EDGE):
                    continue
                if not (min(ay, by) - _ON_EDGE <= cy <= max(ay, by) + _ON_EDGE):
                    continue
                length = math.hypot(bx - ax, by - ay)
                cross = abs((bx - ax) * (cy - ay) - (by - ay) * (cx - ax))
                if cross <= _ON_EDGE * max(length, _ON_EDGE):
                    return True
        return False

    def _col(self, x: float) -> int:
        i = min(self._nx - 1, max(0, int((x - self._gx[0]) * self._inv_w)))
        if i > 0 and x < self._gx[i]:
            i -= 1
        elif i < self._nx - 1 and x >= self._gx[i + 1]:
            i += 1
        return i

    def _row(self, y: float) -> int:
        j = min(self._ny - 1, max(0, int((y - self._gy[0]) * self._inv_h)))
        if j > 0 and y < self._gy[j]:
            j -= 1
        elif j < self._ny - 1 and y >= self._gy[j + 1]:
            j += 1
        return j

    def _cells_of(self, e: int) -> Iterable[int]:
        """Cells an edge touches (closed cells, grown by a hair: never one too few)."""
        ax, ay, bx, by = self._xs[e], self._ys[e], self._xs[e + 1], self._ys[e + 1]
        gx, gy, nx = self._gx, self._gy, self._nx
        ex, ey = (gx[1] - gx[0]) * 1e-9, (gy[1] - gy[0]) * 1e-9
        lo_x, hi_x, lo_y, hi_y = min(ax, bx), max(ax, bx), min(ay, by), max(ay, by)
        i0, i1 = self._col(lo_x - ex), self._col(hi_x + ex)
        j0, j1 = self._row(lo_y - ey), self._row(hi_y + ey)
        if i0 == i1 or j0 == j1:  # a strip of cells: the edge crosses every one
            return [j * nx + i for j in range(j0, j1 + 1) for i in range(i0, i1 + 1)]
        dx, dy = bx - ax, by - ay
        found = []
        for j in range(j0, j1 + 1):
            ylo, yhi = gy[j] - ey - ay, gy[j + 1] + ey - ay
            for i in range(i0, i1 + 1):
                xlo, xhi = gx[i] - ex - ax, gx[i + 1] + ex - ax
                # The edge's line must pass between the cell's corners.
                s1, s2 = dx * ylo - dy * xlo, dx * ylo - dy * xhi
                s3, s4 = dx * yhi - dy * xlo, dx * yhi - dy * xhi
                if min(s1, s2, s3, s4) <= 0.0 <= max(s1, s2, s3, s4):
                    found.append(j * nx + i)
        return found

    def _bucket(self, starts: array[int]) -> tuple[array[int], array[int]]:
        cells: dict[int, list[int]] = {}
        for e in starts:
            for c in self._cells_of(e):
                cells.setdefault(c, []).append(e)
        offsets, flat = array("i", [0]), array("i")
        for c in range(self._nx * self._ny):
            flat.extend(cells.get(c, ()))
            offsets.append(len(flat))
        return offsets, flat

    def _corner_winding(self, starts: array[int]) -> tuple[array[int], array[int]]:
        """Winding numbers at every cell's lower-left corner, by one ray sweep per grid row.

        A ray to the right counts +1 for each edge crossing it upwards, -1 downwards;
        exterior and holes are counted apart.
        """
        xs, ys, gy, ny, nx = self._xs, self._ys, self._gy, self._ny, self._nx
        crossings: list[list[tuple[float, int, bool]]] = [[] for _ in range(ny)]
        for e in starts:
            ax, ay, bx, by = xs[e], ys[e], xs[e + 1], ys[e + 1]
            if ay == by:
                continue
            up = 1 if by > ay else -1
            j = self._row(min(ay, by))
            while j < ny and gy[j] < max(ay, by):
                y = gy[j]
                if (ay > y) != (by > y):
                    xint = (bx - ax) * (y - ay) / (by - ay) + ax
                    crossings[j].append((xint, up, bool(self._hole[e])))
                j += 1
        ext, holes = array("i", bytes(4 * nx * ny)), array("i", bytes(4 * nx * ny))
        for j, row in enumerate(crossings):
            row.sort(reverse=True)  # right to left: sums of the crossings right of a corner
            k, w_ext, w_hole = 0, 0, 0
            for i in range(nx - 1, -1, -1):
                while k < len(row) and row[k][0] > self._gx[i]:
                    if row[k][2]:
                        w_hole += row[k][1]
                    else:
                        w_ext += row[k][1]
                    k += 1
                ext[j * nx + i], holes[j * nx + i] = w_ext, w_hole
        return ext, holes

    def _classify(self) -> bytearray:
        """Each cell's class: a cell without edges is what its lower-left corner is."""
        start, ext, hole = self._start, self._wind_ext, self._wind_hole
        return bytearray(
            _BOUNDARY
            if start[c] != start[c + 1]
            else _INSIDE
            if ext[c] != 0 and hole[c] == 0
            else _OUTSIDE
            for c in range(self._nx * self._ny)
        )

    def contains(self, x: float, y: float) -> bool:
        """Inside the exterior and in no hole (module doc); a point on an edge may go either way."""
        x0, y0, x1, y1 = self.bounds
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return False
        # _col(x) and _row(y), inlined without min/max calls: this is the per-fix path
        # (x >= x0 > gx[0], so the products are not negative).
        gx, gy, nx, ny = self._gx, self._gy, self._nx, self._ny
        i = int((x - gx[0]) * self._inv_w)
        i = i if i < nx else nx - 1
        if i > 0 and x < gx[i]:
            i -= 1
        elif i < nx - 1 and x >= gx[i + 1]:
            i += 1
        j = int((y - gy[0]) * self._inv_h)
        j = j if j < ny else ny - 1
        if j > 0 and y < gy[j]:
            j -= 1
        elif j < ny - 1 and y >= gy[j + 1]:
            j += 1
        c = j * nx + i
        kind = self._class[c]
        if kind != _BOUNDARY:
            return kind == _INSIDE
        w_ext, w_hole = self._wind_ext[c], self._wind_hole[c]
        cx, cy = gx[i], gy[j]
        xs, ys, edges, hole = self._xs, self._ys, self._edges, self._hole
        for k in range(self._start[c], self._start[c + 1]):
            e = edges[k]
            ax, ay, bx, by = xs[e], ys[e], xs[e + 1], ys[e + 1]
            step = 0
            if (ax > cx) != (bx > cx) and cy < (by - ay) * (cx - ax) / (bx - ax) + ay <= y:
                step += 1 if bx > ax else -1  # crossed on the way up the cell's left side
            if (ay > y) != (by > y) and cx < (bx - ax) * (y - ay) / (by - ay) + ax <= x:
                step -= 1 if by > ay else -1  # crossed on the way right along the row
            if hole[e]:
                w_hole += step
            else:
                w_ext += step
        return w_ext != 0 and w_hole == 0

    def _near(self, box: tuple[float, float, float, float]) -> Iterable[int]:
        x0, y0, x1, y1 = self.bounds
        if box[2] < x0 or box[0] > x1 or box[3] < y0 or box[1] > y1:
            return ()
        i0, i1 = self._col(box[0]), self._col(box[2])
        j0, j1 = self._row(box[1]), self._row(box[3])
        found: set[int] = set()
        for j in range(j0, j1 + 1):
            row = j * self._nx
            found.update(self._edges[self._start[row + i0] : self._start[row + i1 + 1]])
        return found

    def distance_m(self, x: float, y: float, within: float | None = None) -> float:
        """Metres from (x, y) to the nearest edge; ``inf`` if none is within ``within``."""
        edges = self._starts if within is None else self._near(degree_box(x, y, within))
        scale = LocalScale.at(y)
        kx, ky = scale.per_deg_lon, scale.per_deg_lat
        xs, ys = self._xs, self._ys
        ranked: list[tuple[float, int, float]] = []
        for e in edges:
            ux, uy = (xs[e] - x) * kx, (ys[e] - y) * ky
            vx, vy = (xs[e + 1] - x) * kx - ux, (ys[e + 1] - y) * ky - uy
            length2 = vx * vx + vy * vy
            t = 0.0 if length2 == 0.0 else min(1.0, max(0.0, -(ux * vx + uy * vy) / length2))
            px, py = ux + t * vx, uy + t * vy
            ranked.append((px * px + py * py, e, t))
        if not ranked:
            return math.inf
        best = math.sqrt(min(r[0] for r in ranked))
        # The tangent plane's error grows with distance: ~tan(lat) * (d / R) relative.
        arc = best / 6.3e6
        slack = 0.005 + 2.0 * math.tan(math.radians(min(abs(y) + math.degrees(arc), 89.0))) * arc
        if within is not None and best * (1.0 - slack) > within:
            return math.inf
        limit = (best * (1.0 + 2 * slack) + 1.0) ** 2
        exact = min(
            geodesic_m(x, y, xs[e] + t * (xs[e + 1] - xs[e]), ys[e] + t * (ys[e + 1] - ys[e]))
            for d2, e, t in ranked
            if d2 <= limit
        )
        return exact if within is None or exact <= within else math.inf
