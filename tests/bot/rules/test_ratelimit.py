"""The per-member token bucket (``bot/rules/ratelimit.py``), on an injected clock: no sleeping."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.rules.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_burst_then_wait(clock: Clock) -> None:
    bucket = TokenBucket(3, 0.5, clock=clock)  # 3 at once, then one every 2 s
    assert [bucket.take("ann") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("ann") == pytest.approx(2.0)
    assert bucket.take("ann") == pytest.approx(2.0)  # asking again takes nothing
    clock.advance(0.5)
    assert bucket.take("ann") == pytest.approx(1.5)
    clock.advance(1.5)
    assert bucket.take("ann") == 0.0
    assert bucket.take("ann") == pytest.approx(2.0)


def test_refill_is_capped(clock: Clock) -> None:
    bucket = TokenBucket(2, 1.0, clock=clock)
    assert bucket.take("ann") == 0.0
    clock.advance(3600)
    assert bucket.tokens("ann") == 2.0
    assert [bucket.take("ann") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_partial_refill(clock: Clock) -> None:
    bucket = TokenBucket(2, 0.1, clock=clock)  # one token every 10 s
    bucket.take("ann")
    bucket.take("ann")
    clock.advance(4)
    assert bucket.tokens("ann") == pytest.approx(0.4)
    assert bucket.take("ann") == pytest.approx(6.0)
    clock.advance(6)
    assert bucket.take("ann") == 0.0


def test_waiting_the_time_given_is_enough(clock: Clock) -> None:
    bucket = TokenBucket(1, 6.0 / 60, clock=clock)  # rate_per_minute = 6
    for _ in range(50):
        while (wait := bucket.take("ann")) == 0.0:
            pass
        clock.advance(wait)
        assert bucket.take("ann") == 0.0  # float rounding never makes a member wait twice


def test_refund(clock: Clock) -> None:
    bucket = TokenBucket(2, 0.01, clock=clock)
    bucket.take("ann")
    bucket.take("ann")
    assert bucket.take("ann") > 0
    bucket.refund("ann")
    assert bucket.take("ann") == 0.0
    assert bucket.take("ann") > 0


def test_refund_never_overfills(clock: Clock) -> None:
    bucket = TokenBucket(2, 0.01, clock=clock)
    bucket.refund("ann")  # never took anything
    bucket.refund("ann")
    assert bucket.tokens("ann") == 2.0
    assert [bucket.take("ann") > 0 for _ in range(3)] == [False, False, True]
    assert len(bucket) == 1


def test_keys_are_independent(clock: Clock) -> None:
    bucket = TokenBucket(1, 0.01, clock=clock)
    assert bucket.take(1) == 0.0
    assert bucket.take(1) > 0
    assert bucket.take(2) == 0.0
    assert bucket.take((3, "guild")) == 0.0
    bucket.refund(2)
    assert bucket.take(1) > 0
    assert bucket.take(2) == 0.0


def test_idle_buckets_are_forgotten(clock: Clock) -> None:
    bucket = TokenBucket(5, 1.0, clock=clock)  # an empty bucket refills in 5 s
    for member in range(10_000):
        bucket.take(member)
        clock.advance(0.01)
    # only the members of the last 5 s are held (500 of them), not all 10 000
    assert len(bucket) <= 501
    clock.advance(5)
    bucket.take("late")
    assert len(bucket) == 1
    assert bucket.tokens(0) == 5.0


def test_a_refund_that_fills_the_bucket_forgets_it(clock: Clock) -> None:
    bucket = TokenBucket(3, 1.0, clock=clock)
    bucket.take("ann")
    assert len(bucket) == 1
    bucket.refund("ann")
    assert len(bucket) == 0


def test_forgetting_changes_nothing(clock: Clock) -> None:
    # a busy member keeps their (non-full) bucket while idle ones come and go
    bucket = TokenBucket(2, 0.5, clock=clock)
    bucket.take("busy")
    bucket.take("busy")
    for member in range(100):
        clock.advance(0.1)
        bucket.take(member)
    assert bucket.take("busy") == 0.0  # 10 s passed: refilled, whether or not it was forgotten


@pytest.mark.parametrize(("capacity", "rate"), [(0, 1.0), (1, 0.0), (1, -1.0), (1, float("nan")), (1, float("inf"))])
def test_bad_settings(capacity: int, rate: float) -> None:
    with pytest.raises(ValueError, match=r"capacity|per_second"):
        TokenBucket(capacity, rate)


def test_the_real_clock() -> None:
    bucket = TokenBucket(1, 1e-6)
    assert bucket.take("ann") == 0.0
    assert bucket.take("ann") > 1000


ops = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=30, allow_nan=False),  # seconds to wait first
        st.sampled_from(["take", "take", "take", "refund"]),
        st.integers(min_value=0, max_value=2),  # which member
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=10),
    rate=st.floats(min_value=0.01, max_value=5, allow_nan=False),
    steps=ops,
)
def test_never_more_than_capacity_plus_refill(capacity: int, rate: float, steps: list[tuple[float, str, int]]) -> None:
    clock = Clock()
    start = clock.now
    bucket = TokenBucket(capacity, rate, clock=clock)
    taken = dict.fromkeys(range(3), 0)
    refundable = dict.fromkeys(range(3), 0)
    for wait, op, member in steps:
        clock.advance(wait)
        if op == "refund":
            if refundable[member]:  # the caller refunds only what it took
                refundable[member] -= 1
                taken[member] -= 1
                bucket.refund(member)
            continue
        result = bucket.take(member)
        assert result >= 0
        if result == 0:
            taken[member] += 1
            refundable[member] += 1
        else:
            assert bucket.tokens(member) < 1
        elapsed = clock.now - start
        assert taken[member] <= capacity + elapsed * rate + 1e-6
    assert len(bucket) <= 3
