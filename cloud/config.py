"""The cloud services' settings: one typed model, loaded from TOML with env overrides.

Every cloud process (ingest, risk, API, dispatcher, registry) reads the same
file and uses its own section. ``vgr check-config FILE`` validates it without
starting anything. Secrets are references: ``env:NAME`` or ``file:/path``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloud.refdata.config import RefdataSettings
from cloud.webhooks.config import WebhookSettings
from protocols.configfile import ConfigError, validate_document
from protocols.secrets import SECRET_REF
from protocols.topics import INGEST_SHARE_GROUP

KIND = "cloud"
Port = Annotated[int, Field(gt=0, lt=65536)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret_ref(value: str | None) -> str | None:
    if value is not None and not SECRET_REF.match(value):
        msg = "must be a secret reference: env:NAME or file:/path"
        raise ValueError(msg)
    return value


class DatabaseSettings(_Section):
    dsn: str = "postgresql://vgr@127.0.0.1:5432/vgr"  # without password
    password: str | None = None  # secret reference
    pool_min: int = Field(default=1, ge=1)
    pool_max: int = Field(default=8, ge=1)
    connect_timeout_s: float = Field(default=5.0, gt=0)

    _check_password = field_validator("password")(_secret_ref)


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: Port = 1883
    tls: bool = False
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = None  # secret reference
    client_id_prefix: str = Field(default="vgr-cloud", min_length=1, max_length=40)
    keepalive_s: int = Field(default=30, ge=5, le=3600)

    _check_password = field_validator("password")(_secret_ref)


class IngestSettings(_Section):
    share_group: str = INGEST_SHARE_GROUP
    batch_rows: int = Field(default=5000, ge=1, le=100_000)
    batch_ms: float = Field(default=50.0, gt=0)
    max_pending_rows: int = Field(default=50_000, ge=1)
    receive_maximum: int = Field(default=1000, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9101, ge=0, lt=65536)  # 0: no /metrics endpoint


class ApiSettings(_Section):
    """The HTTP API (``vgr cloud api serve``): sessions, login throttling, password hashing."""

    host: str = "127.0.0.1"
    port: Port = 8080
    # The session cookie is Secure (sent over HTTPS only); false only for a plain-http demo.
    cookie_secure: bool = True
    session_idle_s: float = Field(default=1800.0, gt=0)  # logged out after this long unused
    session_absolute_s: float = Field(default=12 * 3600.0, gt=0)  # and this long after login
    # Login throttling (docs/api.md): free failures, then a doubling delay, per user and per IP.
    login_user_free: int = Field(default=5, ge=1, le=1000)
    login_ip_free: int = Field(default=30, ge=1, le=100_000)
    login_delay_base_s: float = Field(default=2.0, gt=0)
    login_delay_max_s: float = Field(default=900.0, gt=0)
    login_window_s: float = Field(default=3600.0, gt=0)  # failures forgotten after this quiet
    # Argon2id (RFC 9106 second recommendation by default); changing them rehashes on login.
    argon2_time_cost: int = Field(default=3, ge=1, le=50)
    argon2_memory_kib: int = Field(default=65536, ge=1024, le=4 * 1024 * 1024)
    argon2_parallelism: int = Field(default=4, ge=1, le=64)
    max_concurrent_hashes: int = Field(default=4, ge=1, le=256)
    # Chase commands: the wait for the broker's CONNACK / PUBACK per tracker (the broker and
    # the signing key are [mqtt] and registry.signing_key, as for `vgr cloud recovery`).
    command_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Peers whose X-Forwarded-For is believed (addresses or CIDR blocks of reverse proxies).
    trusted_proxies: tuple[str, ...] = ()
    # Clients that may scrape GET /metrics (no session: Prometheus); others get 403.
    metrics_allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    # The live map (docs/live-map.md). No tile_url: the imported boundaries are the basemap.
    tile_url: str = Field(default="", max_length=500, pattern=r"^(|https?://[^\s'\"]+)$")
    tile_crs: Literal["wgs84", "gcj02"] = "wgs84"  # gcj02: tiles of Chinese map providers
    tile_attribution: str = Field(default="", max_length=300)
    # Origins a browser may open the WebSocket feed from; empty: the API's own (Host header).
    public_origins: tuple[str, ...] = ()
    live_poll_s: float = Field(default=1.0, ge=0.05, le=60.0)  # feed query interval
    live_overlap_s: float = Field(default=10.0, ge=0.0, le=600.0)  # re-read for late commits
    live_client_buffer: int = Field(default=20_000, ge=10, le=1_000_000)  # entries per client
    live_send_timeout_s: float = Field(default=60.0, gt=0)  # a send blocked longer: closed
    live_socket_sndbuf: int = Field(default=262_144, ge=4096, le=64 * 1024 * 1024)
    live_session_check_s: float = Field(default=30.0, gt=0)  # ended sessions are disconnected
    live_heartbeat_s: float = Field(default=30.0, ge=1.0)  # a ping unanswered for half: closed
    live_max_clients: int = Field(default=200, ge=1, le=100_000)

    @field_validator("trusted_proxies", "metrics_allow")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                msg = f"{entry!r} is not an IP address or CIDR block"
                raise ValueError(msg) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ApiSettings:
        if self.session_idle_s > self.session_absolute_s:
            msg = "session_idle_s cannot exceed session_absolute_s"
            raise ValueError(msg)
        if self.login_delay_base_s > self.login_delay_max_s:
            msg = "login_delay_base_s cannot exceed login_delay_max_s"
            raise ValueError(msg)
        if self.login_window_s < self.login_delay_max_s:
            msg = "login_window_s must be at least login_delay_max_s (else a lock ends early)"
            raise ValueError(msg)
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            msg = "argon2_memory_kib must be at least 8 x argon2_parallelism"
            raise ValueError(msg)
        return self


class RegistrySettings(_Section):
    listen_host: str = "127.0.0.1"
    listen_port: Port = 8081
    signing_key: str | None = None  # secret reference to the platform Ed25519 PEM
    token_lifetime_days: int = Field(default=365, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # The broker as trackers reach it (public name, TLS port, CA they must trust);
    # unset fields fall back to [mqtt], the cloud's own view of the broker.
    device_mqtt_host: str | None = None
    device_mqtt_port: Port | None = None
    device_mqtt_tls_port: Port | None = None
    device_ca_file: Path | None = None
    mosquitto_password_file: Path | None = None
    mosquitto_acl_file: Path | None = None
    mosquitto_pid_file: Path | None = None

    _check_refs = field_validator("signing_key")(_secret_ref)


class RetentionSettings(_Section):
    default_days: int = Field(default=400, ge=1)
    interval_s: float = Field(default=3600.0, gt=0)


class RiskSettings(_Section):
    """The risk worker (``vgr cloud risk run``)."""

    poll_interval_s: float = Field(default=0.5, gt=0)  # idle wait between inbox rounds
    batch_rows: int = Field(default=200, ge=1, le=10_000)  # inbox rows claimed per round
    tick_interval_s: float = Field(default=60.0, gt=0)  # time-passing sweep for silence rules
    snapshot_days: float = Field(default=7.0, gt=0)  # how late data may be and still re-run
    suppress_s: float = Field(default=3600.0, ge=0)  # same rule, same vehicle after resolve
    # How often the worker looks for ended China days to score with the anomaly model
    # (docs/anomaly-model.md); 0 turns daily scoring off (run `vgr cloud score-days` instead).
    daily_scoring_check_s: float = Field(default=600.0, ge=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9103, ge=0, lt=65536)  # 0: no /metrics endpoint


class CloudConfig(_Section):
    kind: Literal["cloud"]
    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    ingest: IngestSettings = IngestSettings()
    api: ApiSettings = ApiSettings()
    registry: RegistrySettings = RegistrySettings()
    retention: RetentionSettings = RetentionSettings()
    refdata: RefdataSettings = RefdataSettings()
    webhooks: WebhookSettings = WebhookSettings()
    risk: RiskSettings = RiskSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def parse_config(text: str, *, environ: Mapping[str, str], source: str) -> CloudConfig:
    return validate_document(
        text, environ=environ, kind=KIND, source=source, validate=CloudConfig.model_validate
    )


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> CloudConfig:
    """Read, override from the environment and validate; raises ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"<file>: cannot read ({exc.strerror})"]) from None
    return parse_config(text, environ=os.environ if environ is None else environ, source=str(path))
