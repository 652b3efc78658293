"""The ``[refdata]`` section of the cloud config: reference data sources and import defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class RefdataSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # A MaxMind-format database (GeoIP2/GeoLite2 City or Country, DB-IP lite…) consulted for
    # IP addresses the curated ip_ranges do not resolve to a province. None: ranges only.
    maxmind_db: Path | None = None
    progress_interval_s: float = Field(default=1.0, gt=0)
    poi_default_radius_m: float = Field(default=150.0, ge=10, le=5000)
    # Candidate POI discovery (vgr cloud pois discover).
    discover_days: int = Field(default=90, ge=1, le=3650)
    discover_min_stop_h: float = Field(default=2.0, gt=0)
    discover_eps_m: float = Field(default=150.0, gt=0, le=5000)
    discover_min_vehicles: int = Field(default=2, ge=2)
