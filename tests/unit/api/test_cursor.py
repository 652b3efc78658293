"""Opaque keyset cursors and page parameters."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.api.cursor import MAX_LIMIT, PageError, decode_cursor, encode_cursor, page_params

keys = st.tuples(st.text(max_size=40), st.integers(min_value=0, max_value=2**63 - 1))


@given(keys)
def test_round_trip(key: tuple[str, int]) -> None:
    token = encode_cursor("alerts", key)
    assert token.isascii()
    assert "=" not in token
    assert decode_cursor("alerts", token, (str, int)) == key


def test_cursor_of_another_list_is_refused() -> None:
    token = encode_cursor("audit", (5,))
    with pytest.raises(PageError) as exc:
        decode_cursor("alerts", token, (str, int))
    assert exc.value.code == "invalid_cursor"


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        "x" * 600,
        "é",
        _raw("not json"),
        _raw("[1, 2]"),
        _raw('{"k": "audit"}'),
        _raw('{"k": "audit", "v": [true]}'),  # a bool is not an int
        _raw('{"k": "audit", "v": ["5"]}'),
        _raw('{"k": "audit", "v": [5, 6]}'),
        _raw('{"k": "audit", "v": [5.0]}'),
    ],
)
def test_malformed_cursors(token: str) -> None:
    with pytest.raises(PageError):
        decode_cursor("audit", token, (int,))


def test_page_params() -> None:
    assert page_params({}) == (50, None)
    assert page_params({"limit": "1", "cursor": "abc"}) == (1, "abc")
    assert page_params({"limit": str(MAX_LIMIT), "cursor": ""}) == (MAX_LIMIT, None)
    for bad in ("0", str(MAX_LIMIT + 1), "-1", "1.5", "ten", "", " 5", "٣", "00000000005"):
        with pytest.raises(PageError) as exc:
            page_params({"limit": bad})
        assert exc.value.code == "invalid_parameter"
