"""WGS-84 ⇄ GCJ-02 against published pairs, and round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.refdata.gcj02 import (
    MAINLAND_BBOX,
    gcj02_to_wgs84,
    gcj02_to_wgs84_arrays,
    in_offset_area,
    wgs84_to_gcj02,
    wgs84_to_gcj02_arrays,
)
from protocols.plausibility import haversine_m

# (wgs lat, wgs lon, gcj lat, gcj lon). Sources: the test table of
# github.com/googollee/eviltransform (Shanghai, Shenzhen, Beijing), reproduced
# by its ports (Python, PHP); and the README/test of github.com/wandergis/coordtransform
# (wgs84togcj02(116.404, 39.915) = [116.41024449916938, 39.91640428150164]).
PUBLISHED = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
    (39.915, 116.404, 39.91640428150164, 116.41024449916938),
]

# Mainland China, a little inside the bbox so both directions stay inside it.
china_lat = st.floats(min_value=18.0, max_value=53.5)
china_lon = st.floats(min_value=73.5, max_value=135.0)


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), PUBLISHED)
def test_forward_matches_published_pairs(
    wlat: float, wlon: float, glat: float, glon: float
) -> None:
    lat, lon = wgs84_to_gcj02(wlat, wlon)
    assert lat == pytest.approx(glat, abs=1e-9)
    assert lon == pytest.approx(glon, abs=1e-9)


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), PUBLISHED)
def test_inverse_recovers_published_wgs84(
    wlat: float, wlon: float, glat: float, glon: float
) -> None:
    lat, lon = gcj02_to_wgs84(glat, glon)
    assert haversine_m(lat, lon, wlat, wlon) < 0.01


def test_offsets_are_the_documented_size() -> None:
    # DOMAIN.md: about 475 m in Shanghai, 604 m in Shenzhen; 100-700 m in general.
    lat, lon = wgs84_to_gcj02(31.2304, 121.4737)  # People's Square, Shanghai
    assert 440 < haversine_m(lat, lon, 31.2304, 121.4737) < 510
    lat, lon = wgs84_to_gcj02(22.5431, 114.0579)  # Futian, Shenzhen
    assert 570 < haversine_m(lat, lon, 22.5431, 114.0579) < 640


@pytest.mark.parametrize(
    ("lat", "lon"), [(51.5, -0.12), (35.68, 139.77), (-33.9, 151.2), (60, 100)]
)
def test_outside_the_offset_area_nothing_changes(lat: float, lon: float) -> None:
    assert not in_offset_area(lat, lon)
    assert wgs84_to_gcj02(lat, lon) == (lat, lon)
    assert gcj02_to_wgs84(lat, lon) == (lat, lon)


def test_bbox_holds_mainland_extremes() -> None:
    # Mohe (north), Fuyuan (east), Pamirs (west), Sanya and Zengmu Ansha (south).
    for lat, lon in [(53.56, 122.34), (48.37, 134.77), (39.4, 73.5), (18.25, 109.5), (3.9, 112.3)]:
        assert in_offset_area(lat, lon)
    assert MAINLAND_BBOX[0] < 73.5
    assert MAINLAND_BBOX[2] > 134.77


@settings(max_examples=300, deadline=None)
@given(china_lat, china_lon)
def test_round_trip_wgs_gcj_wgs_under_half_a_metre(lat: float, lon: float) -> None:
    glat, glon = wgs84_to_gcj02(lat, lon)
    assert 1.0 < haversine_m(lat, lon, glat, glon) < 1000.0
    back = gcj02_to_wgs84(glat, glon)
    assert haversine_m(lat, lon, *back) < 0.5


@settings(max_examples=300, deadline=None)
@given(china_lat, china_lon)
def test_round_trip_gcj_wgs_gcj_under_half_a_metre(lat: float, lon: float) -> None:
    wlat, wlon = gcj02_to_wgs84(lat, lon)
    assert haversine_m(lat, lon, *wgs84_to_gcj02(wlat, wlon)) < 0.5


def test_arrays_agree_with_scalars_and_leave_outside_points_alone() -> None:
    lats = np.array([31.1774276, 22.543847, 51.5, 39.915])
    lons = np.array([121.5272106, 113.912316, -0.12, 116.404])
    glon, glat = wgs84_to_gcj02_arrays(lons, lats)
    for i in range(len(lats)):
        assert (glat[i], glon[i]) == pytest.approx(wgs84_to_gcj02(lats[i], lons[i]), abs=1e-12)
    wlon, wlat = gcj02_to_wgs84_arrays(glon, glat)
    assert np.allclose(wlat, lats, atol=1e-8)
    assert np.allclose(wlon, lons, atol=1e-8)
    assert (wlat[2], wlon[2]) == (51.5, -0.12)
