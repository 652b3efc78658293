"""The map's JavaScript GCJ-02 conversion agrees with the Python one (cloud/refdata)."""

from __future__ import annotations

import json
import shutil
import subprocess

from cloud.api.static import WEB_ROOT
from cloud.refdata.gcj02 import wgs84_to_gcj02

POINTS = [(31.2304, 121.4737), (39.9042, 116.4074), (22.5431, 114.0579), (43.8171, 125.3235),
          (29.6520, 91.1721), (18.2528, 109.5119), (48.8566, 2.3522), (25.0330, 121.5654),
          (0.5, 100.0), (55.9, 137.9)]  # fmt: skip


def test_the_javascript_port_matches_the_python_formula() -> None:
    node = shutil.which("node")
    assert node is not None, "node is installed by scripts/setup.sh"
    script = (
        f"import {{ wgs84ToGcj02 }} from {json.dumps(str(WEB_ROOT / 'js' / 'gcj02.js'))};\n"
        f"console.log(JSON.stringify({json.dumps(POINTS)}.map(([a, o]) => wgs84ToGcj02(a, o))));"
    )
    out = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    shown = json.loads(out.stdout)
    for (lat, lon), (js_lat, js_lon) in zip(POINTS, shown, strict=True):
        py_lat, py_lon = wgs84_to_gcj02(lat, lon)
        assert abs(js_lat - py_lat) < 1e-9, (lat, lon)
        assert abs(js_lon - py_lon) < 1e-9, (lat, lon)
    moved = [(a, o) for (a, o), (b, p) in zip(POINTS, shown, strict=True) if (a, o) != (b, p)]
    assert len(moved) >= 6  # mainland points move; Paris and the box's edges may not
