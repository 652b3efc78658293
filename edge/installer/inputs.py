"""What an installer types, checked before anything is sent (pure).

Each check returns the reason a value is refused, or ``None``. The registry
checks the same things again; checking here first means a typo is caught
before a device is registered and left half-provisioned.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_IMEI = re.compile(r"^[0-9]{15}$")
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")  # ISO 3779: no I, O or Q
_CONTRACT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_ADCODE = re.compile(r"^[0-9]{6}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def luhn_valid(digits: str) -> bool:
    """True when the last digit of ``digits`` is its Luhn check digit."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:  # every second digit, counting the check digit as the first
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def imei_problem(imei: str) -> str | None:
    if not _IMEI.match(imei):
        return "an IMEI is 15 digits (see the label on the tracker, or dial *#06#)"
    if not luhn_valid(imei):
        return "the IMEI's check digit is wrong (Luhn): re-read the label"
    return None


def vin_problem(vin: str) -> str | None:
    if not _VIN.match(vin):
        return "a VIN is 17 characters A-Z/0-9 without I, O or Q (upper case)"
    return None


def contract_problem(contract_id: str) -> str | None:
    if not _CONTRACT.match(contract_id):
        return (
            "a contract id is 1-64 characters A-Z a-z 0-9 . _ / -, starting with a letter or digit"
        )
    return None


def adcode_problem(adcode: str) -> str | None:
    if not _ADCODE.match(adcode):
        return "an administrative division code is 6 digits (e.g. 320100 for Nanjing)"
    return None


def text_problem(value: str, *, max_chars: int) -> str | None:
    if not value.strip():
        return "must not be empty"
    if len(value) > max_chars:
        return f"at most {max_chars} characters"
    if any(ord(c) < 0x20 for c in value):
        return "must not contain control characters"
    return None


def api_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "the API address is http(s)://host[:port] (the cloud's provisioning endpoint)"
    if parts.query or parts.fragment:
        return "the API address must not carry a query or fragment"
    return None


def env_name_problem(name: str) -> str | None:
    if not _ENV_NAME.match(name):
        return "an environment variable name is letters, digits and _"
    return None
