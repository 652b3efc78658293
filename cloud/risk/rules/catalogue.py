"""Imports every rule module so each registers itself in ``CATALOGUE``."""

from __future__ import annotations

import cloud.risk.rules.device
import cloud.risk.rules.location  # noqa: F401

__all__: list[str] = []
