"""Integer calendar of the wall clock (minutes since 2000-01-01) against CPython datetime."""

import datetime

from hypothesis import given, strategies as st

from meter import caltime

EPOCH = datetime.datetime(2000, 1, 1)
LAST = (datetime.datetime(2999, 12, 31, 23, 59) - EPOCH) // datetime.timedelta(minutes=1)


@given(st.integers(min_value=0, max_value=LAST))
def test_minute_splits_into_the_same_calendar_fields_as_datetime(minute):
    dt = EPOCH + datetime.timedelta(minutes=minute)
    assert caltime.ymdhm(minute) == (dt.year, dt.month, dt.day, dt.hour, dt.minute)


@given(st.integers(min_value=0, max_value=LAST))
def test_fields_convert_back_to_the_same_minute(minute):
    assert caltime.to_minute(*caltime.ymdhm(minute)) == minute


def test_leap_days_and_century_rules():
    assert caltime.ymdhm(caltime.to_minute(2024, 2, 29, 12, 0)) == (2024, 2, 29, 12, 0)
    assert caltime.to_minute(2100, 2, 29, 0, 0) == -1  # 2100 is not a leap year
    assert caltime.to_minute(2000, 2, 29, 0, 0) == 59 * 1440  # 2000 is
    assert caltime.days_in_month(2023, 2) == 28


def test_out_of_range_fields_give_minus_one():
    for bad in ((1999, 12, 31, 0, 0), (2026, 13, 1, 0, 0), (2026, 4, 31, 0, 0),
                (2026, 1, 1, 24, 0), (2026, 1, 1, 0, 60), (2026, 0, 1, 0, 0)):
        assert caltime.to_minute(*bad) == -1, bad


def test_split_into_writes_a_preallocated_list():
    out = [0] * 5
    caltime.split_into(caltime.to_minute(2026, 11, 28, 19, 5), out)
    assert out == [2026, 11, 28, 19, 5]
