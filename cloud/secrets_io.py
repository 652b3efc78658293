"""Resolving secret references for cloud processes (the I/O side of protocols.secrets)."""

from __future__ import annotations

import os
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from protocols.secrets import resolve_secret


def secret(ref: str | None) -> str | None:
    """The value behind ``env:NAME`` / ``file:/path``, or None when no reference is set."""
    if ref is None:
        return None
    return resolve_secret(
        ref, environ=os.environ, read_text=lambda p: Path(p).read_text(encoding="utf-8")
    )


def dsn_with_password(dsn: str, password: str | None) -> str:
    """``dsn`` with the password added (the config file never holds it)."""
    if password is None:
        return dsn
    params = conninfo_to_dict(dsn)
    params["password"] = password
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
