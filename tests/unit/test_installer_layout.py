"""What the bundle is made of: the zipapp, the systemd unit, the install script."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import edge
from edge.installer import bundle, templates


def test_nothing_in_edge_imports_cloud() -> None:
    for path in Path(edge.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] != "cloud", f"{path} imports {name}"


def test_the_zipapp_holds_the_pure_packages_and_runs(tmp_path: Path) -> None:
    pyz = tmp_path / "vgr-agent.pyz"
    bundle.build_zipapp(pyz)
    with zipfile.ZipFile(pyz) as z:
        names = z.namelist()
    assert "__main__.py" in names
    assert {n.split("/")[0] for n in names} == {"__main__.py", "edge", "protocols"}
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".so"))]
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    # This venv has the dependencies; the zipapp brings its own edge/protocols code.
    done = subprocess.run(
        [sys.executable, "-I", str(pyz), "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "selftest" in done.stdout


def test_the_unit_restarts_forever_as_its_own_user() -> None:
    unit = templates.systemd_unit(["/data/vgr"])
    for line in (
        "Restart=always",
        "StartLimitIntervalSec=0",
        "User=vgr",
        "ExecStartPre=+/opt/vgr/install.sh prepare",
        "ExecStart=/opt/vgr/venv/bin/python /opt/vgr/vgr-agent.pyz run --config /etc/vgr/edge.toml",
        "StateDirectory=vgr",
        "ReadWritePaths=/data/vgr",
        "WantedBy=multi-user.target",
    ):
        assert line in unit.splitlines(), line
    assert "u vgr - " in templates.SYSUSERS


def test_the_install_script_is_valid_posix_shell(tmp_path: Path) -> None:
    script = tmp_path / "install.sh"
    script.write_text(templates.INSTALL_SH)
    done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    usage = subprocess.run(
        ["sh", str(script), "bogus"], capture_output=True, text=True, check=False
    )
    assert (usage.returncode, usage.stderr.strip()) == (
        1,
        "install.sh: usage: install.sh [install|prepare|venv]",
    )
