# ESP32 clock: monotonic ms from time.ticks_ms() (wraps at 2**30, compare with differences),
# wall clock from the RTC kept in local standard time, minutes since 2000-01-01.
#
# Small ints to 2099: no seconds or ms since 2000 are ever formed (seconds pass 2**30 on
# 2034-01-10: every time.time() after that is a long int on the board). The RTC's date
# tuple (RTC.datetime(): year, month, day, weekday, hours, minutes, seconds, us) is turned
# into minutes since 2000 with meter.caltime and latched against ticks_ms(); between
# latches the wall clock is that minute plus the ms elapsed since (both count the same
# crystal on the ESP32 port), so a read allocates nothing. The RTC is latched again every
# _RESYNC_MS (one 8-tuple then: a time source that sets the RTC directly is picked up
# within that time, and the elapsed ms stay far below the 2**29 ticks_diff range).
# wall_minute() samples once and latches that second for wall_second(), so a caller
# reading minute then second (as Meter.step does) never sees 12:00 with second 00 of 12:01.
# The validity flag lives in RTC memory: the RTC keeps time across soft/WDT resets and deep
# sleep and loses it at power-off, exactly like RTC memory.

from micropython import const
import machine
import time

from meter import caltime
from meter.hal import Clock

from esp32hal import rtcmem

_RESYNC_MS = const(3_600_000)  # re-latch the RTC at least once an hour
_MS_PER_MIN = const(60_000)
_SATURDAY = const(5)  # weekday of 2000-01-01 (RTC.datetime: Monday 0)


class EspClock(Clock):
    def __init__(self):
        self._rtc = machine.RTC()
        self._valid = rtcmem.get(rtcmem.CLOCK_VALID) == 1
        self._second = 0
        self._ymd = [0, 0, 0, 0, 0]  # caltime.split_into() output for set_wall()
        self._base_min = 0  # the latched RTC reading: minutes since 2000-01-01 ...
        self._base_ms = 0  # ... ms inside that minute (0 .. 59_999) ...
        self._base_ticks = 0  # ... and ticks_ms() when it was read
        self._latch()

    def _latch(self):
        """Read the RTC once (allocates its datetime tuple) and latch it against ticks_ms.
        A date outside 2000..2999 reads as minute -1."""
        t = self._rtc.datetime()
        self._base_ticks = time.ticks_ms()
        us = t[7] if 0 <= t[7] < 1_000_000 else 0
        self._base_min = caltime.to_minute(t[0], t[1], t[2], t[4], t[5])
        self._base_ms = t[6] * 1000 + us // 1000 if 0 <= t[6] < 60 else 0

    def ticks_ms(self):
        return time.ticks_ms()

    def wall_minute(self):
        el = time.ticks_diff(time.ticks_ms(), self._base_ticks)
        if not 0 <= el < _RESYNC_MS:
            self._latch()
            el = time.ticks_diff(time.ticks_ms(), self._base_ticks)
        ms = self._base_ms + el  # < 60_000 + _RESYNC_MS: a small int
        q = ms // _MS_PER_MIN
        self._second = (ms - q * _MS_PER_MIN) // 1000
        return self._base_min + q

    def wall_second(self):
        """The second of the latest wall_minute() sample."""
        return self._second

    def wall_valid(self):
        return self._valid

    def set_wall(self, minute, second):
        if minute < 0 or not 0 <= second < 60:
            raise ValueError("E_WALL_TIME")
        d = self._ymd
        caltime.split_into(minute, d)
        wd = (minute // caltime.MINUTES_PER_DAY + _SATURDAY) % 7
        # RTC.datetime: (year, month, day, weekday, hours, minutes, seconds, subseconds)
        self._rtc.datetime((d[0], d[1], d[2], wd, d[3], d[4], second, 0))
        self._latch()
        self._second = second
        self._valid = True
        rtcmem.put(rtcmem.CLOCK_VALID, 1)

    def invalidate(self):
        self._valid = False
        rtcmem.put(rtcmem.CLOCK_VALID, 0)
