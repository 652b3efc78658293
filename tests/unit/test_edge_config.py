"""The edge config as msgspec Structs: every problem listed at once, as pydantic did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from edge.config import EdgeConfig, GnssSettings, parse_config
from protocols.configfile import ConfigError, SettingsError
from protocols.structconfig import convert_settings

ROOT = Path(__file__).resolve().parents[2]
EDGE_EXAMPLE = ROOT / "configs" / "edge.example.toml"

BROKEN = """
kind = "edge"
log_level = "LOUD"
colour = "red"

[device]
id = "dev/1"
kind = "wired"

[gnss]
source = "seriall"
port = 70000
max_line_bytes = 10
baud = 9600

[reporting]
batch_max = 1.5

[uplink]
password = "hunter2"
tls = "yes"

[trust]
platform_keys = ["/etc/vgr/a.pub", 7]

[outbox]
path = ""

[gate]
max_hdop = 0
"""


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text, environ=environ or {}, source="x")
    return err.value.problems


def test_every_problem_is_listed_with_its_key() -> None:
    found = problems(BROKEN)
    assert {p.split(":")[0] for p in found} == {
        "colour",
        "log_level",
        "device.id",
        "device.tenant",
        "gnss.baud",
        "gnss.source",
        "gnss.port",
        "gnss.max_line_bytes",
        "reporting.batch_max",
        "uplink.password",
        "uplink.tls",
        "trust.platform_keys[1]",
        "outbox.path",
        "gate.max_hdop",
    }
    assert "colour: unknown key (not a setting; check the spelling)" in found
    assert "gnss.baud: unknown key (not a setting; check the spelling)" in found
    assert "device.tenant: required key is missing" in found
    assert "gnss.source: must be one of serial, tcp, pty, file, stdin" in found
    assert "gnss.max_line_bytes: expected `int` >= 82" in found
    assert "uplink.password: must be a secret reference: env:NAME or file:/path" in found
    assert any(p.startswith("device.id: must be 1-64 characters") for p in found)
    assert "hunter2" not in " ".join(found)


def test_missing_sections_and_wrong_shapes() -> None:
    assert problems('kind = "edge"\n') == ["device: required key is missing"]
    assert problems('kind = "cloud"\ndevice = 5\n') == [
        "kind: must be one of edge",
        "device: must be a table",
    ]


def test_env_overrides_are_checked_like_the_file() -> None:
    env = {"VGR_EDGE__UPLINK__PORT": "0", "VGR_EDGE__GATE__MIN_SATZ": "3"}
    found = problems(EDGE_EXAMPLE.read_text(), env)
    assert found == [
        "gate.min_satz: unknown key (not a setting; check the spelling)",
        "uplink.port: expected `int` >= 1",
    ]
    cfg = parse_config(
        EDGE_EXAMPLE.read_text(), environ={"VGR_EDGE__UPLINK__PORT": "1883"}, source="x"
    )
    assert cfg.uplink.port == 1883


def test_values_are_typed_and_defaults_filled() -> None:
    cfg = parse_config(EDGE_EXAMPLE.read_text(), environ={}, source="x")
    assert isinstance(cfg, EdgeConfig)
    assert cfg.outbox.path == Path("/var/lib/vgr/outbox.sqlite3")
    assert cfg.trust.platform_keys == [Path("/etc/vgr/platform.pub")]
    assert cfg.uplink.ca_file == Path("/etc/vgr/ca.pem")
    assert cfg.uplink.ack_timeout_s == 20.0  # not in the file: the default
    assert cfg.io.source == "none"
    with pytest.raises(AttributeError):
        cfg.uplink.port = 1  # type: ignore[misc]


def test_convert_settings_on_a_struct_directly() -> None:
    assert convert_settings({"port": 1}, GnssSettings).port == 1
    with pytest.raises(SettingsError) as err:
        convert_settings({"port": "x", "nope": 1}, GnssSettings)
    assert err.value.problems == [
        "nope: unknown key (not a setting; check the spelling)",
        "port: expected `int`, got `str`",
    ]
    assert msgspec.structs.asdict(GnssSettings())["source"] == "serial"


def test_cli_check_config_lists_all_edge_problems(tmp_path: Path) -> None:
    bad = tmp_path / "edge.toml"
    bad.write_text(BROKEN)
    res = subprocess.run(
        [sys.executable, "-m", "cloud.console", "check-config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1
    assert f"{bad}: gnss.baud: unknown key" in res.stderr
    assert "14 problem(s) in this edge config" in res.stderr
