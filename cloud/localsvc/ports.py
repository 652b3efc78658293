"""Free TCP ports on the loopback interface, for private services."""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` distinct TCP ports on ``host`` that are free right now.

    The kernel picks them (bind to port 0); all sockets stay open until every
    port is chosen, so the ports are distinct. A port can still be taken by
    someone else between this call and the server's bind: callers that pick
    ports this way retry on a bind failure.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port(host: str = LOOPBACK) -> int:
    """Return one TCP port on ``host`` (127.0.0.1 by default) that is free right now."""
    return free_ports(1, host)[0]


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
