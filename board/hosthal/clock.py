# A settable virtual clock: monotonic ms and a wall clock, advanced by the test or simulation.

from meter.hal import Clock


_TICKS_MASK = 0x3FFFFFFF  # MicroPython's ticks_ms() wraps at 2**30


class VirtualClock(Clock):
    """Monotonic ms start at ticks_start and wrap at 2**30 like ticks_ms() on the board;
    the wall clock is kept in seconds since 2000-01-01 local standard time and is invalid
    until set (a meter without a time source)."""

    def __init__(self, wall_s=None, ticks_start=0):
        self._ms = ticks_start
        self._wall_ms = 0 if wall_s is None else wall_s * 1000
        self._valid = wall_s is not None

    def advance(self, ms):
        self._ms += ms
        self._wall_ms += ms

    def ticks_ms(self):
        return self._ms & _TICKS_MASK

    def wall_seconds(self):
        return self._wall_ms // 1000

    def wall_minute(self):
        return self._wall_ms // 60000

    def wall_second(self):
        return (self._wall_ms // 1000) % 60

    def wall_valid(self):
        return self._valid

    def set_wall(self, minute, second):
        self._wall_ms = (minute * 60 + second) * 1000
        self._valid = True

    def invalidate(self):
        self._valid = False

    def jump(self, seconds):
        """Step the wall clock (not monotonic time) by seconds, forward or backward."""
        self._wall_ms += seconds * 1000
