"""Running the registry from a cloud config file: resolve secrets, build the app, serve it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.config import CloudConfig
from cloud.registry.api import MqttEndpoint, RegistrySettings, build_app
from cloud.registry.broker_auth import BrokerFiles, ServiceAccount, sighup_reloader
from cloud.registry.issue import Signer
from cloud.secrets_io import dsn_with_password, secret
from protocols.secrets import SecretError
from protocols.tokens import load_private_key

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class RegistryConfigError(ValueError):
    """The config lacks something the registry needs; ``problems`` lists each key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def broker_files_from_config(cfg: CloudConfig) -> BrokerFiles:
    """The broker files and service accounts named by ``cfg`` (reads secrets)."""
    reg = cfg.registry
    problems = []
    if reg.mosquitto_password_file is None:
        problems.append("registry.mosquitto_password_file: required by the registry")
    if reg.mosquitto_acl_file is None:
        problems.append("registry.mosquitto_acl_file: required by the registry")
    accounts: tuple[ServiceAccount, ...] = ()
    if cfg.mqtt.username:
        try:
            password = secret(cfg.mqtt.password)
        except SecretError as exc:
            problems.append(f"mqtt.password: {exc}")
            password = ""
        if password is None:
            problems.append("mqtt.password: required for the service account mqtt.username")
        elif password:
            accounts = (ServiceAccount.with_password(cfg.mqtt.username, password),)
    if problems or reg.mosquitto_password_file is None or reg.mosquitto_acl_file is None:
        raise RegistryConfigError(problems)
    reload = None if reg.mosquitto_pid_file is None else sighup_reloader(reg.mosquitto_pid_file)
    return BrokerFiles(
        password_file=reg.mosquitto_password_file,
        acl_file=reg.mosquitto_acl_file,
        accounts=accounts,
        reload=reload,
    )


def _signing_key(cfg: CloudConfig) -> Ed25519PrivateKey:
    ref = cfg.registry.signing_key
    if ref is None:
        raise RegistryConfigError(["registry.signing_key: required (env:NAME or file:/path)"])
    try:
        pem = secret(ref) or ""
        return load_private_key(pem.encode())
    except SecretError as exc:
        raise RegistryConfigError([f"registry.signing_key: {exc}"]) from None
    except (TypeError, ValueError) as exc:
        problem = f"registry.signing_key: not an Ed25519 PEM private key ({exc})"
        raise RegistryConfigError([problem]) from None


def _endpoint(cfg: CloudConfig) -> MqttEndpoint:
    """The broker as trackers reach it: ``registry.device_*`` keys, else ``[mqtt]``."""
    mqtt, reg = cfg.mqtt, cfg.registry
    ca_file = reg.device_ca_file or mqtt.ca_file
    ca_pem = None
    if ca_file is not None:
        try:
            ca_pem = ca_file.read_text(encoding="utf-8")
        except OSError as exc:
            key = "registry.device_ca_file" if reg.device_ca_file else "mqtt.ca_file"
            raise RegistryConfigError([f"{key}: cannot read {ca_file} ({exc.strerror})"]) from None
    explicit = reg.device_mqtt_port is not None or reg.device_mqtt_tls_port is not None
    return MqttEndpoint(
        host=reg.device_mqtt_host or mqtt.host,
        port=reg.device_mqtt_port if explicit else (None if mqtt.tls else mqtt.port),
        tls_port=reg.device_mqtt_tls_port if explicit else (mqtt.port if mqtt.tls else None),
        ca_pem=ca_pem,
    )


def settings_from_config(cfg: CloudConfig) -> RegistrySettings:
    """Resolve every reference in ``cfg``; RegistryConfigError lists every problem at once."""
    problems: list[str] = []

    def attempt(part: Callable[[CloudConfig], _T]) -> _T | None:
        try:
            return part(cfg)
        except RegistryConfigError as exc:
            problems.extend(exc.problems)
            return None

    key = attempt(_signing_key)
    endpoint = attempt(_endpoint)
    broker = attempt(broker_files_from_config)
    dsn = attempt(_dsn)
    if key is None or endpoint is None or broker is None or dsn is None:
        raise RegistryConfigError(problems)
    return RegistrySettings(
        dsn=dsn,
        signer=Signer(key, timedelta(days=cfg.registry.token_lifetime_days)),
        endpoint=endpoint,
        broker=broker,
        pool_min=cfg.database.pool_min,
        pool_max=cfg.database.pool_max,
        max_body_bytes=cfg.registry.max_body_bytes,
    )


def _dsn(cfg: CloudConfig) -> str:
    try:
        return dsn_with_password(cfg.database.dsn, secret(cfg.database.password))
    except SecretError as exc:
        raise RegistryConfigError([f"database.password: {exc}"]) from None


def serve(cfg: CloudConfig, *, host: str | None = None, port: int | None = None) -> None:
    """Run the provisioning API until SIGINT/SIGTERM."""
    settings = settings_from_config(cfg)
    if settings.broker.reload is None:
        log.warning(
            "registry.mosquitto_pid_file is not set: broker files are written but the broker "
            "is not reloaded, so new and revoked credentials wait for its next reload"
        )
    host = host or cfg.registry.listen_host
    port = port or cfg.registry.listen_port
    log.info("registry listening on http://%s:%d", host, port)
    web.run_app(build_app(settings), host=host, port=port, print=None)
