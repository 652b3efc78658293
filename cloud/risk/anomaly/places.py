"""Place lookups for the batch commands when the stored reference data is not used.

``train`` and ``score-days`` take their :class:`~cloud.risk.model.PlaceLookup`
from the reference-data tables (``cloud.refdata``: regions and the tenant's
risk POIs). When those tables do not exist they fall back to
:class:`NoPlaces` (no provinces, no POIs: those two features are 0); with
``--provinces FILE`` they use :class:`ProvincePlaces`, provinces from a
GeoJSON FeatureCollection keyed by ``adcode`` (WGS-84) and no POIs. A model
records which source it was trained with; scoring warns when it differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cloud.risk.model import NoPlaces
from protocols.geometry import FeatureProblem, load_feature_collection
from protocols.shape_index import ShapeIndex

__all__ = ["NoPlaces", "ProvincePlaces"]


class ProvincePlaces(NoPlaces):
    """Provinces from a boundary file; no cities, POIs or IP ranges."""

    def __init__(self, index: ShapeIndex, source: str, problems: Sequence[FeatureProblem]) -> None:
        self._index = index
        self.source = source
        self.problems = tuple(problems)
        self.repaired = 0

    @classmethod
    def from_file(cls, path: Path) -> ProvincePlaces:
        """Load ``path``; bad features are kept in ``problems``, repaired ones counted."""
        loaded, problems = load_feature_collection(path.read_bytes())
        places = cls(
            ShapeIndex([f.id for f in loaded], [f.geometry for f in loaded]),
            f"provinces:{path.name}",
            problems,
        )
        places.repaired = sum(1 for f in loaded if f.repair is not None)
        return places

    def province_of(self, lat: float, lon: float) -> str | None:
        hits = self._index.hits(lon, lat)
        return hits[0] if hits else None
