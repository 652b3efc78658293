"""The registry's commands and its settings resolved from a cloud config file."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

import pytest

from cloud.config import parse_config
from cloud.registry import cli
from cloud.registry.broker_auth import SERVICE_ACL
from cloud.registry.service import RegistryConfigError, settings_from_config
from protocols.tokens import generate_private_key, key_id, private_key_to_pem


def config_text(tmp: Path, registry: str) -> str:
    return f"""kind = "cloud"
[database]
dsn = "postgresql://vgr@127.0.0.1:5999/vgr"
password = "env:T_DB_PW"
[mqtt]
host = "mqtt.example.cn"
port = 8883
tls = true
ca_file = "{tmp / "ca.pem"}"
username = "vgr-cloud"
password = "env:T_MQTT_PW"
[registry]
{registry}
"""


def test_settings_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_private_key()
    (tmp_path / "platform.key").write_bytes(private_key_to_pem(key))
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("T_DB_PW", "db-secret")
    monkeypatch.setenv("T_MQTT_PW", "mqtt-secret")
    registry = f"""signing_key = "file:{tmp_path / "platform.key"}"
token_lifetime_days = 90
mosquitto_password_file = "{tmp_path / "passwords"}"
mosquitto_acl_file = "{tmp_path / "acl"}"
mosquitto_pid_file = "{tmp_path / "mosquitto.pid"}"
"""
    cfg = parse_config(config_text(tmp_path, registry), environ={}, source="t.toml")
    settings = settings_from_config(cfg)
    assert key_id(settings.signer.private_key.public_key()) == key_id(key.public_key())
    assert settings.signer.token_lifetime == timedelta(days=90)
    assert "password=db-secret" in settings.dsn
    ep = settings.endpoint
    assert (ep.host, ep.port, ep.tls_port) == ("mqtt.example.cn", None, 8883)
    assert ep.ca_pem == "-----BEGIN CERTIFICATE-----\n"
    [account] = settings.broker.accounts
    assert (account.username, account.acl) == ("vgr-cloud", SERVICE_ACL)
    assert "mqtt-secret" not in account.password_hash
    assert settings.broker.reload is not None
    assert settings.broker.password_file == tmp_path / "passwords"


def test_missing_registry_settings_are_all_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "platform.key"
    key.write_bytes(private_key_to_pem(generate_private_key()))
    monkeypatch.delenv("T_MQTT_PW", raising=False)
    monkeypatch.delenv("T_DB_PW", raising=False)
    cfg = parse_config(
        config_text(tmp_path, f'signing_key = "file:{key}"'), environ={}, source="t.toml"
    )
    with pytest.raises(RegistryConfigError) as info:
        settings_from_config(cfg)
    assert [p.split(":")[0] for p in info.value.problems] == [
        "mqtt.ca_file",
        "registry.mosquitto_password_file",
        "registry.mosquitto_acl_file",
        "mqtt.password",
        "database.password",
    ]
    (tmp_path / "junk.key").write_text("not a key")
    for registry in ("", f'signing_key = "file:{tmp_path / "junk.key"}"'):
        cfg = parse_config(config_text(tmp_path, registry), environ={}, source="t.toml")
        with pytest.raises(RegistryConfigError) as info:
            settings_from_config(cfg)
        assert info.value.problems[0].startswith("registry.signing_key: ")


@pytest.mark.parametrize(
    "argv",
    [
        ["registry", "serve", "--config", "c.toml", "--port", "9000"],
        ["registry", "sync-broker", "--config", "c.toml"],
        ["tenant", "create", "--config", "c.toml", "--id", "acme", "--name", "Acme"],
        ["installer-key", "create", "--config", "c.toml", "--tenant", "acme", "--name", "li"],
    ],
)
def test_commands_parse(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="vgr cloud")
    cli.register(parser.add_subparsers(dest="cloud_command", required=True))
    args = parser.parse_args(argv)
    assert callable(args.func)
    assert args.config == Path("c.toml")
