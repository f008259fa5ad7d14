# Time as one value (Now), and setting the wall clock by command.
#
# Now is the meter's reading of its clock for one step: monotonic ms, wall minute and second,
# the validity flag, and the minute to stamp events with (-1 while the clock is invalid).
# The shell owns one preallocated Now, fills it once per step with read(clock) and passes it
# down; every part takes `now` instead of loose (ms, minute, second, valid) arguments, so
# all parts of one step see the same instant. read() allocates nothing: the fields are
# small ints and a bool reassigned in place.
#
# Reading minute and second consistently is the clock's contract (meter.hal.Clock):
# wall_minute() samples the wall clock once and latches that sample's second for the
# wall_second() that follows, so a reading can never pair 12:00 with second 00 of 12:01.
# read() calls them in that order.
#
# Setting the clock (set_clock) is bounded: a valid clock moves by at most CLOCK_JUMP_S
# (one hour: drift and ordinary corrections; the clock is local standard time, no DST)
# unless the command says force=True, which is logged as its own event (CLOCK_FORCED).
# The first setting of an invalid clock is not bounded. A backward correction within the
# bound holds capture until the clock passes the high-water mark again (at most the bound;
# no stored boundary is rewritten). A forced correction behind the high-water mark (or a
# first setting more than the bound behind the mark restored from flash) moves
# the high-water mark with it: the boundaries stamped after the corrected time are
# dropped from RAM and flash (FUTURE_DROPPED logs the span) and capture resumes at once.

from micropython import const

from meter.events import CLOCK_ADJUST_OLD, CLOCK_ADJUST_NEW, CLOCK_FORCED, FUTURE_DROPPED
from meter.errors import SettingError

MAX_MINUTE = const(100 * 366 * 1440)  # 2000-01-01 .. 2099: small ints
NO_MINUTE = const(-1)  # the event stamp while the wall clock is invalid
CLOCK_JUMP_S = const(3600)  # largest change of a valid clock without force=True (s)


class Now:
    """One instant of the meter's clock. Fields: ms (monotonic, wraps: compare with
    meter.ticks), minute (wall minutes since 2000-01-01), second (0..59), valid (the wall
    clock has been set), ev_minute (minute when valid, else NO_MINUTE: the event stamp)."""

    def __init__(self, ms=0, minute=0, second=0, valid=False):
        self.ms = 0
        self.minute = 0
        self.second = 0
        self.valid = False
        self.ev_minute = NO_MINUTE
        self.at(ms, minute, second, valid)

    def read(self, clock):
        """Fill from a meter.hal.Clock (monotonic first, then minute, second, validity)."""
        self.ms = clock.ticks_ms()
        m = clock.wall_minute()
        self.second = clock.wall_second()
        self.valid = clock.wall_valid()
        self.minute = m
        self.ev_minute = m if self.valid else NO_MINUTE
        return self

    def at(self, ms, minute, second, valid):
        """Set every field (tests, tools, replays). Returns self."""
        self.ms = ms
        self.minute = minute
        self.second = second
        self.valid = bool(valid)
        self.ev_minute = minute if self.valid else NO_MINUTE
        return self

    def __repr__(self):
        return "Now(ms=%d, %d:%02d, valid=%s)" % (self.ms, self.minute, self.second, self.valid)


def set_clock(clock, events, store, minute, second, capture=None, force=False):
    """Set `clock` (meter.hal.Clock) to (minute, second) by command. Returns the jump in
    seconds (new - old), or None when the clock was not valid before. Raises SettingError
    ("E_CLOCK_RANGE") for an out-of-range time and ("E_CLOCK_JUMP") for a change of a
    valid clock larger than CLOCK_JUMP_S without force=True, changing nothing. With
    `capture` (metering.intervals.IntervalCapture), a forced correction behind its
    high-water mark (or any setting more than CLOCK_JUMP_S behind it) drops the boundaries
    stamped after the corrected time (capture.correct, store.drop_future) and logs
    FUTURE_DROPPED (a: first minute dropped, b: the newest)."""
    if not isinstance(minute, int) or not isinstance(second, int) or not (
            0 <= minute < MAX_MINUTE and 0 <= second <= 59):
        raise SettingError("E_CLOCK_RANGE")
    was_valid = clock.wall_valid()
    old_m = clock.wall_minute() if was_valid else -1
    old_s = clock.wall_second() if was_valid else 0
    jump = (minute - old_m) * 60 + second - old_s
    if was_valid and not force and (jump > CLOCK_JUMP_S or jump < -CLOCK_JUMP_S):
        raise SettingError("E_CLOCK_JUMP")
    clock.set_wall(minute, second)
    events.log(CLOCK_ADJUST_OLD, old_m, old_s, old_m, old_s)
    events.log(CLOCK_ADJUST_NEW, minute, second, minute, second)
    if force:
        events.log(CLOCK_FORCED, minute, second, minute - old_m if was_valid else 0, 0)
    hw = capture.high_water if capture is not None else NO_MINUTE
    if minute < hw and (force or (hw - minute) * 60 > CLOCK_JUMP_S):
        # forced, or the first setting of an invalid clock far behind the restored mark
        capture.correct(minute)
        events.log(FUTURE_DROPPED, minute, second, minute + 1, hw)
        store.drop_future(capture.high_water)
    store.commit_clock(True, minute, second, store.clock_adjustments + 1)
    if not was_valid:
        return None
    return jump
