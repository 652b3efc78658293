"""Config models: the shipped examples validate, typos are named, env overrides apply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloud.config import CloudConfig
from cloud.config import parse_config as parse_cloud
from edge.config import parse_config as parse_edge
from protocols.configfile import ConfigError, apply_env_overrides
from protocols.secrets import SecretError, resolve_secret

ROOT = Path(__file__).resolve().parents[2]
EDGE_EXAMPLE = ROOT / "configs" / "edge.example.toml"
CLOUD_EXAMPLE = ROOT / "configs" / "cloud.example.toml"


def test_examples_validate() -> None:
    edge = parse_edge(EDGE_EXAMPLE.read_text(), environ={}, source="edge")
    assert edge.device.id == "860000000000001"
    cloud = parse_cloud(CLOUD_EXAMPLE.read_text(), environ={}, source="cloud")
    assert isinstance(cloud, CloudConfig)
    assert cloud.ingest.batch_rows == 5000


def test_typo_is_named_with_its_key() -> None:
    text = EDGE_EXAMPLE.read_text().replace("keepalive_s = 60", "keepalive_sec = 60")
    with pytest.raises(ConfigError) as err:
        parse_edge(text, environ={}, source="x")
    assert err.value.problems == [
        "uplink.keepalive_sec: unknown key (not a setting; check the spelling)"
    ]


def test_bad_values_and_missing_section_listed_together() -> None:
    text = 'kind = "edge"\n[gate]\nmax_hdop = -1\n'
    with pytest.raises(ConfigError) as err:
        parse_edge(text, environ={}, source="x")
    keys = {p.split(":")[0] for p in err.value.problems}
    assert keys == {"device", "gate.max_hdop"}


def test_secret_must_be_a_reference() -> None:
    text = CLOUD_EXAMPLE.read_text().replace('"env:VGR_DB_PASSWORD"', '"hunter2"')
    with pytest.raises(ConfigError) as err:
        parse_cloud(text, environ={}, source="x")
    assert err.value.problems[0].startswith("database.password:")
    assert "hunter2" not in str(err.value)


def test_env_override_typed_and_nested() -> None:
    env = {
        "VGR_CLOUD__INGEST__BATCH_ROWS": "1234",
        "VGR_CLOUD__MQTT__HOST": "broker.local",
        "VGR_EDGE__UPLINK__PORT": "1",
    }
    cfg = parse_cloud(CLOUD_EXAMPLE.read_text(), environ=env, source="x")
    assert cfg.ingest.batch_rows == 1234
    assert cfg.mqtt.host == "broker.local"


def test_env_override_of_unknown_key_is_an_error() -> None:
    env = {"VGR_CLOUD__INGEST__BATCH_ROWZ": "1"}
    with pytest.raises(ConfigError) as err:
        parse_cloud(CLOUD_EXAMPLE.read_text(), environ=env, source="x")
    assert err.value.problems[0].startswith("ingest.batch_rowz:")


def test_env_override_cannot_descend_into_scalar() -> None:
    with pytest.raises(ValueError, match="non-table"):
        apply_env_overrides({"a": 1}, {"VGR_X__A__B": "2"}, "x")


def test_not_toml_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_edge("kind = ", environ={}, source="x")


def test_resolve_secret() -> None:
    assert resolve_secret("env:A", environ={"A": "s3"}, read_text=lambda p: "") == "s3"
    assert resolve_secret("file:/x", environ={}, read_text=lambda p: " s4\n") == "s4"
    with pytest.raises(SecretError, match="not set"):
        resolve_secret("env:B", environ={}, read_text=lambda p: "")


def run_vgr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud.console", *args], capture_output=True, text=True, check=False
    )


def test_cli_check_config_examples_pass() -> None:
    for path in (EDGE_EXAMPLE, CLOUD_EXAMPLE):
        res = run_vgr("check-config", str(path))
        assert res.returncode == 0, res.stderr
        assert "valid" in res.stdout


def test_cli_check_config_names_the_typo(tmp_path: Path) -> None:
    bad = tmp_path / "cloud.toml"
    bad.write_text(CLOUD_EXAMPLE.read_text().replace("[ingest]\n", "[ingest]\nbatchrows = 1\n"))
    res = run_vgr("check-config", str(bad))
    assert res.returncode == 1
    assert "ingest.batchrows: unknown key" in res.stderr


def test_cli_check_config_unknown_kind(tmp_path: Path) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text('kind = "toaster"\n')
    res = run_vgr("check-config", str(bad))
    assert res.returncode == 1
    assert "kind: must be one of cloud, edge" in res.stderr


def test_cli_help_lists_the_programs() -> None:
    res = run_vgr("--help")
    assert res.returncode == 0
    for name in ("edge", "cloud", "sim", "demo", "check-config"):
        assert name in res.stdout
