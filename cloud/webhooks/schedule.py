"""When to try a failed delivery again: the retry schedule, jitter and ``Retry-After`` (pure)."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_SECONDS = re.compile(r"^\s*(\d{1,10})\s*$")


def jittered(delay_s: float, fraction: float, rng: random.Random) -> float:
    """``delay_s`` moved by up to ``fraction`` of itself either way (never below zero)."""
    if delay_s <= 0 or fraction <= 0:
        return max(delay_s, 0.0)
    return max(0.0, delay_s * (1.0 + rng.uniform(-fraction, fraction)))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` value, or None when absent or unreadable.

    Both forms of RFC 9110 are read: delay-seconds (``120``) and an HTTP date
    (``Wed, 21 Oct 2015 07:28:00 GMT``). A date in the past means zero.
    """
    if value is None or not value.strip():
        return None
    match = _SECONDS.match(value)
    if match:
        return float(match[1])
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates: RFC 5322 says UTC
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def next_delay(
    attempt_no: int,
    schedule: Sequence[float],
    *,
    jitter_fraction: float,
    rng: random.Random,
    retry_after_s: float | None = None,
    retry_after_max_s: float = 3600.0,
) -> float | None:
    """Seconds until the attempt after failed attempt ``attempt_no`` (1-based); None: give up.

    ``schedule[i]`` is the wait before attempt ``i + 1``, so after attempt n the
    wait is ``schedule[n]``, jittered. A receiver's ``Retry-After`` lengthens
    that wait (never shortens it), up to ``retry_after_max_s``; it never adds
    attempts.
    """
    if attempt_no < 1:
        msg = f"attempt numbers start at 1, not {attempt_no}"
        raise ValueError(msg)
    if attempt_no >= len(schedule):
        return None
    delay = jittered(schedule[attempt_no], jitter_fraction, rng)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, retry_after_max_s))
    return delay
