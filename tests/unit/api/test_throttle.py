"""Login throttle maths: free failures, doubling delays, a cap, and forgetting."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud.api.throttle import (
    ThrottleParams,
    delay_s,
    effective_failures,
    ip_key,
    retry_after_header,
    retry_after_s,
    user_key,
)

P = ThrottleParams(free=5, base_s=2.0, max_s=900.0, window_s=3600.0)


def test_free_failures_cost_nothing_then_the_delay_doubles_to_the_cap() -> None:
    assert [delay_s(n, P) for n in range(5)] == [0.0] * 5
    assert [delay_s(n, P) for n in range(5, 11)] == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    assert delay_s(14, P) == 900.0
    assert delay_s(10**9, P) == 900.0


def test_retry_after_counts_from_the_last_failure() -> None:
    assert retry_after_s(4, 0.0, P) == 0.0
    assert retry_after_s(5, 0.0, P) == 2.0
    assert retry_after_s(5, 1.5, P) == 0.5
    assert retry_after_s(5, 2.0, P) == 0.0
    assert retry_after_s(20, 100.0, P) == 800.0


def test_a_quiet_window_forgets_the_failures() -> None:
    assert effective_failures(50, 3599.0, P) == 50
    assert effective_failures(50, 3600.0, P) == 0
    assert retry_after_s(50, 3600.0, P) == 0.0


@given(st.integers(min_value=0, max_value=10**6), st.floats(min_value=0, max_value=10**5))
def test_wait_is_bounded_and_monotone(failures: int, since: float) -> None:
    wait = retry_after_s(failures, since, P)
    assert 0.0 <= wait <= P.max_s
    assert retry_after_s(failures + 1, since, P) >= wait or since >= P.window_s


def test_retry_after_header_rounds_up_and_is_never_zero() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"


def test_keys_cannot_collide() -> None:
    assert user_key("a/b", "c") != user_key("a", "b/c")
    assert user_key('a","b', "c") != user_key("a", 'b","c')
    assert ip_key("10.0.0.1").startswith("ip:")
