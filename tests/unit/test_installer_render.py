"""The agent config the installer tools write: always a valid edge config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge.config import parse_config
from edge.installer.render import AgentSettings, TrustFiles, render_edge_config, to_toml

DEVICE = "860000000000017"


def settings(**changes: object) -> AgentSettings:
    base: dict[str, object] = {
        "device_id": DEVICE,
        "tenant": "alpha",
        "kind": "wireless",
        "host": "mqtt.example.com",
        "port": 8883,
        "tls": True,
        "files": TrustFiles.in_dir(Path("/etc/vgr"), with_ca=True),
        "outbox": Path("/var/lib/vgr/outbox.sqlite3"),
    }
    base.update(changes)
    return AgentSettings(**base)  # type: ignore[arg-type]


def test_a_provisioned_config_passes_the_agents_own_validation() -> None:
    cfg = parse_config(render_edge_config(settings()), environ={}, source="t")
    assert (cfg.device.id, cfg.device.tenant, cfg.device.kind) == (DEVICE, "alpha", "wireless")
    assert (cfg.uplink.host, cfg.uplink.port, cfg.uplink.tls) == ("mqtt.example.com", 8883, True)
    assert cfg.uplink.ca_file == Path("/etc/vgr/ca.pem")
    assert cfg.uplink.password == "file:/etc/vgr/mqtt.password"
    assert cfg.uplink.username is None  # the device id
    assert cfg.trust.platform_keys == [Path("/etc/vgr/platform.pub")]
    assert cfg.trust.token_file == Path("/etc/vgr/token.jwt")
    assert cfg.trust.policy_file == Path("/etc/vgr/policy.jwt")
    assert cfg.outbox.path == Path("/var/lib/vgr/outbox.sqlite3")
    assert cfg.gnss.source == "serial"  # untouched defaults stay defaults


def test_gnss_choices_plain_mqtt_and_odd_paths_survive_rendering() -> None:
    odd = Path('/tmp/a "quoted" dir\\with\tcontrol/é')
    s = settings(
        tls=False,
        port=1883,
        files=TrustFiles.in_dir(odd, with_ca=False),
        username="broker-user",
        gnss={"source": "tcp", "host": "10.0.0.7", "port": 4001},
    )
    text = render_edge_config(s)
    cfg = parse_config(text, environ={}, source="t")
    assert (cfg.uplink.tls, cfg.uplink.port, cfg.uplink.ca_file) == (False, 1883, None)
    assert cfg.uplink.username == "broker-user"
    assert cfg.trust.token_file == odd / "token.jwt"
    assert (cfg.gnss.source, cfg.gnss.host, cfg.gnss.port) == ("tcp", "10.0.0.7", 4001)
    assert "ca_file" not in text


def test_to_toml_round_trips_through_tomllib() -> None:
    doc = {
        "kind": "edge",
        "flag": False,
        "ratio": 0.25,
        "none_is_left_out": None,
        "table": {"n": 3, "names": ["a", "b\n"], "path": Path("/x y")},
    }
    back = tomllib.loads(to_toml(doc, header="# hello"))
    assert back == {
        "kind": "edge",
        "flag": False,
        "ratio": 0.25,
        "table": {"n": 3, "names": ["a", "b\n"], "path": "/x y"},
    }


@pytest.mark.parametrize(
    "doc",
    [
        {"a": {"b": {"c": 1}}},  # nested tables are not needed, and refused
        {"bad key": 1},
        {"x": float("nan")},
        {"x": object()},
    ],
)
def test_to_toml_refuses_what_it_cannot_write_faithfully(doc: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        to_toml(doc)
