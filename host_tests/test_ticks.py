"""Wrapping ms stamps: the same results as modular arithmetic, small ints throughout."""

from hypothesis import given, strategies as st

from meter.ticks import TICKS_MASK, add_ms, elapsed_ms

PERIOD = TICKS_MASK + 1
stamps = st.integers(0, TICKS_MASK)
deltas = st.integers(-(1 << 29) + 1, (1 << 29) - 1)


@given(stamps, deltas)
def test_add_then_elapsed_gives_the_delta_back(stamp, delta):
    later = add_ms(stamp, delta)
    assert 0 <= later <= TICKS_MASK
    assert later == (stamp + delta) % PERIOD
    assert elapsed_ms(later, stamp) == delta


@given(stamps, stamps)
def test_elapsed_is_the_signed_modular_difference(a, b):
    d = elapsed_ms(a, b)
    assert -(1 << 29) <= d < (1 << 29)
    assert (b + d) % PERIOD == a


def test_edges_of_the_period():
    assert elapsed_ms(0, TICKS_MASK) == 1
    assert elapsed_ms(TICKS_MASK, 0) == -1
    assert add_ms(TICKS_MASK, 1) == 0
    assert add_ms(0, -1) == TICKS_MASK
