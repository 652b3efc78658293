"""The edge agent's settings: one typed model, loaded from TOML with env overrides.

``vgr check-config FILE`` validates a file without starting anything and
lists every problem as ``key: problem``. Unknown keys are errors. Secrets (the
MQTT password) are references: ``env:NAME`` or ``file:/path``.

The model is msgspec Structs, not pydantic like the cloud's: pydantic alone
costs the tracker ~7 MB of RSS, and the agent decodes its messages with msgspec
anyway. :func:`protocols.structconfig.convert_settings` reports all problems at
once, as pydantic did.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct, field

from protocols.configfile import ConfigError, validate_document
from protocols.secrets import SECRET_REF
from protocols.structconfig import convert_settings

KIND = "edge"
PositiveSeconds = Annotated[float, Meta(gt=0)]
Port = Annotated[int, Meta(gt=0, lt=65536)]
DeviceIdSetting = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[^/+#$\x00 ]+$",
        description="1-64 characters without '/', '+', '#', '$' or spaces (a device id)",
    ),
]
SecretRef = Annotated[
    str,
    Meta(pattern=SECRET_REF.pattern, description="a secret reference: env:NAME or file:/path"),
]


class _Section(Struct, frozen=True, forbid_unknown_fields=True):
    """Settings sections: immutable, unknown keys refused."""


class DeviceSettings(_Section, frozen=True, kw_only=True):
    id: DeviceIdSetting
    tenant: Annotated[str, Meta(min_length=1, max_length=64)]
    kind: Literal["wired", "wireless"] = "wired"


class GnssSettings(_Section, frozen=True, kw_only=True):
    source: Literal["serial", "tcp", "pty", "file", "stdin"] = "serial"
    path: str | None = "/dev/ttyUSB0"  # serial device, pty or file
    baudrate: Annotated[int, Meta(gt=0)] = 9600
    host: str = "127.0.0.1"  # tcp source
    port: Port = 10110
    max_line_bytes: Annotated[int, Meta(ge=82, le=4096)] = 512
    fix_timeout_s: PositiveSeconds = 300.0


class IoSettings(_Section, frozen=True, kw_only=True):
    """The tracker's hardware I/O channel (protocols/hwio.py JSON lines); none if bare."""

    source: Literal["none", "serial", "pty", "tcp", "file", "stdin"] = "none"
    path: str | None = None
    host: str = "127.0.0.1"
    port: Port = 10111


class GateSettings(_Section, frozen=True, kw_only=True):
    max_hdop: Annotated[float, Meta(gt=0)] = 5.0
    min_sats: Annotated[int, Meta(ge=0)] = 4
    max_jump_kmh: Annotated[float, Meta(gt=0)] = 300.0
    max_future_s: Annotated[float, Meta(ge=0)] = 600.0


class ReportingSettings(_Section, frozen=True, kw_only=True):
    moving_interval_s: PositiveSeconds = 15.0
    parked_interval_s: PositiveSeconds = 600.0
    heartbeat_interval_s: PositiveSeconds = 120.0
    chase_interval_s: PositiveSeconds = 10.0
    moving_speed_mps: Annotated[float, Meta(ge=0)] = 1.5
    batch_max: Annotated[int, Meta(ge=1, le=5000)] = 50
    batch_linger_s: Annotated[float, Meta(ge=0)] = 0.5


class OutboxSettings(_Section, frozen=True, kw_only=True):
    path: Path = Path("/var/lib/vgr/outbox.sqlite3")
    max_bytes: Annotated[int, Meta(ge=1024 * 1024)] = 64 * 1024 * 1024


class UplinkSettings(_Section, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Port = 8883
    tls: bool = True
    ca_file: Path | None = None
    username: str | None = None  # defaults to the device id
    password: SecretRef | None = None
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 60
    backoff_min_s: PositiveSeconds = 1.0
    backoff_max_s: PositiveSeconds = 60.0
    ack_timeout_s: PositiveSeconds = 20.0  # resend a batch not committed by then


class TrustSettings(_Section, frozen=True, kw_only=True):
    platform_keys: list[Path] = field(default_factory=lambda: [Path("/etc/vgr/platform.pub")])
    token_file: Path = Path("/etc/vgr/token.jwt")
    policy_file: Path = Path("/etc/vgr/policy.jwt")


class EdgeConfig(_Section, frozen=True, kw_only=True):
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


def validate(doc: Mapping[str, Any]) -> EdgeConfig:
    """A parsed document as an EdgeConfig; SettingsError listing every bad key."""
    return convert_settings(doc, EdgeConfig)


def parse_config(text: str, *, environ: Mapping[str, str], source: str) -> EdgeConfig:
    return validate_document(text, environ=environ, kind=KIND, source=source, validate=validate)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> EdgeConfig:
    """Read, override from the environment and validate; raises ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"<file>: cannot read ({exc.strerror})"]) from None
    return parse_config(text, environ=os.environ if environ is None else environ, source=str(path))
