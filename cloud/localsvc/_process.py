"""Helpers shared by the private-service launchers: errors, logs, child processes."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 40


class ServiceError(RuntimeError):
    """A private service failed to start, stop or answer."""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or a note when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:])


def fail(message: str, log_path: Path) -> ServiceError:
    """A :class:`ServiceError` whose text ends with the tail of the service log."""
    return ServiceError(f"{message}\n--- last lines of {log_path} ---\n{log_tail(log_path)}")


def child_pids(parent: int) -> list[int]:
    """PIDs of the live direct children of ``parent`` (read from /proc)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if is_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [pid for pid in alive if is_alive(pid)]
    return alive


def terminate(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Send ``sig`` and wait for the process to exit; SIGKILL it after ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("pid %d ignored %s for %.0f s; killing it", proc.pid, sig.name, timeout)
        proc.kill()
        proc.wait()


def kill_tree(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> list[int]:
    """SIGKILL a process and then each of its direct children, as a crash would.

    The process is frozen (SIGSTOP) first so it cannot fork while its
    children are collected. Returns the PIDs still alive after ``timeout``.
    """
    proc.send_signal(signal.SIGSTOP)
    children = child_pids(proc.pid)
    proc.kill()
    proc.wait()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return wait_gone(children, timeout)


def clean_env(drop_prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    """A copy of the environment without variables starting with ``drop_prefixes``."""
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}


def root_service_account(name: str) -> pwd.struct_passwd | None:
    """The account ``name`` to run a server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServiceError(f"running as root needs a {name!r} system account") from None


def as_account(argv: list[str], account: pwd.struct_passwd | None) -> list[str]:
    """``argv`` run as ``account`` through ``setpriv`` (which execs: same PID), or as is."""
    if account is None:
        return argv
    ids = [f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]
    return ["setpriv", *ids, "--", *argv]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (a server may be reading it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    tmp.replace(path)
