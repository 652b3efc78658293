"""Fixtures shared by every test layer.

The service fixtures start private instances (never the system services) on
free loopback ports in temporary directories, once per test session. Tests
that use them are marked ``services``; ``pytest -m "not services"`` skips them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cloud.localsvc import PrivateMosquitto, PrivatePostgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL + TimescaleDB cluster with an empty ``vgr`` database."""
    with PrivatePostgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[PrivateMosquitto]:
    """A private Mosquitto broker: plain, password+ACL and TLS listeners."""
    with PrivateMosquitto() as broker:
        yield broker


@pytest.fixture
def fresh_db(postgres: PrivatePostgres) -> Iterator[str]:
    """DSN of a new, empty database on the session cluster, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    dsn = postgres.create_database(name)
    yield dsn
    if postgres.running:
        postgres.drop_database(name)
