"""Manifests and atomic writes: a flipped byte, a missing file and a bad line are all caught."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from edge.installer.files import (
    Mismatch,
    manifest_text,
    parse_manifest,
    safe_relative,
    sha256_file,
    verify_tree,
    write_all_atomic,
    write_atomic,
)


def tree(root: Path) -> dict[str, str]:
    files = {"etc/vgr/edge.toml": b'kind = "edge"\n', "opt/vgr/vgr-agent.pyz": bytes(range(256))}
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def test_an_untouched_tree_verifies(tmp_path: Path) -> None:
    digests = tree(tmp_path)
    assert verify_tree(tmp_path, parse_manifest(manifest_text(digests))) == []


def test_one_flipped_bit_is_caught(tmp_path: Path) -> None:
    digests = tree(tmp_path)
    target = tmp_path / "opt/vgr/vgr-agent.pyz"
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    assert verify_tree(tmp_path, digests) == [
        Mismatch("opt/vgr/vgr-agent.pyz", "changed (sha256 differs from the manifest)")
    ]


def test_missing_files_and_directories_in_their_place_are_caught(tmp_path: Path) -> None:
    digests = tree(tmp_path)
    (tmp_path / "etc/vgr/edge.toml").unlink()
    (tmp_path / "etc/vgr/edge.toml").mkdir()
    (tmp_path / "opt/vgr/vgr-agent.pyz").unlink()
    problems = {m.path: m.problem for m in verify_tree(tmp_path, digests)}
    assert problems == {
        "etc/vgr/edge.toml": "not a regular file",
        "opt/vgr/vgr-agent.pyz": "missing",
    }


def test_the_manifest_is_sha256sum_format_and_bad_lines_are_refused() -> None:
    digests = {"b/x": "0" * 64, "a": "f" * 64}
    text = manifest_text(digests)
    assert text == f"{'f' * 64}  a\n{'0' * 64}  b/x\n"  # sorted, two spaces: sha256sum -c
    assert parse_manifest(text) == digests
    for bad in ["nothex  a", f"{'0' * 64}  /etc/passwd", f"{'0' * 64}  ../x", f"{'0' * 63}  a"]:
        with pytest.raises(ValueError, match=r"manifest line 1|unsafe path"):
            parse_manifest(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_manifest(f"{'0' * 64}  a\n{'1' * 64}  a\n")


def test_paths_from_a_bundle_must_stay_below_the_root() -> None:
    assert str(safe_relative("etc/vgr/edge.toml")) == "etc/vgr/edge.toml"
    for bad in ["", "/etc/shadow", "etc/../../x", "a\\b"]:
        with pytest.raises(ValueError, match="unsafe"):
            safe_relative(bad)


def test_atomic_writes_set_the_mode_and_leave_no_temporary_files(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt.password"
    write_atomic(secret, b"s3cret\n", 0o600)
    write_all_atomic([(tmp_path / "a", b"1", 0o644), (tmp_path / "b", b"2", 0o644)])
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "mqtt.password"]
    assert sha256_file(tmp_path / "a") == hashlib.sha256(b"1").hexdigest()


def test_a_failure_while_staging_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"old")
    with pytest.raises(OSError):  # the missing directory
        write_all_atomic([(tmp_path / "a", b"new", 0o644), (tmp_path / "nodir" / "b", b"x", 0o644)])
    assert (tmp_path / "a").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a"]
