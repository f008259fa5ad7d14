# Integer calendar for the wall clock: minutes since 2000-01-01 00:00 <-> Y/M/D h:m.
#
# Proleptic Gregorian calendar, local standard time (no DST). Days are counted from
# 2000-03-01, the start of a 400-year era, so leap days fall at the end of each
# computed year and no table is needed. Every intermediate value is a small int for
# any date from 2000 to 2999 (minutes < 2**30 up to year 4041). Nothing here allocates
# except the optional tuple helper ymdhm().

from micropython import const

_MARCH_OFFSET = const(60)  # days from 2000-01-01 to 2000-03-01 (2000 is a leap year)
_ERA_DAYS = const(146_097)  # days in 400 Gregorian years
MINUTES_PER_DAY = const(1440)


def days_from_civil(y, m, d):
    """Days since 2000-01-01 of the date y-m-d (no range check; see valid_date)."""
    if m <= 2:
        y -= 1
        mp = m + 9
    else:
        mp = m - 3
    y -= 2000
    era = y // 400
    yoe = y - era * 400
    doy = (153 * mp + 2) // 5 + d - 1
    return era * _ERA_DAYS + yoe * 365 + yoe // 4 - yoe // 100 + doy + _MARCH_OFFSET


def civil_into(days, out):
    """Write year, month, day of `days` since 2000-01-01 into out[0], out[1], out[2]."""
    z = days - _MARCH_OFFSET
    era = z // _ERA_DAYS
    doe = z - era * _ERA_DAYS
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    if mp < 10:
        m = mp + 3
    else:
        m = mp - 9
    y = yoe + era * 400 + 2000
    if m <= 2:
        y += 1
    out[0] = y
    out[1] = m
    out[2] = d


def split_into(minute, out):
    """out[0..4] = year, month, day, hour, minute of wall `minute` (>= 0)."""
    days = minute // MINUTES_PER_DAY
    rest = minute - days * MINUTES_PER_DAY
    civil_into(days, out)
    out[3] = rest // 60
    out[4] = rest - (rest // 60) * 60


def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_in_month(y, m):
    if m == 2:
        return 29 if is_leap(y) else 28
    if m in (4, 6, 9, 11):
        return 30
    return 31


def valid_date(y, m, d):
    return 2000 <= y <= 2999 and 1 <= m <= 12 and 1 <= d <= days_in_month(y, m)


def to_minute(y, m, d, hh, mm):
    """Wall minute of y-m-d hh:mm, or -1 when any field is out of range."""
    if not valid_date(y, m, d) or not (0 <= hh < 24) or not (0 <= mm < 60):
        return -1
    return days_from_civil(y, m, d) * MINUTES_PER_DAY + hh * 60 + mm


def ymdhm(minute):
    """(year, month, day, hour, minute) as a tuple (allocates: host and log use)."""
    out = [0, 0, 0, 0, 0]
    split_into(minute, out)
    return tuple(out)
