"""``vgr edge bundle``: the agent, its config and trust files, a systemd unit, one tarball.

The approach (see ``docs``-worthy notes in the report of this tool):

- the agent's own code (``edge`` and ``protocols``, pure Python) is one
  zipapp, ``vgr-agent.pyz``, whose ``__main__`` is :mod:`edge.installer.entry`;
- its third-party dependencies cannot all live in a zipapp (msgspec is a
  compiled extension), so the bundle carries them as wheels in ``wheels/``, fetched by
  ``pip download --only-binary=:all:`` for the tracker's Python and platform
  (``--platform``, ``--python-version``; offline from a wheelhouse with
  ``--find-links``). ``install.sh prepare`` installs them, offline, into
  ``/opt/vgr/venv`` on the tracker at first start;
- ``--no-wheels`` leaves them out: the venv then sees the distribution's
  packages (``--system-site-packages``) and ``check-deps`` says what is missing.

``MANIFEST.sha256`` lists every file under ``root/`` (``sha256sum -c`` format);
``bundle.json`` says what the bundle is and which symlinks to make.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipapp
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Final, TextIO

from edge.installer import templates as t
from edge.installer.files import manifest_text, sha256_file, write_atomic

FORMAT: Final = 1
TOP: Final = "vgr-bundle"
ZIPAPP_NAME: Final = "vgr-agent.pyz"
PACKAGES: Final = ("edge", "protocols")
#: What the agent imports beyond the standard library (pinned to this environment's versions).
#: Not pydantic, cryptography, PyJWT, shapely or pyproj: the tracker's config, JWT checks and
#: region checks are pure Python (docs/edge-agent.md, "Footprint").
AGENT_DISTRIBUTIONS: Final = (
    "aiomqtt",
    "paho-mqtt",
    "pynmea2",
    "msgspec",
    "pyserial-asyncio",
)
ZIPAPP_MAIN = '''"""The VGR edge agent, as built by `vgr edge bundle`."""

import sys

from edge.installer.entry import main

sys.exit(main())
'''


class BundleError(Exception):
    """The bundle cannot be built; nothing was written."""


@dataclass(frozen=True, slots=True)
class WheelOptions:
    platforms: tuple[str, ...] = ()  # e.g. manylinux2014_aarch64; none = this machine
    python_version: str | None = None  # e.g. 3.11; default: this interpreter's
    find_links: Path | None = None  # a local wheelhouse: no index is asked


@dataclass(slots=True)
class Tree:
    """Files of the target root: relative path → (bytes or a file to copy, mode)."""

    files: dict[str, tuple[bytes | Path, int]] = field(default_factory=dict)

    def add(self, target: PurePosixPath, content: bytes | Path, mode: int = 0o644) -> None:
        self.files[str(target.relative_to("/"))] = (content, mode)


def requirements() -> str:
    lines = ["# The edge agent's third-party dependencies, pinned to the build's versions."]
    for name in AGENT_DISTRIBUTIONS:
        lines.append(f"{name}=={importlib.metadata.version(name)}")
    return "\n".join(lines) + "\n"


def build_zipapp(dest: Path) -> None:
    """The pure code of ``edge`` and ``protocols`` as one executable zip."""
    with tempfile.TemporaryDirectory(prefix="vgr-zipapp-") as tmp:
        stage = Path(tmp)
        for name in PACKAGES:
            module_file = importlib.import_module(name).__file__
            if module_file is None:
                msg = f"cannot locate the {name} package"
                raise BundleError(msg)
            shutil.copytree(
                Path(module_file).parent,
                stage / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        (stage / "__main__.py").write_text(ZIPAPP_MAIN, encoding="utf-8")
        zipapp.create_archive(stage, dest, interpreter="/usr/bin/env python3", compressed=True)


def download_wheels(requirements_file: Path, dest: Path, opts: WheelOptions, out: TextIO) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check"]
    cmd += ["--only-binary=:all:", "--dest", str(dest), "-r", str(requirements_file)]
    for platform in opts.platforms:
        cmd += ["--platform", platform]
    if opts.platforms or opts.python_version:
        version = opts.python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
        cmd += ["--python-version", version, "--implementation", "cp"]
    if opts.find_links is not None:
        cmd += ["--no-index", "--find-links", str(opts.find_links)]
    print(
        f"downloading wheels for {', '.join(opts.platforms) or 'this machine'}… ",
        end="",
        file=out,
        flush=True,
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print("failed", file=out)
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        msg = f"pip download failed:\n{tail}"
        raise BundleError(msg)
    print(f"ok ({len(list(dest.glob('*.whl')))} wheels)", file=out)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        msg = f"{what}: cannot read {path} ({exc.strerror})"
        raise BundleError(msg) from None


def config_tree(config: Path, tree: Tree, err: TextIO) -> dict[str, Any]:
    """Add the config and its trust files to ``tree``, with paths as on the tracker."""
    from datetime import datetime as _dt

    from edge.agent.trust import evaluate, load_keyring
    from edge.config import parse_config
    from edge.installer.render import HEADER, to_toml
    from protocols.configfile import ConfigError, parse_toml

    given = _read(config, "--config").decode("utf-8", "replace")
    try:
        cfg = parse_config(given, environ={}, source=str(config))  # our overrides stay here
        doc = parse_toml(given, source=str(config))  # the keys the file sets, as it sets them
    except ConfigError as exc:
        raise BundleError("\n".join(f"{exc.source}: {p}" for p in exc.problems)) from None
    try:
        keyring = load_keyring(cfg.trust.platform_keys)
    except (OSError, ValueError) as exc:
        raise BundleError(f"trust.platform_keys: {exc}") from None
    token = _read(cfg.trust.token_file, "trust.token_file")
    policy = _read(cfg.trust.policy_file, "trust.policy_file")
    trust = evaluate(
        keyring,
        token.decode("ascii", "replace"),
        policy.decode("ascii", "replace"),
        device_id=cfg.device.id,
        now=_dt.now(UTC),
    )
    if not trust.authorized:
        msg = f"the token and policy in {config} do not verify ({trust.reason}): re-provision"
        raise BundleError(msg)
    keys = []
    for i, path in enumerate(cfg.trust.platform_keys):
        name = "platform.pub" if len(cfg.trust.platform_keys) == 1 else f"platform-{i + 1}.pub"
        keys.append(str(t.CONFIG_DIR / name))
        tree.add(t.CONFIG_DIR / name, _read(path, "trust.platform_keys"))
    tree.add(t.TRUST_DIR / "token.jwt", token)
    tree.add(t.TRUST_DIR / "policy.jwt", policy)
    doc["trust"] = {
        "platform_keys": keys,
        "token_file": str(t.TRUST_DIR / "token.jwt"),
        "policy_file": str(t.TRUST_DIR / "policy.jwt"),
    }
    uplink = dict(doc.get("uplink", {}))
    if cfg.uplink.ca_file is not None:
        tree.add(t.CONFIG_DIR / "ca.pem", _read(cfg.uplink.ca_file, "uplink.ca_file"))
        uplink["ca_file"] = str(t.CONFIG_DIR / "ca.pem")
    ref = cfg.uplink.password
    if ref is not None and ref.startswith("file:"):
        secret = _read(Path(ref.removeprefix("file:")), "uplink.password")
        tree.add(t.CONFIG_DIR / "mqtt.password", secret, 0o600)
        uplink["password"] = f"file:{t.CONFIG_DIR / 'mqtt.password'}"
    elif ref is not None:
        name = ref.removeprefix("env:")
        print(
            f"warning: uplink.password is {ref}: put {name}=... into "
            f"{t.CONFIG_DIR}/agent.env on the tracker (mode 0600)",
            file=err,
        )
    else:
        print("warning: no uplink.password: the broker will refuse the agent", file=err)
    doc["uplink"] = uplink
    text = to_toml(doc, header=HEADER.format(tool="bundle"))
    try:
        parse_config(text, environ={}, source="bundled edge.toml")
    except ConfigError as exc:  # a bug here, not the installer's
        raise BundleError("; ".join(exc.problems)) from None
    tree.add(t.CONFIG_DIR / "edge.toml", text.encode())
    return {"device_id": cfg.device.id, "tenant": cfg.device.tenant, "outbox": str(cfg.outbox.path)}


def _extra_write_paths(outbox: str) -> list[str]:
    parent = PurePosixPath(outbox).parent
    return [] if parent == t.STATE_DIR or t.STATE_DIR in parent.parents else [str(parent)]


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build(
    config: Path,
    out_path: Path,
    *,
    wheels: WheelOptions | None,
    out: TextIO,
    err: TextIO,
) -> dict[str, Any]:
    """Write the bundle to ``out_path`` (atomically); return its ``bundle.json``."""
    tree = Tree()
    device = config_tree(config, tree, err)
    with tempfile.TemporaryDirectory(prefix="vgr-bundle-") as tmp:
        work = Path(tmp)
        req = work / "requirements.txt"
        req.write_text(requirements(), encoding="utf-8")
        tree.add(t.APP_DIR / "requirements.txt", req)
        print("building the agent zipapp… ", end="", file=out, flush=True)
        pyz = work / ZIPAPP_NAME
        build_zipapp(pyz)
        print(f"ok ({pyz.stat().st_size / 1024:.0f} KiB)", file=out)
        tree.add(t.APP_DIR / ZIPAPP_NAME, pyz, 0o755)
        if wheels is not None:
            wheel_dir = work / "wheels"
            wheel_dir.mkdir()
            download_wheels(req, wheel_dir, wheels, out)
            for wheel in sorted(wheel_dir.glob("*.whl")):
                tree.add(t.APP_DIR / "wheels" / wheel.name, wheel)
        tree.add(t.APP_DIR / "install.sh", t.INSTALL_SH.encode(), 0o755)
        unit = t.systemd_unit(_extra_write_paths(device["outbox"]))
        tree.add(t.UNIT_PATH, unit.encode())
        tree.add(t.SYSUSERS_PATH, t.SYSUSERS.encode())

        top = work / TOP
        root = top / "root"
        digests: dict[str, str] = {}
        for name, (content, mode) in sorted(tree.files.items()):
            dest = root / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, dest)
            else:
                dest.write_bytes(content)
            dest.chmod(mode)
            digests[name] = sha256_file(dest)
        (top / "MANIFEST.sha256").write_text(manifest_text(digests), encoding="utf-8")
        shutil.copyfile(root / str(t.APP_DIR.relative_to("/")) / "install.sh", top / "install.sh")
        (top / "install.sh").chmod(0o755)
        meta: dict[str, Any] = {
            "format": FORMAT,
            "agent_version": _agent_version(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **{k: device[k] for k in ("device_id", "tenant")},
            "python": (wheels.python_version if wheels else None)
            or f"{sys.version_info.major}.{sys.version_info.minor}",
            "wheels": wheels is not None,
            "platforms": list(wheels.platforms) if wheels and wheels.platforms else [],
            "files": len(digests),
            "bytes": sum((root / n).stat().st_size for n in digests),
            "links": {str(t.WANTS_LINK.relative_to("/")): str(t.UNIT_PATH)},
        }
        (top / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        print(f"packing {out_path}… ", end="", file=out, flush=True)
        packed = work / "bundle.tar.gz"
        with tarfile.open(packed, "w:gz", compresslevel=6) as tar:
            tar.add(top, arcname=TOP, filter=_normalise)
        write_atomic(out_path, packed.read_bytes(), 0o600)  # it holds the MQTT password
        print(f"ok ({out_path.stat().st_size / 2**20:.1f} MiB)", file=out)
    return meta


def _agent_version() -> str:
    from edge import __version__

    return __version__


def run(args: Any) -> int:
    wheels = None
    if not args.no_wheels:
        wheels = WheelOptions(
            platforms=tuple(args.platform or ()),
            python_version=args.python_version,
            find_links=args.find_links,
        )
    elif args.platform or args.python_version or args.find_links:
        print(
            "--platform, --python-version and --find-links need wheels (drop --no-wheels)",
            file=sys.stderr,
        )
        return 2
    try:
        meta = build(args.config, args.out, wheels=wheels, out=sys.stdout, err=sys.stderr)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    size = args.out.stat().st_size
    print(
        f"bundle for device {meta['device_id']}: {meta['files']} files, "
        f"{meta['bytes'] / 2**20:.1f} MiB unpacked, {size / 2**20:.1f} MiB packed"
        f"{'' if meta['wheels'] else ' (no wheels: the tracker must provide the dependencies)'}"
    )
    print(f"next: vgr edge flash --bundle {args.out} --target /mnt/tracker-root")
    return 0
