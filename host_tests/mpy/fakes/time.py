# Fake `time` for board scenarios: the ESP32 port's time module over the simulated chip's
# virtual clock (espchip): ticks_* count ms since this boot from espchip.tick_base and
# wrap at 2**30; time() reads
# the RTC (machine.RTC().datetime() sets it), seconds since 2000 (or 1970 when
# espchip.epoch_1970); localtime() == gmtime() (no time zone on the board); sleeps advance
# the virtual clock (a missed watchdog feed resets inside them).

import espchip

_PERIOD = 1 << 30
_HALF = 1 << 29
_MASK = _PERIOD - 1
_1970 = 946684800
_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def ticks_ms():
    return (espchip.tick_base + espchip.ms) & _MASK


def ticks_us():
    return ((espchip.tick_base + espchip.ms) * 1000) & _MASK


def ticks_cpu():
    return ticks_us()


def ticks_add(t, delta):
    return (t + delta) & _MASK


def ticks_diff(a, b):
    return ((a - b + _HALF) & _MASK) - _HALF


def sleep_ms(n):
    espchip.advance(n)


def sleep_us(n):
    espchip.advance(n // 1000)


def sleep(s):
    espchip.advance(int(s * 1000))


def _epoch():
    return _1970 if espchip.epoch_1970 else 0


def time():
    return espchip.rtc_ms // 1000 + _epoch()


def time_ns():
    return (espchip.rtc_ms + _epoch() * 1000) * 1_000_000


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def mktime(t):
    """Seconds since the epoch of (year, month, mday, hour, minute, second, wday, yday)."""
    y, mo, d, h, mi, s = t[0], t[1], t[2], t[3], t[4], t[5]
    days = 0
    for yy in range(2000, y) if y >= 2000 else ():
        days += 366 if _leap(yy) else 365
    for yy in range(y, 2000) if y < 2000 else ():
        days -= 366 if _leap(yy) else 365
    for m in range(1, mo):
        days += _MDAYS[m - 1] + (1 if m == 2 and _leap(y) else 0)
    days += d - 1
    return ((days * 24 + h) * 60 + mi) * 60 + s + _epoch()


def gmtime(secs=None):
    if secs is None:
        secs = time()
    secs -= _epoch()
    days, rem = divmod(secs, 86400)
    wday = (days + 5) % 7  # 2000-01-01 was a Saturday (Monday = 0)
    y = 2000
    while days < 0:
        y -= 1
        days += 366 if _leap(y) else 365
    while days >= (366 if _leap(y) else 365):
        days -= 366 if _leap(y) else 365
        y += 1
    yday = days + 1
    mo = 1
    while True:
        n = _MDAYS[mo - 1] + (1 if mo == 2 and _leap(y) else 0)
        if days < n:
            break
        days -= n
        mo += 1
    return (y, mo, days + 1, rem // 3600, rem // 60 % 60, rem % 60, wday, yday)


localtime = gmtime
