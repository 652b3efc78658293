"""Strict converters for NMEA 0183 fields, and the unit constants.

pynmea2's typed accessors fall back to the raw string when a field does not
convert; the sentence handlers use these instead, so a malformed field
raises :class:`FieldError` (counted as ``parse_error``) rather than leaking a
string into a float. An empty field means "not reported" and gives ``None``.
Every unit conversion the NMEA layer does is a constant here.
"""

from __future__ import annotations

import math
from datetime import UTC, date, time
from typing import Final

KNOTS_TO_MPS: Final = 1852.0 / 3600.0
KMH_TO_MPS: Final = 1000.0 / 3600.0

_DIGITS: Final = frozenset("0123456789")


class FieldError(ValueError):
    """A field that is present but malformed."""


def _digits(s: str, what: str) -> int:
    if not s or not set(s) <= _DIGITS:
        msg = f"{what}: {s!r} is not a number"
        raise FieldError(msg)
    return int(s)


def _microseconds(frac: str, what: str) -> int:
    """``"28"`` of ``"143444.28"`` → 280000, exactly (no float rounding)."""
    if not frac:
        return 0
    return _digits((frac + "000000")[:6], what)


def hhmmss(s: str) -> time | None:
    """UTC time of day, ``hhmmss[.sss]`` → tz-aware :class:`datetime.time`."""
    if not s:
        return None
    whole, _, frac = s.partition(".")
    if len(whole) != 6:
        msg = f"time of day: {s!r} is not hhmmss[.ss]"
        raise FieldError(msg)
    h, m, sec = (_digits(whole[i : i + 2], "time of day") for i in (0, 2, 4))
    try:
        return time(h, m, sec, _microseconds(frac, "time of day"), tzinfo=UTC)
    except ValueError as exc:  # hour 24, second 60…
        msg = f"time of day: {s!r}: {exc}"
        raise FieldError(msg) from None


def make_date(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError as exc:
        msg = f"date {year:04d}-{month:02d}-{day:02d}: {exc}"
        raise FieldError(msg) from None


def ddmmyy(s: str) -> date | None:
    """RMC's two-digit-year date; years 80..99 are 1980..1999, the rest 20xx."""
    if not s:
        return None
    if len(s) != 6:
        msg = f"date: {s!r} is not ddmmyy"
        raise FieldError(msg)
    d, m, y = (_digits(s[i : i + 2], "date") for i in (0, 2, 4))
    return make_date(y + (1900 if y >= 80 else 2000), m, d)


def number(s: str, what: str = "number") -> float | None:
    """A decimal number; NaN, infinities and exponents are malformed, not numbers."""
    if not s:
        return None
    body = s[1:] if s[0] in "+-" else s
    whole, _, frac = body.partition(".")
    if not (whole or frac) or not set(whole + frac) <= _DIGITS:
        msg = f"{what}: {s!r} is not a decimal number"
        raise FieldError(msg)
    value = float(s)
    if not math.isfinite(value):  # pragma: no cover - digits only, cannot happen
        raise FieldError(what)
    return value


def integer(s: str, what: str = "integer") -> int | None:
    if not s:
        return None
    return _digits(s, what)


def angle(s: str, hemisphere: str, *, latitude: bool) -> float | None:
    """``dddmm.mmmm`` plus ``N``/``S``/``E``/``W`` → signed decimal degrees.

    Both empty means no position; one without the other, a hemisphere of the
    wrong axis, or minutes ≥ 60 is malformed.
    """
    if not s:
        return None  # also with a hemisphere letter alone, as bu303 sends without a fix
    allowed = "NS" if latitude else "EW"
    if hemisphere not in allowed or len(hemisphere) != 1:
        msg = f"hemisphere {hemisphere!r} is not one of {allowed}"
        raise FieldError(msg)
    whole, dot, frac = s.partition(".")
    max_deg_digits = 2 if latitude else 3
    if len(whole) < 3 or len(whole) > max_deg_digits + 2:
        msg = f"{'latitude' if latitude else 'longitude'}: {s!r} is not d…dmm.mmmm"
        raise FieldError(msg)
    degrees = _digits(whole[:-2], "degrees")
    minutes = number(whole[-2:] + dot + frac, "minutes")
    assert minutes is not None
    if minutes >= 60.0:
        msg = f"minutes {minutes} of {s!r} are 60 or more"
        raise FieldError(msg)
    value = degrees + minutes / 60.0
    if value > (90.0 if latitude else 180.0):
        msg = f"{s!r} is out of range"
        raise FieldError(msg)
    return -value if hemisphere in "SW" else value
