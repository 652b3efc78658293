"""Rendering and writing Mosquitto's password and ACL files; the SIGHUP reload hook."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.localsvc import hash_password
from cloud.registry.broker_auth import (
    SERVICE_ACL,
    BrokerFiles,
    BrokerSyncError,
    ServiceAccount,
    render_acl_file,
    render_password_file,
    sighup_reloader,
    write_atomic,
)
from cloud.registry.ids import with_check_digit
from cloud.registry.model import BrokerCredential
from protocols.topics import broker_acl_patterns

DEV_A = with_check_digit("35000000000001")
DEV_B = with_check_digit("35000000000002")
HASH = hash_password("secret")


def creds(*names: str) -> list[BrokerCredential]:
    return [BrokerCredential(name, HASH) for name in names]


def test_password_file_has_devices_then_accounts() -> None:
    ingest = ServiceAccount("ingest", HASH)
    text = render_password_file(creds(DEV_A, DEV_B), [ingest])
    assert text == f"{DEV_A}:{HASH}\n{DEV_B}:{HASH}\ningest:{HASH}\n"


def test_service_account_hashes_its_password() -> None:
    account = ServiceAccount.with_password("ingest", "pw")
    assert account.password_hash.startswith("$7$")
    assert "pw" not in account.password_hash.split("$")[3:]
    assert account.acl == SERVICE_ACL


def test_empty_registry_gives_empty_password_file() -> None:
    assert render_password_file([], []) == ""


@pytest.mark.parametrize(
    ("devices", "accounts", "match"),
    [
        (creds("a:b"), [], "broker username"),
        (creds("a b"), [], "broker username"),
        ([BrokerCredential(DEV_A, "plaintext")], [], "password hash"),
        ([BrokerCredential(DEV_A, HASH + "\nevil:x")], [], "password hash"),
        (creds(DEV_A), [ServiceAccount(DEV_A, HASH)], "used twice"),
        ([], [ServiceAccount("in gest", HASH)], "not usable"),
        ([], [ServiceAccount("ingest", HASH, ("topic readwrite #\nuser x",))], "ACL line"),
        ([], [ServiceAccount("ingest", HASH, ("pattern readwrite #",))], "ACL line"),
    ],
)
def test_unsafe_entries_are_refused(
    devices: list[BrokerCredential], accounts: list[ServiceAccount], match: str
) -> None:
    def render() -> None:
        render_password_file(devices, accounts)
        render_acl_file(accounts)

    with pytest.raises(ValueError, match=match):
        render()


def test_acl_patterns_come_before_any_user_block() -> None:
    accounts = [
        ServiceAccount("ingest", HASH),
        ServiceAccount("commander", HASH, ("topic write vgr/v1/dev/+/cmd",)),
    ]
    lines = render_acl_file(accounts).splitlines()
    body = [line for line in lines if line and not line.startswith("#")]
    patterns = broker_acl_patterns()
    assert body[: len(patterns)] == patterns
    assert body[len(patterns) :] == [
        "user ingest",
        "topic readwrite vgr/v1/#",
        "user commander",
        "topic write vgr/v1/dev/+/cmd",
    ]


def test_acl_without_accounts_is_only_patterns() -> None:
    body = [ln for ln in render_acl_file([]).splitlines() if ln and not ln.startswith("#")]
    assert body == broker_acl_patterns()


def test_write_atomic_sets_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "passwords"
    target.write_text("old\n")
    old_umask = os.umask(0o077)
    try:
        write_atomic(target, "new\n", 0o644)
    finally:
        os.umask(old_umask)
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o644
    write_atomic(target, "newer\n", 0o600)
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwords"]


def test_apply_writes_both_files_before_reloading(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    pw, acl = tmp_path / "pw", tmp_path / "acl"

    def reload() -> None:
        seen.append((pw.read_text(), acl.read_text()))

    files = BrokerFiles(pw, acl, (ServiceAccount("ingest", HASH),), reload)
    files.apply(creds(DEV_A))
    assert len(seen) == 1
    assert seen[0][0].startswith(f"{DEV_A}:")
    assert "user ingest" in seen[0][1]
    assert pw.stat().st_mode & 0o777 == 0o600
    assert acl.stat().st_mode & 0o777 == 0o644


def test_sighup_reloader_signals_the_pid_in_the_file(tmp_path: Path) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGHUP, lambda *_: (print('hup', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "ready"
            pid_file = tmp_path / "mosquitto.pid"
            pid_file.write_text(f"{proc.pid}\n")
            sighup_reloader(pid_file)()
            assert proc.stdout.readline().strip() == "hup"
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)


def test_sighup_reloader_reports_a_missing_or_stale_pid(tmp_path: Path) -> None:
    with pytest.raises(BrokerSyncError, match="cannot read the broker pid"):
        sighup_reloader(tmp_path / "absent.pid")()
    (tmp_path / "junk.pid").write_text("not a pid")
    with pytest.raises(BrokerSyncError, match="cannot read the broker pid"):
        sighup_reloader(tmp_path / "junk.pid")()
    # A pid above the kernel's pid_max can never belong to a live process.
    beyond = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    (tmp_path / "stale.pid").write_text(str(beyond))
    with pytest.raises(BrokerSyncError, match="cannot signal"):
        sighup_reloader(tmp_path / "stale.pid")()
