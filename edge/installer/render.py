"""The agent's ``edge.toml``, written by the tools (pure: text out, no I/O).

:func:`to_toml` writes the small TOML subset a config needs (top-level keys,
one level of tables, strings, numbers, booleans and lists of those); the
result is always read back through :func:`edge.config.parse_config` before it
is written anywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = (
    "# Edge agent configuration written by `vgr edge {tool}`.\n"
    "# Check it with: vgr check-config FILE; trust material: vgr edge verify-token --config FILE\n"
)


def _value(v: object, key: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            msg = f"{key}: {v} cannot be written to TOML"
            raise ValueError(msg)
        return repr(v)
    if isinstance(v, Path):
        v = str(v)
    if isinstance(v, str):
        # A JSON string is a valid TOML basic string (same escapes, \uXXXX for controls).
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(item, key) for item in v) + "]"
    msg = f"{key}: {type(v).__name__} cannot be written to TOML here"
    raise TypeError(msg)


def _key(name: str) -> str:
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        msg = f"not a bare TOML key: {name!r}"
        raise ValueError(msg)
    return name


def to_toml(doc: Mapping[str, Any], *, header: str = "") -> str:
    """``doc`` as TOML: scalars first, then one ``[table]`` per mapping, in order."""
    lines = [header.rstrip("\n")] if header else []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for name, value in doc.items():
        if isinstance(value, Mapping):
            tables.append((name, value))
        elif value is not None:
            lines.append(f"{_key(name)} = {_value(value, name)}")
    for name, table in tables:
        lines.extend(["", f"[{_key(name)}]"])
        for key, value in table.items():
            if isinstance(value, Mapping):
                msg = f"{name}.{key}: nested tables are not used in agent configs"
                raise TypeError(msg)
            if value is not None:
                lines.append(f"{_key(key)} = {_value(value, f'{name}.{key}')}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class TrustFiles:
    """Where the agent finds its trust material and secrets on the tracker."""

    platform_key: Path
    token: Path
    policy: Path
    password: Path
    ca: Path | None = None

    @classmethod
    def in_dir(cls, directory: Path, *, with_ca: bool) -> TrustFiles:
        return cls(
            platform_key=directory / "platform.pub",
            token=directory / "token.jwt",
            policy=directory / "policy.jwt",
            password=directory / "mqtt.password",
            ca=directory / "ca.pem" if with_ca else None,
        )


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """What provisioning decides about one agent; everything else keeps its default."""

    device_id: str
    tenant: str
    kind: str
    host: str
    port: int
    tls: bool
    files: TrustFiles
    outbox: Path
    username: str | None = None  # only when the broker's user name is not the device id
    gnss: Mapping[str, object] = field(default_factory=dict)


def edge_document(s: AgentSettings) -> dict[str, Any]:
    """The config document of a provisioned agent."""
    uplink: dict[str, Any] = {"host": s.host, "port": s.port, "tls": s.tls}
    if s.files.ca is not None:
        uplink["ca_file"] = s.files.ca
    if s.username is not None:
        uplink["username"] = s.username
    uplink["password"] = f"file:{s.files.password}"
    doc: dict[str, Any] = {
        "kind": "edge",
        "device": {"id": s.device_id, "tenant": s.tenant, "kind": s.kind},
    }
    if s.gnss:
        doc["gnss"] = dict(s.gnss)
    doc["outbox"] = {"path": s.outbox}
    doc["uplink"] = uplink
    doc["trust"] = {
        "platform_keys": [s.files.platform_key],
        "token_file": s.files.token,
        "policy_file": s.files.policy,
    }
    return doc


def render_edge_config(s: AgentSettings, *, tool: str = "provision") -> str:
    return to_toml(edge_document(s), header=HEADER.format(tool=tool))
