"""Repairing a policy's shapes with shapely before the platform signs it (cloud side only).

The tracker reads any rings by the even-odd rule (:mod:`protocols.policy_eval`),
which already matches GEOS ``MakeValid`` on the real boundary files except
within metres of their defects. Signing the repaired shapes makes the two
readings identical, and lets the platform see what it is about to enforce:

    repaired = repair_policy(draft)            # RegionError if a shape is unusable
    jws = sign_policy(key, repaired.policy)
    for area_id, note in repaired.repairs: log(...)

Valid shapes and circles are kept as they are (same objects), so repairing a
valid policy changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import shapely.geometry

from protocols.errors import RegionError
from protocols.geometry import RepairNote, shape_from_geojson
from protocols.policy import Area, GeoJsonShape, Policy


@dataclass(frozen=True, slots=True)
class RepairedPolicy:
    policy: Policy  # shapes valid; the input itself when nothing needed repair
    repairs: tuple[tuple[str, RepairNote], ...]  # (area id, what was wrong), allowed then forbidden


def _repaired_area(area: Area, kind: str) -> tuple[Area, RepairNote | None]:
    if not isinstance(area.shape, GeoJsonShape):
        return area, None
    try:
        shape, note = shape_from_geojson(area.shape.geometry)
    except RegionError as exc:
        raise RegionError(exc.reason, f"{kind} area {area.id!r}: {exc}", field=area.id) from None
    if note is None:
        return area, None
    geometry: dict[str, Any] = msgspec.to_builtins(dict(shapely.geometry.mapping(shape)))
    return msgspec.structs.replace(area, shape=GeoJsonShape(geometry=geometry)), note


def repair_policy(policy: Policy) -> RepairedPolicy:
    """The policy with every invalid GeoJSON shape replaced by its GEOS repair."""
    repairs: list[tuple[str, RepairNote]] = []
    lists: dict[str, list[Area]] = {}
    for kind, areas in (("allowed", policy.allowed), ("forbidden", policy.forbidden)):
        fixed = []
        for area in areas:
            new, note = _repaired_area(area, kind)
            fixed.append(new)
            if note is not None:
                repairs.append((area.id, note))
        lists[kind] = fixed
    if not repairs:
        return RepairedPolicy(policy, ())
    new_policy = msgspec.structs.replace(
        policy, allowed=lists["allowed"], forbidden=lists["forbidden"]
    )
    return RepairedPolicy(new_policy, tuple(repairs))
