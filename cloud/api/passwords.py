"""Argon2id password hashes with explicit parameters, and verification that leaks no timing.

Parameters come from ``[api]`` (defaults: RFC 9106's second recommendation,
t=3, m=64 MiB, p=4). A hash made with other parameters still verifies, and
:meth:`Passwords.needs_rehash` tells the login to store a fresh one. A login
for a user that does not exist (or has no password) is checked against a
dummy hash made at start-up, so it costs the same time as a wrong password.
Hashing is CPU- and memory-heavy: the async variants run in a thread, at most
``max_concurrent`` at a time.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024


class PasswordPolicyError(ValueError):
    pass


def check_new_password(password: str) -> None:
    """Refuse passwords an operator should not set (too short, too long, blank)."""
    if len(password) < MIN_PASSWORD_CHARS:
        msg = f"a password needs at least {MIN_PASSWORD_CHARS} characters"
        raise PasswordPolicyError(msg)
    if len(password) > MAX_PASSWORD_CHARS:
        msg = f"a password has at most {MAX_PASSWORD_CHARS} characters"
        raise PasswordPolicyError(msg)
    if not password.strip():
        msg = "a password cannot be only spaces"
        raise PasswordPolicyError(msg)


class Passwords:
    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int, max_concurrent: int = 4
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._dummy: str | None = None
        self._slots = asyncio.Semaphore(max_concurrent)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored``; with no hash, burn the same time, False."""
        if stored is None:
            if self._dummy is None:
                self._dummy = self._hasher.hash(secrets.token_urlsafe(24))
            self._check(self._dummy, password)
            return False
        return self._check(stored, password)

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True

    def warm_up(self) -> None:
        """Make the dummy hash at start-up rather than during the first unknown-user login."""
        self.verify(None, "")

    async def verify_async(self, stored: str | None, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self.verify, stored, password)

    async def hash_async(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash, password)
