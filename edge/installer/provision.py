"""``vgr edge provision``: register, bind, get credentials, verify them, write the agent's files.

Nothing is written until the token and policy verify with the platform key
that came with them (and, with ``--expect-platform-key``, that key is the one
the installer was told to expect). Then every file is staged beside its final
name and renamed into place, the config last.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from edge.installer import inputs
from edge.installer.api import ApiError, Credentials, NetworkError, ProvisionApi
from edge.installer.files import write_all_atomic
from edge.installer.render import AgentSettings, TrustFiles, render_edge_config

DEFAULT_OUT = Path("/etc/vgr")
DEFAULT_OUTBOX = Path("/var/lib/vgr/outbox.sqlite3")
CONFIG_NAME = "edge.toml"


class InputError(Exception):
    """Bad input from the installer: nothing was sent."""


class RefusedError(Exception):
    """What the cloud sent does not hold up: nothing was written."""


@dataclass(frozen=True, slots=True)
class Order:
    """One provisioning job, as the installer asked for it."""

    imei: str
    kind: str
    vin: str
    contract_id: str
    out: Path = DEFAULT_OUT
    plate: str | None = None
    address: str | None = None
    adcode: str | None = None
    areas: Mapping[str, Any] = field(default_factory=dict)  # {"allowed": [...], "forbidden": [...]}
    gnss: Mapping[str, object] = field(default_factory=dict)
    outbox: Path = DEFAULT_OUTBOX
    uplink_host: str | None = None
    expect_platform_key: bytes | None = None

    def problems(self) -> list[str]:
        checks = [
            ("--imei", inputs.imei_problem(self.imei)),
            ("--vin", inputs.vin_problem(self.vin)),
            ("--contract", inputs.contract_problem(self.contract_id)),
            ("--plate", self.plate and inputs.text_problem(self.plate, max_chars=16)),
            ("--address", self.address and inputs.text_problem(self.address, max_chars=500)),
            ("--adcode", self.adcode and inputs.adcode_problem(self.adcode)),
        ]
        out = [f"{flag}: {problem}" for flag, problem in checks if problem]
        source = self.gnss.get("source")
        if source in ("serial", "pty", "file") and not self.gnss.get("path"):
            out.append(f"--gnss-path: a {source} GNSS source needs a path")
        if not self.outbox.is_absolute():
            out.append("--outbox: must be an absolute path")
        return out

    def binding(self) -> dict[str, Any]:
        body: dict[str, Any] = {"vin": self.vin, "contract_id": self.contract_id}
        optional = {
            "plate": self.plate,
            "declared_address": self.address,
            "declared_adcode": self.adcode,
        }
        body |= {k: v for k, v in optional.items() if v is not None}
        return body | dict(self.areas)


def read_installer_key(
    *, key_env: str | None, key_file: Path | None, environ: Mapping[str, str], err: TextIO
) -> str:
    """The installer key from the environment or a file; never from the command line."""
    if key_env is not None:
        problem = inputs.env_name_problem(key_env)
        if problem:
            raise InputError(f"--key-env: {problem}")
        key = environ.get(key_env, "").strip()
        if not key:
            raise InputError(f"--key-env: environment variable {key_env} is not set or empty")
    elif key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
            mode = key_file.stat().st_mode
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--key-file: cannot read {key_file} ({exc})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(f"warning: {key_file} is readable by others; chmod 600 it", file=err)
        if not key:
            raise InputError(f"--key-file: {key_file} is empty")
    else:
        raise InputError("give the installer key with --key-env NAME or --key-file PATH")
    if any(c.isspace() for c in key):
        raise InputError("the installer key must be one word (no spaces or line breaks)")
    return key


def read_areas(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"--areas: cannot read {path} ({exc})") from None
    if not isinstance(doc, dict) or not set(doc) <= {"allowed", "forbidden"}:
        msg = '--areas: the file is a JSON object {"allowed": [...], "forbidden": [...]}'
        raise InputError(msg)
    if not all(isinstance(v, list) for v in doc.values()):
        raise InputError("--areas: allowed and forbidden are lists of areas")
    return doc


def verify_credentials(order: Order, creds: Credentials, *, now: datetime) -> str:
    """The tenant the token names; raises RefusedError unless everything checks out."""
    from edge.agent.trust import evaluate
    from protocols.token_verify import Keyring, key_id, load_public_key_pem

    if creds.device_id != order.imei:
        msg = f"credentials are for device {creds.device_id}, not {order.imei}"
        raise RefusedError(msg)
    try:
        public = load_public_key_pem(creds.platform_public_key_pem.encode())
    except (ValueError, TypeError) as exc:
        raise RefusedError(f"the platform key is not an Ed25519 public key ({exc})") from None
    if creds.platform_key_id is not None and key_id(public) != creds.platform_key_id:
        raise RefusedError("the platform key does not match its key id: damaged answer")
    if order.expect_platform_key is not None:
        try:
            expected = load_public_key_pem(order.expect_platform_key)
        except (ValueError, TypeError) as exc:
            raise RefusedError(f"--expect-platform-key: not an Ed25519 key ({exc})") from None
        if expected != public:
            msg = "the cloud signed with a platform key other than --expect-platform-key"
            raise RefusedError(msg)
    trust = evaluate(Keyring([public]), creds.token, creds.policy, device_id=order.imei, now=now)
    if not trust.authorized or trust.claims is None:
        raise RefusedError(f"token or policy does not verify: {trust.reason}")
    if trust.policy is None:
        raise RefusedError("the cloud sent no signed policy")
    if trust.claims.vin != order.vin:
        msg = f"the token is for VIN {trust.claims.vin}, not {order.vin}"
        raise RefusedError(msg)
    return trust.claims.tenant


def agent_settings(order: Order, creds: Credentials, tenant: str, err: TextIO) -> AgentSettings:
    mqtt = creds.mqtt
    if mqtt.tls_port is not None:
        port, tls = mqtt.tls_port, True
    elif mqtt.port is not None:
        port, tls = mqtt.port, False
        print("warning: the cloud offers no TLS port; the tracker will use plain MQTT", file=err)
    else:
        raise RefusedError("the cloud gave no broker port")
    if mqtt.client_id != order.imei:
        print(f"warning: the broker expects client id {mqtt.client_id}", file=err)
    return AgentSettings(
        device_id=order.imei,
        tenant=tenant,
        kind=order.kind,
        host=order.uplink_host or mqtt.host,
        port=port,
        tls=tls,
        files=TrustFiles.in_dir(order.out.absolute(), with_ca=bool(creds.ca_pem)),
        outbox=order.outbox,
        username=None if mqtt.username == order.imei else mqtt.username,
        gnss=order.gnss,
    )


def output_files(
    settings: AgentSettings, creds: Credentials, config: str
) -> list[tuple[Path, bytes, int]]:
    f = settings.files
    files = [
        (f.platform_key, creds.platform_public_key_pem.encode(), 0o644),
        (f.token, creds.token.encode() + b"\n", 0o644),
        (f.policy, creds.policy.encode() + b"\n", 0o644),
        (f.password, creds.mqtt.password.encode() + b"\n", 0o600),
    ]
    if f.ca is not None and creds.ca_pem:
        files.append((f.ca, creds.ca_pem.encode(), 0o644))
    directory = f.token.parent
    files.append((directory / CONFIG_NAME, config.encode(), 0o644))  # last: it names the others
    return files


def _step(out: TextIO, text: str) -> None:
    print(f"{text}… ", end="", file=out, flush=True)


def provision(order: Order, api: ProvisionApi, *, out: TextIO, err: TextIO) -> int:
    """Run one provisioning job; 0 when the files are written, 1 otherwise."""
    from edge.config import parse_config
    from protocols.configfile import ConfigError

    try:
        _step(out, f"registering device {order.imei} ({order.kind})")
        device = api.register(order.imei, order.kind)
        print(f"ok (tenant {device.tenant})", file=out)
        _step(out, f"binding to VIN {order.vin}, contract {order.contract_id}")
        api.bind(order.imei, order.binding())
        print("ok", file=out)
        _step(out, "requesting credentials")
        creds = api.credentials(order.imei)
        print(f"ok (token {creds.token_id}, policy {creds.policy_id})", file=out)
        _step(out, "verifying token and policy with the platform key")
        tenant = verify_credentials(order, creds, now=datetime.now(UTC))
        print("ok", file=out)
        settings = agent_settings(order, creds, tenant, err)
        config = render_edge_config(settings)
        parse_config(config, environ={}, source="edge.toml")
    except (ApiError, NetworkError, RefusedError, ConfigError) as exc:
        print("failed", file=out, flush=True)
        text = exc.describe() if isinstance(exc, ApiError) else str(exc)
        print(f"error: {text}", file=err)
        if isinstance(exc, ApiError | NetworkError):
            print("  nothing was written here; running the same command again is safe", file=err)
        if isinstance(exc, RefusedError):
            print(
                "  nothing was written; do not install this tracker until this is solved", file=err
            )
        return 1
    files = output_files(settings, creds, config)
    names = " ".join(path.name for path, _, _ in files)
    _step(out, f"writing {order.out}: {names}")
    try:
        order.out.mkdir(parents=True, exist_ok=True)
        write_all_atomic(files)
    except OSError as exc:
        print("failed", file=out, flush=True)
        print(f"error: cannot write into {order.out}: {exc.strerror or exc}", file=err)
        return 1
    print("ok", file=out)
    config_path = order.out.absolute() / CONFIG_NAME
    print(f"device {order.imei} provisioned for tenant {tenant}", file=out)
    print(f"next: vgr edge selftest --config {config_path}", file=out)
    return 0


def order_from_args(args: Any) -> Order:
    """The job the command line describes; raises InputError listing every problem."""
    problem = inputs.api_url_problem(args.api)
    if problem:
        raise InputError(f"--api: {problem}")
    gnss = {
        "source": args.gnss_source,
        "path": args.gnss_path,
        "baudrate": args.gnss_baudrate,
        "host": args.gnss_host,
        "port": args.gnss_port,
    }
    expect = None
    if args.expect_platform_key is not None:
        try:
            expect = args.expect_platform_key.read_bytes()
        except OSError as exc:
            raise InputError(f"--expect-platform-key: {exc.strerror}") from None
    order = Order(
        imei=args.imei.strip(),
        kind=args.kind,
        vin=args.vin.strip(),
        contract_id=args.contract.strip(),
        out=args.out,
        plate=args.plate,
        address=args.address,
        adcode=args.adcode,
        areas=read_areas(args.areas) if args.areas else {},
        gnss={k: v for k, v in gnss.items() if v is not None},
        outbox=args.outbox,
        uplink_host=args.uplink_host,
        expect_platform_key=expect,
    )
    problems = order.problems()
    if problems:
        raise InputError("\n".join(problems))
    return order


def run(args: Any) -> int:
    """The command-line entry (arguments from :mod:`edge.installer.cli`)."""
    err = sys.stderr
    try:
        order = order_from_args(args)
        key = read_installer_key(
            key_env=args.key_env, key_file=args.key_file, environ=os.environ, err=err
        )
    except InputError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=err)
        return 2
    if args.api.startswith("http://"):
        print(
            "warning: the API address is plain HTTP: the installer key is sent unencrypted",
            file=err,
        )
    api = ProvisionApi(args.api, key, timeout_s=args.timeout, cafile=args.api_ca)
    return provision(order, api, out=sys.stdout, err=err)
