"""Identifiers installers type in: IMEI (with its Luhn check digit), VIN, tenant, contract."""

from __future__ import annotations

import pytest

from cloud.registry import ids

# The IMEI used as the worked example of the Luhn check digit in GSMA TS.06 / Wikipedia.
KNOWN_IMEI = "490154203237518"


def test_known_imei_is_valid() -> None:
    assert ids.luhn_check_digit(KNOWN_IMEI[:-1]) == 8
    assert ids.imei_problem(KNOWN_IMEI) is None
    assert ids.with_check_digit(KNOWN_IMEI[:-1]) == KNOWN_IMEI


@pytest.mark.parametrize("position", range(15))
def test_any_single_wrong_digit_is_caught(position: int) -> None:
    for wrong in "0123456789":
        if wrong == KNOWN_IMEI[position]:
            continue
        typo = KNOWN_IMEI[:position] + wrong + KNOWN_IMEI[position + 1 :]
        assert ids.imei_problem(typo) is not None, typo


def test_swapped_neighbours_are_caught() -> None:
    # Luhn misses only the 0<->9 swap (09 <-> 90); the example has none.
    for i in range(14):
        a, b = KNOWN_IMEI[i], KNOWN_IMEI[i + 1]
        if a == b or {a, b} == {"0", "9"}:
            continue
        swapped = KNOWN_IMEI[:i] + b + a + KNOWN_IMEI[i + 2 :]
        assert ids.imei_problem(swapped) is not None, swapped


@pytest.mark.parametrize(
    "imei",
    [
        "",
        "49015420323751",
        "4901542032375180",
        "49015420323751a",
        " 490154203237518",
        "\uff19" * 15,  # fullwidth digits: str.isdigit() says yes, an IMEI says no
    ],
)
def test_not_fifteen_digits(imei: str) -> None:
    assert ids.imei_problem(imei) == "an IMEI is 15 digits"


def test_with_check_digit_needs_fourteen_digits() -> None:
    with pytest.raises(ValueError, match="14 digits"):
        ids.with_check_digit("123")


@pytest.mark.parametrize("vin", ["LFV2A21K6A3123456", "1HGCM82633A004352"])
def test_good_vins(vin: str) -> None:
    assert ids.vin_problem(vin) is None


@pytest.mark.parametrize(
    "vin",
    ["lfv2a21k6a3123456", "LFV2A21K6A312345", "LFV2A21K6A31234567", "LFV2A21K6A312345I",
     "LFV2A21K6A312345O", "LFV2A21K6A312345Q", "LFV2A21K6A3-23456"],
)  # fmt: skip
def test_bad_vins(vin: str) -> None:
    assert ids.vin_problem(vin) is not None


def test_tenant_ids_match_the_database_check() -> None:
    assert ids.tenant_problem("acme-finance_2") is None
    for bad in ("", "Acme", "-acme", "a" * 65, "acme finance", "acme/x"):
        assert ids.tenant_problem(bad) is not None, bad


def test_contracts_usernames_adcodes() -> None:
    assert ids.contract_problem("HT-2024/000123") is None
    assert ids.contract_problem("has space") is not None
    assert ids.contract_problem("") is not None
    assert ids.username_problem("wang.li@shop-3") is None
    assert ids.username_problem("bad:name") is not None
    assert ids.adcode_problem("310115") is None
    assert ids.adcode_problem("31011") is not None
