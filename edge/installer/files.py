"""Atomic writes and sha256 manifests (``sha256sum`` format, so ``sha256sum -c`` reads it)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Final

CHUNK: Final = 1024 * 1024
_LINE = re.compile(r"^(?P<hex>[0-9a-f]{64}) [ *](?P<path>.+)$")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def stage(path: Path, data: bytes, mode: int) -> Path:
    """Write ``data`` to a temporary file beside ``path`` (synced, with ``mode``); return it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not loosen or tighten it
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` in one rename: readers see the old or the new file."""
    tmp = stage(path, data, mode)
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_all_atomic(files: Iterable[tuple[Path, bytes, int]]) -> None:
    """Stage every file, then rename them in order: a failure while staging changes nothing."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data, mode in files:
            staged.append((stage(path, data, mode), path))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in staged:
        tmp.replace(path)
    for directory in {path.parent for _, path in staged}:
        _fsync_dir(directory)


def sha256_stream(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return sha256_stream(fh)


def safe_relative(name: str) -> PurePosixPath:
    """``name`` as a relative path that stays below its root; raises ValueError otherwise."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or "\n" in name:
        msg = f"unsafe path in bundle: {name!r}"
        raise ValueError(msg)
    return path


def manifest_text(digests: Mapping[str, str]) -> str:
    return "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))


def parse_manifest(text: str) -> dict[str, str]:
    """``{relative path: sha256}``; raises ValueError naming the first bad line."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            msg = f"manifest line {number} is not '<sha256>  <path>'"
            raise ValueError(msg)
        name = str(safe_relative(match["path"]))
        if name in out:
            msg = f"manifest line {number}: {name} is listed twice"
            raise ValueError(msg)
        out[name] = match["hex"]
    return out


@dataclass(frozen=True, slots=True)
class Mismatch:
    path: str
    problem: str  # "missing", "changed", "not a regular file", "unreadable: …"

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def verify_tree(root: Path, digests: Mapping[str, str]) -> list[Mismatch]:
    """Every file of the manifest below ``root``, compared by sha256; empty when all match."""
    problems: list[Mismatch] = []
    for name in sorted(digests):
        path = root / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            problems.append(Mismatch(name, "not a regular file"))
            continue
        try:
            actual = sha256_file(path)
        except FileNotFoundError:
            problems.append(Mismatch(name, "missing"))
            continue
        except OSError as exc:
            problems.append(Mismatch(name, f"unreadable: {exc.strerror}"))
            continue
        if actual != digests[name]:
            problems.append(Mismatch(name, "changed (sha256 differs from the manifest)"))
    return problems
