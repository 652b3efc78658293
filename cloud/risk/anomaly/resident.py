"""The resident point (常驻地) learned from night positions: pure, for the features.

DOMAIN.md: the resident area is the cluster holding at least 50 % of the night
dwell over 14-30 days. The caller samples night dwell evenly (one position
per 15 minutes of night with data), so every sample weighs the same; the
cluster is the 200 m neighbourhood of the sample with the most neighbours,
and the point is its members' median.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protocols.plausibility import EARTH_RADIUS_M

__all__ = ["resident_point"]

_MAX_SAMPLES = 1500  # the neighbour matrix is n x n; 30 nights x 32 quarter-hours fit


def resident_point(
    samples: Sequence[tuple[float, float]],
    *,
    radius_m: float = 200.0,
    min_share: float = 0.5,
    min_samples: int = 8,
) -> tuple[float, float] | None:
    """``(lat, lon)`` of the dominant night place, or None without a dominant one.

    ``samples`` are equally weighted ``(lat, lon)`` night positions. None when
    there are fewer than ``min_samples`` (two hours of night) or when no
    ``radius_m`` neighbourhood holds ``min_share`` of them.
    """
    if len(samples) < min_samples:
        return None
    pts = np.asarray(samples, dtype=float)
    if len(pts) > _MAX_SAMPLES:  # evenly thinned: the shares stay the same
        pts = pts[np.linspace(0, len(pts) - 1, _MAX_SAMPLES).astype(int)]
    lat = np.radians(pts[:, 0])
    lon = np.radians(pts[:, 1])
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlon / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    near = dist <= radius_m
    counts = near.sum(axis=1)
    best = int(np.argmax(counts))
    if counts[best] < min_share * len(pts):
        return None
    members = pts[near[best]]
    return float(np.median(members[:, 0])), float(np.median(members[:, 1]))
