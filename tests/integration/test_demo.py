"""`vgr demo` (what `make demo` runs) starts the stack, stores fixes, and stops cleanly."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cloud.localsvc import free_port

pytestmark = pytest.mark.services


def test_demo_runs_and_stores_fixes() -> None:
    # Not pytest's tmp_path: the demo's PostgreSQL runs as the postgres user, which
    # cannot enter pytest's private (0700) temp root when the tests run as root.
    with tempfile.TemporaryDirectory(prefix="vgr-demo-test-") as base:
        Path(base).chmod(0o755)
        res = subprocess.run(
            [sys.executable, "-m", "cloud.console", "demo", "--duration", "8",
             "--devices", "20", "--rate", "2", "--dir", base,
             "--metrics-port", str(free_port())],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    counts = [int(n.replace(",", "")) for n in re.findall(r"stored fixes\s+([\d,]+)", res.stdout)]
    assert counts, res.stdout
    assert counts[-1] > 0, res.stdout
    assert "from 20 devices" in res.stdout
    assert "stopped cleanly" in res.stdout
