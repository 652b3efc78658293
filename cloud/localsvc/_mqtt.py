"""MQTT details the broker launcher needs: a CONNECT probe (and the password hash)."""

from __future__ import annotations

import contextlib
import secrets
import socket
import ssl

from cloud.mosquitto_hash import hash_password

__all__ = ["hash_password", "mqtt_probe"]


def mqtt_probe(
    host: str, port: int, tls: ssl.SSLContext | None = None, timeout: float = 2.0
) -> int:
    """Send an MQTT 3.1.1 CONNECT without credentials; return the CONNACK return code.

    Any CONNACK (0 accepted, 5 not authorised, ...) proves the listener speaks
    MQTT. Raises OSError when there is no listener or no CONNACK.
    """
    client_id = f"vgr-probe-{secrets.token_hex(4)}".encode()
    # variable header: protocol name "MQTT", level 4, flags clean-session, keepalive 10 s
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(client_id).to_bytes(2, "big") + client_id
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = raw if tls is None else tls.wrap_socket(raw, server_hostname=host)
        with sock:
            sock.sendall(bytes([0x10, len(body)]) + body)
            connack = b""
            while len(connack) < 4:
                chunk = sock.recv(4 - len(connack))
                if not chunk:
                    raise ConnectionError(f"{host}:{port} closed the connection before CONNACK")
                connack += chunk
            if connack[:2] != b"\x20\x02":
                raise ConnectionError(f"{host}:{port} answered {connack!r}, not a CONNACK")
            if connack[3] == 0:
                with contextlib.suppress(OSError):
                    sock.sendall(b"\xe0\x00")  # DISCONNECT
            return connack[3]
