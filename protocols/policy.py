"""The region policy of one loan, as signed by the platform and enforced on the tracker.

The cloud resolves administrative codes into geometry before signing, so the
tracker needs nothing but this document and the platform public key. Shapes
are WGS-84 (lon, lat order as in GeoJSON). Geometry evaluation lives in
``protocols.regions``; signing in ``protocols.tokens``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from protocols.messages import DeviceId, Lat, Lon, UtcTime


class Circle(Struct, frozen=True, kw_only=True, tag="circle"):
    """A disc of ``radius_m`` metres (geodesic) around a centre."""

    lon: Lon
    lat: Lat
    radius_m: Annotated[float, Meta(gt=0.0, le=2_000_000.0)]


class GeoJsonShape(Struct, frozen=True, kw_only=True, tag="geojson"):
    """A GeoJSON ``Polygon`` or ``MultiPolygon`` geometry object."""

    geometry: dict[str, Any]


Shape = Circle | GeoJsonShape


class Area(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One allowed area or forbidden zone."""

    id: Annotated[str, Meta(min_length=1, max_length=64)]
    name: Annotated[str, Meta(max_length=200)] = ""
    adcode: Annotated[str, Meta(pattern=r"^[0-9]{6}$")] | None = None
    shape: Shape


class Hysteresis(Struct, frozen=True, kw_only=True):
    """How much evidence a violation needs before it is raised, and before it clears.

    Defaults follow DOMAIN.md: an exit needs 2 consecutive fixes outside and more
    than 5 km past the border; a forbidden zone needs 2 consecutive fixes inside.
    """

    consecutive_fixes: Annotated[int, Meta(ge=1, le=100)] = 2
    exit_margin_m: Annotated[float, Meta(ge=0.0, le=500_000.0)] = 5000.0
    return_margin_m: Annotated[float, Meta(ge=0.0, le=500_000.0)] = 0.0
    forbidden_margin_m: Annotated[float, Meta(ge=0.0, le=100_000.0)] = 0.0


class Policy(Struct, frozen=True, kw_only=True):
    """The signed region policy for one device (and the loan it secures)."""

    policy_id: Annotated[str, Meta(min_length=1, max_length=64)]
    version: Annotated[int, Meta(ge=1)]
    tenant: Annotated[str, Meta(min_length=1, max_length=64)]
    device_id: DeviceId
    issued_at: UtcTime
    allowed: list[Area] = []  # empty list: no region limit
    forbidden: list[Area] = []
    hysteresis: Hysteresis = Hysteresis()
    chase_interval_s: Annotated[int, Meta(ge=1, le=3600)] = 10
    kind: Literal["vgr.policy"] = "vgr.policy"
