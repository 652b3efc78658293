"""Argon2id hashing, verification, rehash detection and the dummy hash."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud.api.passwords import PasswordPolicyError, Passwords, check_new_password
from cloud.config import ApiSettings


def _pw(t: int = 1) -> Passwords:
    return Passwords(time_cost=t, memory_kib=1024, parallelism=1)


def test_hash_is_argon2id_with_our_parameters() -> None:
    h = _pw().hash("correct horse battery")
    assert h.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert _pw().verify(h, "correct horse battery")
    assert not _pw().verify(h, "correct horse batterx")
    assert not _pw().verify("not a hash", "x")


def test_no_hash_still_burns_a_verification() -> None:
    pw = _pw()
    assert not pw.verify(None, "anything")
    assert pw._dummy is not None  # made once, reused


def test_changed_parameters_ask_for_a_rehash() -> None:
    old = _pw(1).hash("correct horse battery")
    assert not _pw(1).needs_rehash(old)
    assert _pw(2).needs_rehash(old)
    assert _pw(2).verify(old, "correct horse battery")  # old hashes still verify
    assert _pw(1).needs_rehash("garbage")


async def test_async_variants() -> None:
    pw = _pw()
    h = await pw.hash_async("correct horse battery")
    assert await pw.verify_async(h, "correct horse battery")
    assert not await pw.verify_async(None, "correct horse battery")


@pytest.mark.parametrize("bad", ["short", " " * 12, "x" * 1025])
def test_new_password_policy(bad: str) -> None:
    with pytest.raises(PasswordPolicyError):
        check_new_password(bad)
    check_new_password("long enough pass")


def test_api_settings_are_checked() -> None:
    assert ApiSettings().cookie_secure is True
    assert ApiSettings().argon2_memory_kib == 65536
    with pytest.raises(ValidationError):
        ApiSettings(session_idle_s=100, session_absolute_s=50)
    with pytest.raises(ValidationError):
        ApiSettings(login_window_s=10, login_delay_max_s=900)
    with pytest.raises(ValidationError):
        ApiSettings(trusted_proxies=("10.0.0.0/33",))
    with pytest.raises(ValidationError):
        ApiSettings(unknown_key=1)  # type: ignore[call-arg]
    assert ApiSettings(trusted_proxies=("10.0.0.0/8", "::1")).trusted_proxies == (
        "10.0.0.0/8",
        "::1",
    )
