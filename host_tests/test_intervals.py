"""Interval capture: 1-minute ring, 5/15/30-minute values, and the missing-boundary rule; the
one ring type (SeriesRing) all three series are kept in."""

import pytest
from hypothesis import given, settings, strategies as st

from meter.clock import Now
from meter.metering.intervals import (BACKWARD, CAPTURED, COLUMNS, FIVE, GAP, HALF_HOUR, MINUTE,
                                      MISSING, RING_MINUTES, FiveMinuteRing, HalfHourHistory,
                                      IntervalCapture, MinuteRing, SeriesRing)
from meter.metering.registers import FWD, LAG, LEAD, MODULO, REV, EnergyRegisters

DAY0 = 9_000 * 1440  # a midnight, in minutes since 2000-01-01


class Rig:
    """Registers + capture driven by 1-second ticks at a constant load."""

    def __init__(self, watts=3600, volt=1010):
        self.regs = EnergyRegisters(unit=0x04, coefficient=1)  # 0.1 Wh counts
        self.cap = IntervalCapture(self.regs)
        self.watts = watts
        self.volt = volt
        self.now = Now()

    def tick(self, t, valid=True, volt=None):
        """One capture tick at wall second t (seconds since 2000-01-01)."""
        return self.cap.on_tick(self.now.at(t * 1000, t // 60, t % 60, valid),
                                self.volt if volt is None else volt)

    def run(self, start_s, seconds, valid=True):
        bits = 0
        for t in range(start_s, start_s + seconds):
            self.regs.add(FWD, self.watts)
            self.regs.add(LAG, self.watts // 4)
            bits |= self.tick(t, valid)
        return bits


def test_a_steady_hour_fills_the_ring_with_one_value_per_minute():
    rig = Rig()
    bits = rig.run(DAY0 * 60, 3600)
    assert bits & CAPTURED and bits & FIVE and bits & HALF_HOUR and not bits & GAP
    ring = rig.cap.ring
    for m in range(DAY0, DAY0 + 60):
        s = ring.slot(m)
        assert s >= 0
        # 3600 W for (m - DAY0) minutes plus the first tick of the minute, in 0.1 Wh
        assert ring.fwd[s] == ((m - DAY0) * 60 + 1) * 3600 // 360


def test_the_ring_keeps_exactly_the_last_60_minutes():
    rig = Rig()
    rig.run(DAY0 * 60, 2 * 3600)
    ring = rig.cap.ring
    assert ring.latest() == DAY0 + 119
    assert all(ring.slot(m) >= 0 for m in range(DAY0 + 60, DAY0 + 120))
    assert all(ring.slot(m) == MISSING for m in range(DAY0, DAY0 + 60))


def test_five_fifteen_and_thirty_minute_values_derive_from_cumulative_values():
    rig = Rig(watts=7200)  # 7200 J per second = 20 counts of 0.1 Wh
    rig.run(DAY0 * 60, 3600)
    five = rig.cap.five
    per_minute = 7200 * 60 // 360
    assert five.energy(DAY0 + 30, 5) == 5 * per_minute
    assert five.energy(DAY0 + 30, 15) == 15 * per_minute
    assert five.energy(DAY0 + 30, 30) == 30 * per_minute
    assert five.energy(DAY0 + 30, 15, LAG) == 15 * per_minute // 4
    assert five.energy(DAY0 + 30, 5, REV) == 0
    assert rig.cap.half.slot(DAY0 + 30) >= 0
    assert rig.cap.half.slot(DAY0 + 45) == MISSING  # not a half-hour boundary


def test_voltage_average_covers_the_interval_and_needs_its_start_boundary():
    rig = Rig(volt=1000)
    rig.run(DAY0 * 60, 150)  # 00:00:00 .. 00:02:29 at 100.0 V
    rig.volt = 1030
    rig.run(DAY0 * 60 + 150, 600)  # 00:02:30 .. 00:12:29 at 103.0 V
    five = rig.cap.five
    # the very first boundary has no preceding interval: its voltage is missing
    assert five.volt[five.slot(DAY0)] == MISSING
    # 00:00 - 00:05: 150 s at 1000 and 150 s at 1030
    assert five.volt[five.slot(DAY0 + 5)] == (150 * 1000 + 150 * 1030) // 300
    assert five.volt[five.slot(DAY0 + 10)] == 1030


def test_an_outage_leaves_the_missed_boundaries_missing_and_invents_nothing():
    rig = Rig()
    rig.run(DAY0 * 60, 600)  # to 00:09:59
    before = rig.regs.count[FWD]
    bits = rig.run((DAY0 + 25) * 60 + 1, 60)  # power back at 00:25:01
    assert bits & GAP
    ring, five = rig.cap.ring, rig.cap.five
    assert all(ring.slot(m) == MISSING for m in range(DAY0 + 10, DAY0 + 25))
    s = ring.slot(DAY0 + 25)
    assert s >= 0 and ring.fwd[s] == before + 3600 // 360  # only the first tick's energy
    assert five.slot(DAY0 + 15) == MISSING and five.slot(DAY0 + 20) == MISSING
    assert five.energy(DAY0 + 25, 15) == MISSING  # the 00:10 end point is missing
    assert five.volt[five.slot(DAY0 + 25)] == MISSING  # interval start unknown


def test_a_boundary_first_seen_late_is_missing():
    rig = Rig()
    rig.run(DAY0 * 60, 60)
    bits = rig.run((DAY0 + 1) * 60 + 10, 50)  # ticks resume at 00:01:10
    assert bits & MINUTE and bits & GAP and not bits & CAPTURED
    assert rig.cap.ring.slot(DAY0 + 1) == MISSING


def test_a_forward_clock_jump_skips_boundaries_without_inventing_values():
    rig = Rig()
    rig.run(DAY0 * 60, 120)
    rig.run((DAY0 + 7) * 60, 60)  # clock stepped forward 5 minutes at 00:02:00
    ring = rig.cap.ring
    assert all(ring.slot(m) == MISSING for m in range(DAY0 + 2, DAY0 + 7))
    assert ring.slot(DAY0 + 7) >= 0
    assert rig.cap.missed == 5


def test_a_backward_clock_jump_never_rewrites_a_stored_boundary():
    rig = Rig()
    rig.run(DAY0 * 60, 600)
    stored = [(m, rig.cap.ring.fwd[rig.cap.ring.slot(m)]) for m in range(DAY0, DAY0 + 10)]
    bits = rig.run((DAY0 + 3) * 60, 420)  # clock set back 7 minutes, runs to 00:09:59 again
    assert bits & BACKWARD and not bits & CAPTURED
    assert [(m, rig.cap.ring.fwd[rig.cap.ring.slot(m)]) for m in range(DAY0, DAY0 + 10)] \
        == stored
    bits = rig.run((DAY0 + 10) * 60, 60)  # capture resumes after the high-water mark
    assert bits & CAPTURED
    assert rig.cap.ring.fwd[rig.cap.ring.slot(DAY0 + 10)] == rig.regs.count[FWD] - 59 * 10


def test_nothing_is_captured_while_the_clock_is_invalid_but_energy_is_counted():
    rig = Rig()
    bits = rig.run(DAY0 * 60, 600, valid=False)
    assert bits == 0
    assert rig.cap.ring.latest() == MISSING
    assert rig.regs.count[FWD] == 600 * 10


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-900, 900), st.integers(1, 400), st.booleans()),
                min_size=1, max_size=12))
def test_no_boundary_is_ever_written_twice_or_with_a_value_other_than_the_register(steps):
    """Random clock jumps, outages and invalid periods: each stored minute value is the
    register reading at a tick inside that minute's capture window, written once."""
    rig = Rig(watts=1000)
    t = DAY0 * 60
    written = {}
    for jump, seconds, valid in steps:
        t = max(0, t + jump)
        for k in range(seconds):
            now = t + k
            rig.regs.add(FWD, rig.watts)
            bits = rig.tick(now, valid, 1000)
            if bits & CAPTURED:
                m = now // 60
                assert m not in written, "boundary captured twice"
                assert now % 60 < 3
                written[m] = rig.regs.count[FWD]
        t += seconds
    ring = rig.cap.ring
    for m, value in written.items():
        s = ring.slot(m)
        if s >= 0:
            assert ring.fwd[s] == value
    stamps = sorted(written)
    values = [written[m] for m in stamps]
    assert values == sorted(values), "cumulative values go backwards in time order"


# ---- the ring type -------------------------------------------------------------------------

def test_the_three_series_are_one_ring_type_differing_in_step_and_columns():
    cap = IntervalCapture(EnergyRegisters())
    shapes = [(r.step, r.entries, r.ncols) for r in (cap.ring, cap.five, cap.half)]
    assert shapes == [(1, RING_MINUTES, 2), (5, 288, 5), (30, 96, 2)]
    for ring in (MinuteRing(), FiveMinuteRing(12), HalfHourHistory(3)):
        assert type(ring) is SeriesRing
    assert (FiveMinuteRing(12).entries, HalfHourHistory(3).entries) == (12, 144)
    five = cap.five
    assert (five.fwd, five.rev, five.lag, five.lead, five.volt) == five.cols
    assert (cap.half.fwd, cap.half.rev) == cap.half.cols
    assert not hasattr(cap.half, "lag") and not hasattr(cap.ring, "volt")
    # nothing recorded yet: every slot reads missing, an unknown voltage is MISSING
    assert five.latest() == MISSING and list(five.volt) == [MISSING] * 288
    assert list(five.fwd) == [0] * 288


def test_a_ring_of_a_bad_shape_is_refused():
    for bad in ((0, 10, 2), (5, 0, 2), (5, 10, 0), (5, 10, len(COLUMNS) + 1)):
        with pytest.raises(ValueError) as e:
            SeriesRing(*bad)
        assert e.value.args[0] == "E_SERIES_SHAPE"


def test_values_beyond_the_ring_columns_are_ignored_and_off_step_minutes_are_missing():
    half = HalfHourHistory(1)
    half.record(DAY0 + 30, 5, 6, 7, 8, 9)
    s = half.slot(DAY0 + 30)
    assert (half.fwd[s], half.rev[s]) == (5, 6)
    assert half.slot(DAY0 + 31) == MISSING and half.slot(-30) == MISSING
    one = SeriesRing(5, 4, 1)
    one.record(DAY0, 42, 99)
    assert one.cols[0][one.slot(DAY0)] == 42 and one.fwd is one.cols[0]


ring_shapes = st.tuples(st.sampled_from((1, 5, 15, 30)), st.integers(1, 40),
                        st.integers(1, len(COLUMNS)))


@settings(max_examples=150, deadline=None)
@given(ring_shapes, st.lists(st.tuples(st.integers(0, 300), st.lists(
    st.integers(-1, MODULO - 1), min_size=5, max_size=5)), max_size=80))
def test_property_a_series_ring_matches_a_model_of_its_newest_entries(shape, writes):
    """Each slot holds the last boundary written to it and its values; a boundary reads
    back exactly while it is in its slot and as missing otherwise; latest() is the newest
    stamp held; energy() is the register delta between two held boundaries."""
    step, entries, ncols = shape
    ring = SeriesRing(step, entries, ncols)
    model = {}  # slot -> (minute, values)
    for k, values in writes:
        minute = DAY0 + step * k
        ring.record(minute, *values)
        if not -1 <= values[4] <= 32767:  # the 16-bit voltage column: unknown, not wrapped
            values = values[:4] + [MISSING]
        model[(minute // step) % entries] = (minute, values[:ncols])
    held = {m: v for m, v in model.values()}
    for k in range(-2, 303):
        minute = DAY0 + step * k
        s = ring.slot(minute)
        if minute in held:
            assert s >= 0 and [ring.cols[c][s] for c in range(ncols)] == held[minute]
            assert getattr(ring, COLUMNS[ncols - 1])[s] == held[minute][-1]
        else:
            assert s == MISSING
        if step > 1:
            assert ring.slot(minute + 1) == MISSING
    assert ring.latest() == (max(held) if held else MISSING)
    if ncols >= 2:
        for a in held:
            for b in (a - step, a - 3 * step):
                got = ring.energy(a, a - b, REV)
                if b in held:
                    assert got == (held[a][1] - held[b][1]) % MODULO
                else:
                    assert got == MISSING


def test_reactive_energy_over_15_minutes_reads_the_lag_and_lead_columns():
    five = FiveMinuteRing(6)
    five.record(DAY0, 10, 20, 30, 40, 1000)
    five.record(DAY0 + 15, 11, 25, 36, 47, 1001)
    assert [five.energy(DAY0 + 15, 15, r) for r in (FWD, REV, LAG, LEAD)] == [1, 5, 6, 7]
    five.record(DAY0 + 30, MODULO - 1, 0, 0, 0, 1000)
    five.record(DAY0 + 45, 2, 0, 0, 0, 1000)
    assert five.energy(DAY0 + 45, 15) == 3  # across the 8-digit wrap


def test_a_correction_behind_the_high_water_mark_drops_the_later_boundaries_and_resumes():
    rig = Rig()
    t0 = DAY0 * 60
    rig.run(t0, 3600)
    rig.run(t0 + 7 * 86_400, 1800)  # a week ahead by mistake
    assert rig.cap.correct(DAY0 + 60) == 30  # back to the real time, hh:00
    cap = rig.cap
    assert cap.high_water == DAY0 + 59 and cap.future_dropped == 30
    assert cap.ring.latest() == DAY0 + 59 and cap.five.latest() == DAY0 + 55
    assert cap.half.latest() == DAY0 + 30 and cap.last_five == DAY0 + 55
    bits = rig.run(t0 + 3600, 60)
    assert bits & CAPTURED and not bits & GAP and cap.ring.latest() == DAY0 + 60
    assert cap.correct(DAY0 + 61) == 0  # not behind the mark: nothing dropped
