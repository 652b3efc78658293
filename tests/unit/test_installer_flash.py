"""``vgr edge flash`` on hand-made bundles: refusals, progress, verification, damage."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import tarfile
from pathlib import Path

import pytest

from edge.installer.flash import flash, refuse_target

LINK = "etc/systemd/system/multi-user.target.wants/vgr-agent.service"
FILES = {
    "etc/vgr/edge.toml": (b'kind = "edge"\n', 0o644),
    "etc/vgr/mqtt.password": (b"s3cret\n", 0o600),
    "opt/vgr/install.sh": (b"#!/bin/sh\n", 0o755),
    "etc/systemd/system/vgr-agent.service": (b"[Unit]\n", 0o644),
}


def make_bundle(
    path: Path,
    files: dict[str, tuple[bytes, int]] = FILES,
    *,
    manifest: dict[str, bytes] | None = None,
    extra_member: str | None = None,
) -> Path:
    """A bundle as `vgr edge bundle` lays it out; ``manifest`` overrides what it claims."""
    claimed = manifest if manifest is not None else {n: d for n, (d, _) in files.items()}
    lines = "".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(claimed.items()))
    meta = {
        "format": 1,
        "device_id": "860000000000017",
        "links": {LINK: "/etc/systemd/system/vgr-agent.service"},
    }

    def add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w:gz") as tar:
        add(tar, "vgr-bundle/MANIFEST.sha256", lines.encode())
        add(tar, "vgr-bundle/bundle.json", json.dumps(meta).encode())
        for name, (data, mode) in files.items():
            add(tar, f"vgr-bundle/root/{name}", data, mode)
        if extra_member:
            add(tar, extra_member, b"x")
    return path


def run(bundle: Path, target: Path, **kw: bool) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = flash(bundle, target, out=out, err=err, **kw)
    return code, out.getvalue(), err.getvalue()


def test_flashing_into_slash_needs_the_flag(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b.tar.gz")
    code, _, err = run(bundle, Path("/"))
    assert code == 2
    assert "--i-mean-root" in err
    (tmp_path / "alias").symlink_to("/")
    assert run(bundle, tmp_path / "alias")[0] == 2  # a path that resolves to / is / too
    assert refuse_target(Path("/"), i_mean_root=True) is None
    assert "not a directory" in (refuse_target(tmp_path / "nope", i_mean_root=False) or "")


def test_flash_writes_modes_and_the_enable_link_then_verifies(tmp_path: Path) -> None:
    bundle, root = make_bundle(tmp_path / "b.tar.gz"), tmp_path / "root"
    root.mkdir()
    code, out, err = run(bundle, root)
    assert (code, err) == (0, "")
    assert "[4/4] opt/vgr/install.sh" in out
    assert "ok (4 files, 1 links)" in out
    for name, (data, mode) in FILES.items():
        assert (root / name).read_bytes() == data
        assert stat.S_IMODE((root / name).stat().st_mode) == mode
    assert str((root / LINK).readlink()) == "/etc/systemd/system/vgr-agent.service"
    assert run(bundle, root)[0] == 0  # flashing again replaces the files and the link


def test_a_changed_file_on_the_target_fails_verification(tmp_path: Path) -> None:
    bundle, root = make_bundle(tmp_path / "b.tar.gz"), tmp_path / "root"
    root.mkdir()
    assert run(bundle, root)[0] == 0
    toml = root / "etc/vgr/edge.toml"
    data = bytearray(toml.read_bytes())
    data[0] ^= 0x20
    toml.write_bytes(bytes(data))
    (root / LINK).unlink()
    code, out, err = run(bundle, root, verify_only=True)
    assert code == 1
    assert "FAILED" in out
    assert "mismatch: etc/vgr/edge.toml: changed" in err
    assert f"mismatch: {LINK}: enable symlink missing" in err


def test_a_damaged_bundle_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    claimed = {n: d for n, (d, _) in FILES.items()} | {"etc/vgr/edge.toml": b"other"}
    bundle, root = make_bundle(tmp_path / "b.tar.gz", manifest=claimed), tmp_path / "root"
    root.mkdir()
    code, _, err = run(bundle, root)
    assert code == 1
    assert "damaged bundle: etc/vgr/edge.toml differs from its manifest" in err
    assert list(root.iterdir()) == []


@pytest.mark.parametrize(
    ("files", "manifest", "message"),
    [
        ({"../escape": (b"x", 0o644)}, None, "unsafe path"),
        (FILES, {"etc/vgr/edge.toml": b'kind = "edge"\n'}, "disagree"),
    ],
)
def test_bundles_that_do_not_add_up_are_refused(
    tmp_path: Path,
    files: dict[str, tuple[bytes, int]],
    manifest: dict[str, bytes] | None,
    message: str,
) -> None:
    bundle, root = make_bundle(tmp_path / "b.tar.gz", files, manifest=manifest), tmp_path / "r"
    root.mkdir()
    code, _, err = run(bundle, root)
    assert code == 1
    assert message in err
    assert list(root.iterdir()) == []
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    assert "not a readable bundle" in run(tmp_path / "junk.tar.gz", root)[2]
