# Setting the wall clock by command: range check, clock-adjust events, persisted setting.
#
# A set is recorded as two events, IDIS style: CLOCK_ADJUST_OLD stamped with the time
# before the set (a, b = old minute, old second; minute -1 when the clock was invalid) and
# CLOCK_ADJUST_NEW stamped with the new time (a, b = new minute, new second). Both events
# and the setting (valid flag, time, number of adjustments) are committed to the journal
# at once, so a jump is never lost with a power cut that follows it.
#
# Interval capture stays consistent across jumps without help from here: its high-water
# mark (persisted with the registers) makes a backward jump re-capture nothing until the
# clock passes the newest processed boundary, and a forward jump leaves the skipped
# boundaries missing. No interval is duplicated, overwritten or invented.

from micropython import const

from meter.events import CLOCK_ADJUST_OLD, CLOCK_ADJUST_NEW
from meter.metering.registers import SettingError

MAX_MINUTE = const(100 * 366 * 1440)  # 2000-01-01 .. 2099: small ints


def set_clock(clock, events, store, minute, second):
    """Set `clock` (meter.hal.Clock) to (minute, second) by command. Returns the jump in
    seconds (new - old), or None when the clock was not valid before. Raises SettingError
    ("E_CLOCK_RANGE") for an out-of-range time, changing nothing."""
    if not isinstance(minute, int) or not isinstance(second, int) or not (
            0 <= minute < MAX_MINUTE and 0 <= second <= 59):
        raise SettingError("E_CLOCK_RANGE")
    was_valid = clock.wall_valid()
    old_m = clock.wall_minute() if was_valid else -1
    old_s = clock.wall_second() if was_valid else 0
    clock.set_wall(minute, second)
    events.log(CLOCK_ADJUST_OLD, old_m, old_s, old_m, old_s)
    events.log(CLOCK_ADJUST_NEW, minute, second, minute, second)
    store.commit_clock(True, minute, second, store.clock_adjustments + 1)
    if not was_valid:
        return None
    return (minute - old_m) * 60 + second - old_s
