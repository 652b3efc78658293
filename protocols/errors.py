"""The error vocabulary shared by edge and cloud.

Every rejection of outside input carries a stable, machine-readable ``reason``
(used as a metric label and in logs) and, where it applies, the ``field`` that
was wrong. Programmer errors are ordinary exceptions and are not listed here.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Input from outside the process was rejected.

    ``reason`` is a short snake_case code, stable across releases, suitable as a
    Prometheus label value. ``field`` names the offending field when there is one.
    """

    def __init__(self, reason: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field

    def __str__(self) -> str:
        base = super().__str__()
        return (
            f"{self.reason}: {base}"
            if self.field is None
            else f"{self.reason} ({self.field}): {base}"
        )


class SchemaError(ProtocolError):
    """A message did not match its schema (bad JSON, missing field, value out of bounds)."""


class ImplausibleError(ProtocolError):
    """A well-formed fix that cannot be true (speed, altitude, time window...)."""


class TokenError(ProtocolError):
    """A terminal token, signed command or signed policy failed verification."""


class RegionError(ProtocolError):
    """A boundary or area definition could not be used."""
