# ESP32 clock: monotonic ms from time.ticks_ms() (wraps at 2**30, compare with differences),
# wall clock from the RTC kept in local standard time, minutes since 2000-01-01.
#
# The RTC's seconds come from time.time() minus the 2000 epoch measured at start-up (0 on
# the ESP32 port, whose epoch is 2000; 946684800 on a 1970-epoch build). wall_minute()
# samples the RTC once and latches that second for wall_second(), so a caller reading
# minute then second (as Meter.step does) never sees 12:00 with second 00 of 12:01.
# The validity flag lives in RTC memory: the RTC keeps time across soft/WDT resets and deep
# sleep and loses it at power-off, exactly like RTC memory.

import machine
import time

from meter.hal import Clock

from esp32hal import rtcmem


class EspClock(Clock):
    def __init__(self):
        self._rtc = machine.RTC()
        self._epoch = time.mktime((2000, 1, 1, 0, 0, 0, 0, 0))
        self._valid = rtcmem.get(rtcmem.CLOCK_VALID) == 1
        self._second = 0

    def ticks_ms(self):
        return time.ticks_ms()

    def wall_seconds(self):
        """Seconds since 2000-01-01 00:00 local standard time."""
        return time.time() - self._epoch

    def wall_minute(self):
        s = self.wall_seconds()
        self._second = s % 60
        return s // 60

    def wall_second(self):
        """The second of the latest wall_minute() sample."""
        return self._second

    def wall_valid(self):
        return self._valid

    def set_wall(self, minute, second):
        if minute < 0 or not 0 <= second < 60:
            raise ValueError("E_WALL_TIME")
        t = time.localtime(minute * 60 + second + self._epoch)
        # RTC.datetime: (year, month, day, weekday, hours, minutes, seconds, subseconds)
        self._rtc.datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
        self._second = second
        self._valid = True
        rtcmem.put(rtcmem.CLOCK_VALID, 1)

    def invalidate(self):
        self._valid = False
        rtcmem.put(rtcmem.CLOCK_VALID, 0)
