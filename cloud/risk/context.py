"""What the rules may consult about a vehicle, loaded from the registry tables.

A vehicle's devices, its loan (status, declared address) and the newest
signed policy of its devices, compiled once with the same ``protocols``
geometry the edge agent uses (``DESIGN.md`` contract 6), then cached.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import psycopg

from cloud.risk.model import Device, NoRegion, PlaceLookup, Poi, RegionLookup, VehicleContext
from protocols.errors import RegionError
from protocols.policy import Policy
from protocols.policy_eval import AreaSet, PolygonRegion
from protocols.regions import CompiledPolicy, compile_policy, distance_to_allowed_m

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


class PolicyRegion:
    """A compiled signed policy seen through the rules' :class:`RegionLookup`.

    The answers are :func:`protocols.regions.locate`'s (the edge agent's), but
    each question evaluates only what it needs: whether the point is in an
    allowed area (the metres past the border only when it is not), or the
    forbidden zones near it. The last point's answer to each is kept, so the
    rules asking about the same fix do not place it again.
    """

    __slots__ = ("_allowed", "_forbidden", "_last_outside", "_last_zone", "compiled")

    def __init__(self, compiled: CompiledPolicy) -> None:
        self.compiled = compiled
        self._allowed = _inside_test(compiled.allowed) if compiled.has_allowed else None
        self._forbidden = compiled.forbidden if compiled.forbidden else None
        self._last_outside: tuple[float, float, float] = (math.nan, math.nan, 0.0)
        self._last_zone: tuple[float, float, str | None] = (math.nan, math.nan, None)

    def metres_outside_allowed(self, lat: float, lon: float) -> float:
        last_lat, last_lon, metres = self._last_outside
        if lat == last_lat and lon == last_lon:
            return metres
        allowed = self._allowed
        if allowed is None or allowed(lon, lat):
            metres = 0.0
        else:
            metres = distance_to_allowed_m(self.compiled, lon, lat) or 0.0
        self._last_outside = (lat, lon, metres)
        return metres

    def forbidden_zone_at(self, lat: float, lon: float) -> str | None:
        last_lat, last_lon, zone = self._last_zone
        if lat == last_lat and lon == last_lon:
            return zone
        forbidden = self._forbidden
        margin = self.compiled.hysteresis.forbidden_margin_m
        hits = () if forbidden is None else forbidden.within(lon, lat, margin)
        zone = min(hits) if hits else None
        self._last_zone = (lat, lon, zone)
        return zone


def _inside_test(allowed: AreaSet) -> Callable[[float, float], bool]:
    """``allowed.holds``, or what it comes down to for one area (its own ``contains``, which
    tests its box) or one polygon (its ring index): the per-fix path, fewer calls deep."""
    if len(allowed) != 1:
        return allowed.holds
    region = allowed.regions[0]
    if isinstance(region, PolygonRegion) and len(region.parts) == 1:
        return region.parts[0].contains
    return region.contains


class NoPlaces:
    """Reference data not loaded: no regions, no POIs, no IP ranges."""

    def province_of(self, lat: float, lon: float) -> str | None:
        return None

    def city_of(self, lat: float, lon: float) -> str | None:
        return None

    def pois_near(self, lat: float, lon: float, radius_m: float) -> Sequence[Poi]:
        return ()

    def ip_province(self, ip: str) -> str | None:
        return None

    def ip_is_foreign_or_hosting(self, ip: str) -> bool:
        return False


def _region(document: object, policy_id: str) -> RegionLookup:
    try:
        policy = msgspec.convert(document, Policy)
        return PolicyRegion(compile_policy(policy))
    except (msgspec.ValidationError, RegionError) as exc:
        log.warning("policy %s cannot be evaluated, region rules off: %s", policy_id, exc)
        return NoRegion()


def load_contexts(
    conn: Conn, vehicle_ids: Sequence[int], places_for: Callable[[str], PlaceLookup]
) -> dict[int, VehicleContext]:
    """Contexts for the vehicles that still exist (a deleted vehicle gets none)."""
    ids = list(vehicle_ids)
    vehicles = conn.execute(
        "SELECT v.id, v.tenant_id, l.status, l.declared_lat, l.declared_lon, l.id FROM vehicles v "
        "LEFT JOIN LATERAL (SELECT id, status, declared_lat, declared_lon FROM loans "
        "WHERE vehicle_id = v.id ORDER BY id DESC LIMIT 1) l ON true WHERE v.id = ANY(%s)",
        (ids,),
    ).fetchall()
    devices: dict[int, dict[str, Device]] = {v: {} for v in ids}
    for vid, dev, kind, heartbeat, wakes in conn.execute(
        "SELECT vehicle_id, id, kind, heartbeat_s, wakes_per_day FROM devices "
        "WHERE vehicle_id = ANY(%s) AND NOT revoked",
        (ids,),
    ).fetchall():
        devices[vid][dev] = Device(dev, kind, heartbeat, 2.0 if wakes is None else wakes)
    policies: dict[int, RegionLookup] = {}
    for vid, policy_id, document in conn.execute(
        "SELECT DISTINCT ON (d.vehicle_id) d.vehicle_id, p.id, p.document FROM policies p "
        "JOIN devices d ON d.id = p.device_id WHERE d.vehicle_id = ANY(%s) "
        "ORDER BY d.vehicle_id, p.created_at DESC",
        (ids,),
    ).fetchall():
        policies[vid] = _region(document, policy_id)
    out: dict[int, VehicleContext] = {}
    for vid, tenant, status, dlat, dlon, loan_id in vehicles:
        out[vid] = VehicleContext(
            tenant_id=tenant,
            vehicle_id=vid,
            devices=devices.get(vid, {}),
            region=policies.get(vid, NoRegion()),
            places=places_for(tenant),
            declared_lat=dlat,
            declared_lon=dlon,
            loan_status=status or "current",
            loan_id=loan_id,
        )
    return out
