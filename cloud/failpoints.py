"""Fault-injection points for the reliability tests (inactive unless asked for).

``VGR_FAILPOINTS="name=N,other=M"`` makes :func:`hit` SIGKILL the process on
the N-th time ``name`` is reached, which is the only way to kill a worker
*exactly* between two steps (say, after a commit and before its acks). The
variable is read once at import; in production it is unset and ``hit`` is a
dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_ENV = "VGR_FAILPOINTS"


def _parse(spec: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition("=")
        out[name] = int(count or "1")
    return out


_armed = _parse(os.environ.get(_ENV, ""))
_seen: dict[str, int] = {}


def hit(name: str) -> None:
    """Reached failpoint ``name``: die by SIGKILL if it is armed for this occurrence."""
    if name not in _armed:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == _armed[name]:
        os.kill(os.getpid(), signal.SIGKILL)
