# A settable virtual clock: monotonic ms and a wall clock, advanced by the test or simulation.
#
# Every field is a small int on a 31-bit port at any date to 2099 (meter.clock.MAX_MINUTE):
# monotonic ms are kept wrapped (0 .. 2**30 - 1), the wall clock as whole minutes since
# 2000-01-01 plus the ms inside that minute (0 .. 59_999), never as seconds or ms since
# 2000 (seconds pass 2**30 on 2034-01-10, ms at any date). advance(), ticks_ms() and the
# wall reads compute only small ints while the step is below 2**29 ms (6 days).

from micropython import const

from meter.hal import Clock

_TICKS_MASK = const(0x3FFF_FFFF)  # MicroPython's ticks_ms() wraps at 2**30
_MS_PER_MIN = const(60_000)


def _wrap_add(stamp, ms):
    """stamp + ms wrapped at 2**30, through small ints only (0 <= ms)."""
    room = _TICKS_MASK - stamp
    if ms <= room:
        return stamp + ms
    if ms <= _TICKS_MASK:
        return ms - room - 1
    return (stamp + ms) & _TICKS_MASK  # a step of 12+ days (host tools only)


class VirtualClock(Clock):
    """Monotonic ms start at ticks_start and wrap at 2**30 like ticks_ms() on the board;
    the wall clock (local standard time) is invalid until set (a meter without a time
    source). wall_s: the start in seconds since 2000-01-01 (a host-side convenience: it
    is split into minutes and ms at once)."""

    def __init__(self, wall_s=None, ticks_start=0):
        self._ms = ticks_start & _TICKS_MASK
        self._minute = 0  # wall minutes since 2000-01-01
        self._msm = 0  # ms inside the minute, 0 .. 59_999
        self._valid = wall_s is not None
        if wall_s is not None:
            self._minute = wall_s // 60
            self._msm = (wall_s - self._minute * 60) * 1000

    def _wall_add(self, ms):
        t = self._msm + ms
        if 0 <= t < _MS_PER_MIN:
            self._msm = t
            return
        q = t // _MS_PER_MIN
        self._minute += q
        self._msm = t - q * _MS_PER_MIN

    def advance(self, ms):
        self._ms = _wrap_add(self._ms, ms)
        self._wall_add(ms)

    def ticks_ms(self):
        return self._ms

    def wall_seconds(self):
        """Seconds since 2000-01-01 (host tools and tests: a long int after 2034 on a
        31-bit port; the meter reads wall_minute() and wall_second())."""
        return self._minute * 60 + self._msm // 1000

    def wall_minute(self):
        return self._minute

    def wall_second(self):
        return self._msm // 1000

    def wall_valid(self):
        return self._valid

    def set_wall(self, minute, second):
        self._minute = minute
        self._msm = second * 1000
        self._valid = True

    def invalidate(self):
        self._valid = False

    def jump(self, seconds):
        """Step the wall clock (not monotonic time) by seconds, forward or backward."""
        q = seconds // 60
        self._minute += q
        self._wall_add((seconds - q * 60) * 1000)
