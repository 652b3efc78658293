"""Retry schedule, jitter and Retry-After parsing (cloud.webhooks.schedule)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from cloud.webhooks.config import DEFAULT_RETRY_SCHEDULE_S
from cloud.webhooks.schedule import jittered, next_delay, parse_retry_after

NOW = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)


def test_default_schedule_is_the_standard_one() -> None:
    assert DEFAULT_RETRY_SCHEDULE_S == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def test_without_jitter_the_waits_follow_the_schedule_then_stop() -> None:
    rng = random.Random(1)
    waits = [
        next_delay(n, DEFAULT_RETRY_SCHEDULE_S, jitter_fraction=0, rng=rng) for n in range(1, 10)
    ]
    # after attempt n comes schedule[n]; attempt 8 is the last one
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000, None, None]


def test_a_single_entry_schedule_means_one_attempt() -> None:
    assert next_delay(1, (0,), jitter_fraction=0.5, rng=random.Random(0)) is None


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        next_delay(0, DEFAULT_RETRY_SCHEDULE_S, jitter_fraction=0, rng=random.Random(0))


def test_jitter_stays_within_its_fraction_and_spreads() -> None:
    rng = random.Random(42)
    samples = [jittered(100.0, 0.2, rng) for _ in range(2000)]
    assert min(samples) >= 80.0
    assert max(samples) <= 120.0
    assert min(samples) < 85.0  # it does spread over the band
    assert max(samples) > 115.0
    assert 97.0 < sum(samples) / len(samples) < 103.0


def test_jitter_of_zero_and_of_nothing() -> None:
    rng = random.Random(0)
    assert jittered(0.0, 0.5, rng) == 0.0
    assert jittered(7.0, 0.0, rng) == 7.0
    assert jittered(-1.0, 0.5, rng) == 0.0


def test_jitter_is_seedable() -> None:
    a = [jittered(10, 0.3, random.Random(7)) for _ in range(3)]
    b = [jittered(10, 0.3, random.Random(7)) for _ in range(3)]
    assert a == b


def test_retry_after_lengthens_but_never_shortens_and_is_capped() -> None:
    rng = random.Random(0)
    sched = (0, 10, 20)
    longer = next_delay(1, sched, jitter_fraction=0, rng=rng, retry_after_s=60)
    assert longer == 60
    shorter = next_delay(1, sched, jitter_fraction=0, rng=rng, retry_after_s=3)
    assert shorter == 10
    capped = next_delay(
        1, sched, jitter_fraction=0, rng=rng, retry_after_s=86400, retry_after_max_s=120
    )
    assert capped == 120
    # Retry-After never adds attempts
    assert next_delay(3, sched, jitter_fraction=0, rng=rng, retry_after_s=5) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),  # delay-seconds is an integer
        ("Sat, 01 Mar 2025 08:02:00 GMT", 120.0),  # IMF-fixdate
        ("Saturday, 01-Mar-25 08:00:30 GMT", 30.0),  # obsolete RFC 850 form
        ("Sat Mar  1 08:00:10 2025", 10.0),  # asctime form (no zone: UTC)
        ("Fri, 28 Feb 2025 08:00:00 GMT", 0.0),  # in the past: go now
        ("Sat, 01 Mar 2025 16:00:00 +0800", 0.0),  # same instant in Beijing time
        ("Sat, 99 Mar 2025 08:02:00 GMT", None),
    ],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_retry_after_date_round_trip() -> None:
    when = NOW + timedelta(minutes=17)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == 17 * 60
