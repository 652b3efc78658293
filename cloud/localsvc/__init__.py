"""Private services on loopback for tests, benchmarks and ``make demo``.

PostgreSQL with TimescaleDB and Mosquitto, each in its own directory on free
127.0.0.1 ports, never the system services.
"""

from cloud.localsvc._mqtt import hash_password, mqtt_probe
from cloud.localsvc._process import ServiceError
from cloud.localsvc.mosquitto import PrivateMosquitto
from cloud.localsvc.ports import LOOPBACK, free_port, free_ports, port_accepts
from cloud.localsvc.postgres import PrivatePostgres, find_bindir
from cloud.localsvc.tls import TlsFiles, make_tls_files

__all__ = [
    "LOOPBACK",
    "PrivateMosquitto",
    "PrivatePostgres",
    "ServiceError",
    "TlsFiles",
    "find_bindir",
    "free_port",
    "free_ports",
    "hash_password",
    "make_tls_files",
    "mqtt_probe",
    "port_accepts",
]
