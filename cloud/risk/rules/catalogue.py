"""Imports every rule module so each registers itself in ``CATALOGUE``."""

from __future__ import annotations
