"""The edge agent's settings: one typed model, loaded from TOML with env overrides.

``vgr check-config FILE`` validates a file without starting anything. Unknown
keys are errors. Secrets (the MQTT password) are references: ``env:NAME`` or
``file:/path``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocols.configfile import ConfigError, validate_document
from protocols.secrets import SECRET_REF
from protocols.topics import valid_device_id

KIND = "edge"
PositiveSeconds = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret_ref(value: str | None) -> str | None:
    if value is not None and not SECRET_REF.match(value):
        msg = "must be a secret reference: env:NAME or file:/path"
        raise ValueError(msg)
    return value


class DeviceSettings(_Section):
    id: str
    tenant: str = Field(min_length=1, max_length=64)
    kind: Literal["wired", "wireless"] = "wired"

    @field_validator("id")
    @classmethod
    def _usable_id(cls, v: str) -> str:
        if not valid_device_id(v):
            msg = "device id must be 1-64 characters without '/', '+', '#', '$' or spaces"
            raise ValueError(msg)
        return v


class GnssSettings(_Section):
    source: Literal["serial", "tcp", "pty", "file", "stdin"] = "serial"
    path: str | None = "/dev/ttyUSB0"  # serial device, pty or file
    baudrate: int = Field(default=9600, gt=0)
    host: str = "127.0.0.1"  # tcp source
    port: int = Field(default=10110, gt=0, lt=65536)
    max_line_bytes: int = Field(default=512, ge=82, le=4096)
    fix_timeout_s: PositiveSeconds = 300.0


class IoSettings(_Section):
    """The tracker's hardware I/O channel (protocols/hwio.py JSON lines); none if bare."""

    source: Literal["none", "serial", "pty", "tcp", "file", "stdin"] = "none"
    path: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=10111, gt=0, lt=65536)


class GateSettings(_Section):
    max_hdop: float = Field(default=5.0, gt=0)
    min_sats: int = Field(default=4, ge=0)
    max_jump_kmh: float = Field(default=300.0, gt=0)
    max_future_s: float = Field(default=600.0, ge=0)


class ReportingSettings(_Section):
    moving_interval_s: PositiveSeconds = 15.0
    parked_interval_s: PositiveSeconds = 600.0
    heartbeat_interval_s: PositiveSeconds = 120.0
    chase_interval_s: PositiveSeconds = 10.0
    moving_speed_mps: float = Field(default=1.5, ge=0)
    batch_max: int = Field(default=50, ge=1, le=5000)
    batch_linger_s: float = Field(default=0.5, ge=0)


class OutboxSettings(_Section):
    path: Path = Path("/var/lib/vgr/outbox.sqlite3")
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)


class UplinkSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8883, gt=0, lt=65536)
    tls: bool = True
    ca_file: Path | None = None
    username: str | None = None  # defaults to the device id
    password: str | None = None  # secret reference
    keepalive_s: int = Field(default=60, ge=5, le=3600)
    backoff_min_s: PositiveSeconds = 1.0
    backoff_max_s: PositiveSeconds = 60.0
    ack_timeout_s: PositiveSeconds = 20.0  # resend a batch not committed by then

    _check_password = field_validator("password")(_secret_ref)


class TrustSettings(_Section):
    platform_keys: list[Path] = Field(default_factory=lambda: [Path("/etc/vgr/platform.pub")])
    token_file: Path = Path("/etc/vgr/token.jwt")
    policy_file: Path = Path("/etc/vgr/policy.jwt")


class EdgeConfig(_Section):
    kind: Literal["edge"]
    device: DeviceSettings
    gnss: GnssSettings = GnssSettings()
    io: IoSettings = IoSettings()
    gate: GateSettings = GateSettings()
    reporting: ReportingSettings = ReportingSettings()
    outbox: OutboxSettings = OutboxSettings()
    uplink: UplinkSettings = UplinkSettings()
    trust: TrustSettings = TrustSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def parse_config(text: str, *, environ: Mapping[str, str], source: str) -> EdgeConfig:
    return validate_document(
        text, environ=environ, kind=KIND, source=source, validate=EdgeConfig.model_validate
    )


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> EdgeConfig:
    """Read, override from the environment and validate; raises ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"<file>: cannot read ({exc.strerror})"]) from None
    return parse_config(text, environ=os.environ if environ is None else environ, source=str(path))
