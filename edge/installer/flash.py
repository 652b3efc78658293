"""``vgr edge flash``: write a bundle into a tracker's root filesystem and verify it.

Three passes: the bundle is checked against its own manifest (a damaged
download is refused before anything is written); its ``root/`` is written
into the target, each file staged beside its final name and renamed; then
every file is read back from the target and compared with the manifest, and
the enable symlink is checked. ``--verify-only`` does the last pass alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TextIO

from edge.installer.bundle import TOP
from edge.installer.files import CHUNK, Mismatch, parse_manifest, safe_relative, verify_tree

ROOT_PREFIX: Final = f"{TOP}/root/"
ALLOWED_MODES: Final = 0o777


class FlashError(Exception):
    """The bundle or the target cannot be used; says what was (not) written."""


@dataclass(frozen=True, slots=True)
class Bundle:
    manifest: dict[str, str]
    meta: dict[str, Any]
    members: dict[str, tarfile.TarInfo]  # relative path under root/ → member

    @property
    def links(self) -> dict[str, str]:
        links = self.meta.get("links", {})
        return {str(safe_relative(k)): str(v) for k, v in links.items()}

    @property
    def total_bytes(self) -> int:
        return sum(m.size for m in self.members.values())


def refuse_target(target: Path, *, i_mean_root: bool) -> str | None:
    """Why ``target`` must not be flashed into, or ``None``."""
    resolved = target.resolve()
    if resolved == Path("/") and not i_mean_root:
        return (
            f"{target} is this machine's root filesystem; flash writes a tracker's root "
            "filesystem mounted elsewhere (e.g. /mnt/tracker). Add --i-mean-root only if "
            "this machine is the tracker"
        )
    if not resolved.is_dir():
        return f"{target} is not a directory (mount the tracker's root filesystem there)"
    return None


@contextmanager
def open_bundle(path: Path) -> Iterator[tuple[tarfile.TarFile, Bundle]]:
    try:
        tar = tarfile.open(path, "r:gz")  # noqa: SIM115 - closed below
    except (OSError, tarfile.TarError) as exc:
        raise FlashError(f"{path}: not a readable bundle ({exc})") from None
    try:
        yield tar, _index(tar)
    finally:
        tar.close()


def _text(tar: tarfile.TarFile, name: str) -> str:
    try:
        fh = tar.extractfile(f"{TOP}/{name}")
    except KeyError:
        fh = None
    if fh is None:
        raise FlashError(f"the bundle has no {name}")
    with fh:
        return fh.read().decode("utf-8")


def _index(tar: tarfile.TarFile) -> Bundle:
    try:
        manifest = parse_manifest(_text(tar, "MANIFEST.sha256"))
        meta = json.loads(_text(tar, "bundle.json"))
        members: dict[str, tarfile.TarInfo] = {}
        for member in tar.getmembers():
            if not member.name.startswith(ROOT_PREFIX):
                continue
            rel = str(safe_relative(member.name.removeprefix(ROOT_PREFIX)))
            if member.isfile():
                members[rel] = member
            elif not member.isdir():
                raise FlashError(f"{member.name}: only files and directories may be flashed")
    except (ValueError, tarfile.TarError, UnicodeDecodeError) as exc:
        raise FlashError(f"damaged bundle: {exc}") from None
    if set(members) != set(manifest):
        extra = sorted(set(members) ^ set(manifest))[:5]
        raise FlashError(f"the bundle's files and its manifest disagree: {', '.join(extra)}")
    return Bundle(manifest, meta, members)


def _copy(src: IO[bytes], dst: IO[bytes] | None) -> str:
    digest = hashlib.sha256()
    while chunk := src.read(CHUNK):
        digest.update(chunk)
        if dst is not None:
            dst.write(chunk)
    return digest.hexdigest()


def check_bundle(tar: tarfile.TarFile, bundle: Bundle) -> None:
    """Every file of the bundle against its manifest, before anything is written."""
    for rel, member in sorted(bundle.members.items()):
        fh = tar.extractfile(member)
        if fh is None:
            raise FlashError(f"{rel}: unreadable in the bundle")
        with fh:
            if _copy(fh, None) != bundle.manifest[rel]:
                raise FlashError(f"damaged bundle: {rel} differs from its manifest")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _write_member(src: IO[bytes], dest: Path, mode: int, expected: str) -> None:
    """Stage ``src`` beside ``dest`` and rename it into place if its sha256 is ``expected``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.flash-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as dst:
            os.fchmod(dst.fileno(), mode)
            digest = _copy(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if digest != expected:
        tmp.unlink(missing_ok=True)
        raise FlashError(f"{dest}: changed while reading the bundle")
    tmp.replace(dest)


def write_files(tar: tarfile.TarFile, bundle: Bundle, target: Path, out: TextIO) -> None:
    total, done = bundle.total_bytes, 0
    count = len(bundle.members)
    for i, (rel, member) in enumerate(sorted(bundle.members.items()), 1):
        fh = tar.extractfile(member)
        if fh is None:
            raise FlashError(f"{rel}: unreadable in the bundle")
        with fh:
            _write_member(fh, target / rel, member.mode & ALLOWED_MODES, bundle.manifest[rel])
        done += member.size
        print(
            f"[{i:>{len(str(count))}}/{count}] {rel} ({_human(member.size)}; "
            f"{_human(done)} of {_human(total)})",
            file=out,
            flush=True,
        )
    for link, points_to in bundle.links.items():
        path = target / link
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(points_to)
        print(f"link {link} -> {points_to}", file=out)
    os.sync()


def verify_target(bundle: Bundle, target: Path) -> list[Mismatch]:
    problems = verify_tree(target, bundle.manifest)
    for link, points_to in sorted(bundle.links.items()):
        path = target / link
        if not path.is_symlink():
            problems.append(Mismatch(link, "enable symlink missing"))
        elif str(path.readlink()) != points_to:
            problems.append(Mismatch(link, f"points to {path.readlink()}, not {points_to}"))
    return problems


def flash(
    bundle_path: Path,
    target: Path,
    *,
    i_mean_root: bool = False,
    verify_only: bool = False,
    out: TextIO,
    err: TextIO,
) -> int:
    refusal = refuse_target(target, i_mean_root=i_mean_root)
    if refusal:
        print(f"refused: {refusal}", file=err)
        return 2
    try:
        with open_bundle(bundle_path) as (tar, bundle):
            device = bundle.meta.get("device_id", "?")
            if not verify_only:
                print(
                    f"checking {bundle_path} (device {device}, {len(bundle.members)} files)… ",
                    end="",
                    file=out,
                    flush=True,
                )
                check_bundle(tar, bundle)
                print("ok", file=out)
                print(f"writing into {target}", file=out)
                write_files(tar, bundle, target, out)
            print(f"verifying {target} against the manifest… ", end="", file=out, flush=True)
            problems = verify_target(bundle, target)
    except FlashError as exc:
        print(f"error: {exc}", file=err)
        return 1
    except OSError as exc:
        print(f"error: writing into {target} failed: {exc}", file=err)
        return 1
    if problems:
        print("FAILED", file=out)
        for problem in problems:
            print(f"mismatch: {problem}", file=err)
        print(
            f"{len(problems)} file(s) differ from the bundle: flash again, and if it persists "
            "the storage is failing",
            file=err,
        )
        return 1
    print(f"ok ({len(bundle.manifest)} files, {len(bundle.links)} links)", file=out)
    return 0


def run(args: Any) -> int:
    return flash(
        args.bundle,
        args.target,
        i_mean_root=args.i_mean_root,
        verify_only=args.verify_only,
        out=sys.stdout,
        err=sys.stderr,
    )
