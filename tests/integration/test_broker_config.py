"""The shipped production Mosquitto config really starts, with its TLS and auth listeners."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.localsvc import free_ports, hash_password, make_tls_files, mqtt_probe, port_accepts

pytestmark = pytest.mark.services
SHIPPED = Path(__file__).resolve().parents[2] / "configs" / "mosquitto.conf"


def test_production_config_starts_and_enforces_auth(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    (tmp_path / "passwords").write_text(f"svc:{hash_password('pw')}\n")
    (tmp_path / "acl").write_text("user svc\ntopic readwrite vgr/#\n")
    tls_port, plain_port = free_ports(2)
    text = SHIPPED.read_text()
    text = text.replace("/etc/mosquitto/vgr/ca.pem", str(tls.ca_cert))
    text = text.replace("/etc/mosquitto/vgr/server.pem", str(tls.server_cert))
    text = text.replace("/etc/mosquitto/vgr/server.key", str(tls.server_key))
    text = text.replace("/etc/mosquitto/vgr/", f"{tmp_path}/")
    text = text.replace("/var/lib/mosquitto/", f"{tmp_path}/")
    text = text.replace("listener 8883 0.0.0.0", f"listener {tls_port} 127.0.0.1")
    text = text.replace("listener 1883 127.0.0.1", f"listener {plain_port} 127.0.0.1")
    text = re.sub(r"^log_dest syslog$", f"log_dest file {tmp_path}/log", text, flags=re.M)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text + "\nuser root\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not port_accepts("127.0.0.1", plain_port) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.05)
        assert port_accepts("127.0.0.1", tls_port)
        assert mqtt_probe("127.0.0.1", plain_port) == 5  # anonymous: not authorised
        assert _connect(plain_port, "svc", "pw") == 0
        assert _connect(plain_port, "svc", "wrong") != 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _connect(port: int, user: str, password: str) -> int:
    codes: list[int] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.on_connect = lambda _c, _u, _f, rc, _p: codes.append(rc.value)
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 5
    while not codes and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    client.disconnect()
    return codes[0] if codes else -1
