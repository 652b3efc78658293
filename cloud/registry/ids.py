"""Identifiers the registry accepts from installers: IMEI, VIN, tenant id, contract id.

Pure checks, each returning the reason a value is refused (``None`` when it is
fine), so the API can name the field and the CLI can print the reason. The
database repeats the VIN and tenant patterns as CHECK constraints.
"""

from __future__ import annotations

import re

IMEI_DIGITS = 15
_IMEI = re.compile(r"^[0-9]{15}$")
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")  # ISO 3779: no I, O or Q
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # as tenants.id CHECK
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_CONTRACT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_ADCODE = re.compile(r"^[0-9]{6}$")


def luhn_check_digit(body: str) -> int:
    """The Luhn check digit for a string of digits (the 15th digit of an IMEI)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # every second digit from the right, starting next to the check digit
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def imei_problem(imei: str) -> str | None:
    """Why ``imei`` is not a usable IMEI: 15 digits whose last one is the Luhn check digit.

    The check digit catches most typing mistakes an installer can make (one
    wrong digit, two neighbours swapped), which would otherwise register a
    device that will never connect.
    """
    if not _IMEI.match(imei):
        return f"an IMEI is {IMEI_DIGITS} digits"
    if luhn_check_digit(imei[:-1]) != int(imei[-1]):
        return "IMEI check digit is wrong (Luhn); re-read the label"
    return None


def with_check_digit(body: str) -> str:
    """A valid IMEI from its first 14 digits (for simulators and tests)."""
    if not re.fullmatch(r"[0-9]{14}", body):
        raise ValueError("an IMEI body is 14 digits")
    return body + str(luhn_check_digit(body))


def vin_problem(vin: str) -> str | None:
    if not _VIN.match(vin):
        return "a VIN is 17 characters A-Z/0-9 without I, O or Q (upper case)"
    return None


def tenant_problem(tenant_id: str) -> str | None:
    if not _TENANT.match(tenant_id):
        return "a tenant id is 1-64 characters a-z 0-9 _ -, starting with a letter or digit"
    return None


def username_problem(username: str) -> str | None:
    if not _USERNAME.match(username):
        return "a user name is 1-64 characters A-Z a-z 0-9 . _ @ -, starting with a letter or digit"
    return None


def contract_problem(contract_id: str) -> str | None:
    if not _CONTRACT.match(contract_id):
        return "a contract id is 1-64 characters A-Z a-z 0-9 . _ / -"
    return None


def adcode_problem(adcode: str) -> str | None:
    if not _ADCODE.match(adcode):
        return "an administrative code is 6 digits"
    return None
