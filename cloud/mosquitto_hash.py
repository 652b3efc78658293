"""Mosquitto's password-file hash (``$7$``: PBKDF2-SHA512), written without its C tool."""

from __future__ import annotations

import base64
import hashlib
import secrets

PBKDF2_ITERATIONS = 101
"""Iterations of the ``$7$`` hash; mosquitto_passwd's default in Mosquitto 2.0."""


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto's ``$7$`` password hash: PBKDF2-SHA512, 12-byte salt, base64 fields."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"
