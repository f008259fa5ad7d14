# Monotonic millisecond stamps that wrap at 2**30 (MicroPython's ticks_ms() period), as ints.
#
# The firmware never subtracts or compares two stamps directly: elapsed_ms() gives the
# signed difference (valid while the real gap is below 2**29 ms, about 6.2 days) and
# add_ms() gives a future stamp, both small ints, allocation-free. Stamps that must stay
# meaningful for longer than 6 days are kept in wall-clock minutes instead, or re-latched.

from micropython import const

TICKS_MASK = const(0x3FFF_FFFF)  # 2**30 - 1
_TICKS_HALF = const(0x2000_0000)  # 2**29


# Every intermediate value stays inside (-2**30, 2**30): a small int on a 31-bit port.


def elapsed_ms(now, then):
    """now - then for ms stamps that wrap at 2**30 (signed)."""
    d = now - then
    if d >= _TICKS_HALF:
        d -= _TICKS_HALF
        d -= _TICKS_HALF
    elif d < -_TICKS_HALF:
        d += _TICKS_HALF
        d += _TICKS_HALF
    return d


def add_ms(stamp, delta):
    """The stamp delta ms after stamp (|delta| < 2**29), wrapped like ticks_ms()."""
    if delta >= 0:
        room = TICKS_MASK - stamp
        return stamp + delta if delta <= room else delta - room - 1
    r = stamp + delta
    return r if r >= 0 else r + TICKS_MASK + 1
