"""Current limiter and breaker: trip rule, re-close, lock-out, resets, feedback faults,
clock fallback, drill shadow and persistence (meter.control.limiter, .breaker, .drill)."""

import pytest
from hypothesis import given, settings, strategies as st

from meter.clock import Now
from meter.control import status
from meter.control.breaker import Breaker
from meter.control.drill import K_LOCKOUT, K_RECLOSE, K_TRIP, REPORT_LEN
from meter.events import (BREAKER_CLOSE, BREAKER_FAULT, BREAKER_OPEN, CONFIG_CHANGE,
                          EventLog, LIMIT_CHANGE)
from meter.control.limiter import (BLOB_LEN, LIMIT_FALLBACK, MAX_MA, R_BOOT, R_LOCAL_RESET,
                                   R_LOCKOUT, R_OVERCURRENT, R_RECLOSE, S_CLOSED, S_LOCKED,
                                   S_OPEN, Limiter)
from meter.storage.persist import KIND_DRILL, KIND_LIMITER, MAX_BLOB
from meter.control.reservations import ENDED, ReservationTable
from meter.ticks import TICKS_MASK, elapsed_ms
from hosthal.pins import FakeRelay

from headend import parse_drill_report
from remote_rig import TICKS_PERIOD, Rig, wrapping_clock


def at(ms, minute=0, second=0, valid=True):
    """A meter.clock.Now at monotonic ms (wall minute 0 by default)."""
    return Now().at(ms, minute, second, valid)


def test_current_above_the_limit_for_the_minimum_duration_opens_the_breaker():
    r = Rig(contract=30)
    r.tick(31_000, seconds=3)  # over at t=1,2,3: 2 s of over-run so far
    assert r.limiter.state == S_CLOSED and r.relay.commanded()
    r.tick(31_000)  # 3 s of over-run
    assert r.limiter.state == S_OPEN and not r.relay.commanded()
    ev = r.events_of(BREAKER_OPEN)
    assert len(ev) == 1 and ev[0][4] == R_OVERCURRENT and ev[0][5] == 31_000


def test_a_dip_below_the_limit_restarts_the_over_current_timer():
    r = Rig(contract=30)
    for _ in range(5):
        r.tick(35_000, seconds=3)
        r.tick(29_000)
    assert r.limiter.state == S_CLOSED and r.relay.operations == 0


def test_current_equal_to_the_limit_is_not_over_it():
    r = Rig(contract=20)
    r.tick(20_000, seconds=30)
    assert r.limiter.state == S_CLOSED


def test_the_second_line_of_a_three_wire_supply_is_limited_too():
    r = Rig(contract=20)
    r.tick(5_000, 25_000, seconds=4)
    assert r.limiter.state == S_OPEN


def test_zero_minimum_duration_trips_at_the_first_over_evaluation():
    r = Rig(contract=10, min_over_ms=0)
    r.tick(10_001)
    assert r.limiter.state == S_OPEN


def test_breaker_recloses_automatically_after_the_default_10_s():
    r = Rig(contract=30)
    r.tick(40_000, seconds=4)
    assert r.limiter.state == S_OPEN
    r.tick(0, seconds=9)
    assert not r.relay.commanded()
    r.tick(0)
    assert r.relay.commanded() and r.limiter.state == S_CLOSED and r.limiter.recloses == 1
    assert r.events_of(BREAKER_CLOSE)[-1][4] == R_RECLOSE


def test_after_the_maximum_re_closes_the_breaker_stays_open_until_a_local_reset():
    r = Rig(contract=30, max_recloses=2)
    for _ in range(2):
        r.tick(40_000, seconds=4)
        r.tick(0, seconds=10)
        assert r.limiter.state == S_CLOSED
    r.tick(40_000, seconds=4)
    assert r.limiter.state == S_LOCKED
    assert r.events_of(BREAKER_OPEN)[-1][4] == R_LOCKOUT
    r.tick(0, seconds=3600)
    assert not r.relay.commanded()
    assert r.limiter.reset(False, r.now()) == status.OK
    assert r.relay.commanded() and r.limiter.recloses == 0
    assert r.events_of(BREAKER_CLOSE)[-1][4] == R_LOCAL_RESET


def test_reset_of_a_closed_breaker_is_refused_and_changes_nothing():
    r = Rig()
    before = r.limiter.to_bytes()
    assert r.limiter.reset(False, r.now()) == status.E_STATE
    assert r.limiter.to_bytes() == before and not r.events_of(BREAKER_CLOSE)


def test_re_close_count_returns_to_zero_after_ten_quiet_minutes():
    r = Rig(contract=30, max_recloses=1)
    r.tick(40_000, seconds=4)
    r.tick(0, seconds=10)
    assert r.limiter.recloses == 1
    r.tick(0, seconds=600)
    assert r.limiter.recloses == 0
    r.tick(40_000, seconds=4)
    assert r.limiter.state == S_OPEN  # not locked: the count had been cleared


def test_every_relay_movement_is_logged_with_a_reason():
    r = Rig(contract=20, max_recloses=1)
    for _ in range(3):
        r.tick(25_000, seconds=5)
        r.tick(0, seconds=11)
    r.limiter.reset(True, r.now())
    opens, closes = r.events_of(BREAKER_OPEN), r.events_of(BREAKER_CLOSE)
    assert len(opens) + len(closes) == r.relay.operations == 4
    assert all(e[4] > 0 for e in opens + closes)


def test_contract_limit_change_applies_at_the_next_tick_and_is_logged():
    r = Rig(contract=60)
    assert r.limiter.set_contract(25, r.now()) == status.E_LIMIT
    assert r.limiter.set_contract(30, r.now()) == status.OK
    assert r.events_of(CONFIG_CHANGE)[-1][4:] == (71, 30)
    r.tick(0)
    assert r.limiter.active_a == 30
    assert r.events_of(LIMIT_CHANGE)[-1][4:] == (30, 0)


def test_an_invalid_clock_falls_back_to_the_contract_limit_and_reports_it():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(1, m + 1, m + 30, 20)
    r.until_minute(m + 2)
    assert r.limiter.active_a == 20
    r.clock.invalidate()
    r.tick(0)
    assert r.limiter.active_a == 60 and r.limiter.fallback
    ev = r.events_of(LIMIT_CHANGE)[-1]
    assert ev[2] == -1 and ev[4:] == (60, LIMIT_FALLBACK)
    r.tick(45_000, seconds=10)
    assert r.limiter.state == S_CLOSED  # 45 A is under the contract's 60 A
    r.clock.set_wall(r.clock.wall_minute(), r.clock.wall_second())
    r.tick(0)
    assert r.limiter.active_a == 20 and not r.limiter.fallback


def test_a_stuck_relay_raises_a_breaker_fault_and_an_alarm_once():
    r = Rig(contract=20)
    r.relay.stuck = True  # welded contacts: feedback stays closed
    r.tick(30_000, seconds=4)
    assert not r.relay.commanded() and r.relay.sensed()
    r.tick(30_000, seconds=3)
    faults = r.events_of(BREAKER_FAULT)
    assert len(faults) == 1 and faults[0][4:] == (0, 1)
    assert r.breaker.fault and r.breaker.alarm
    r.breaker.ack_alarm()
    assert not r.breaker.alarm and r.breaker.fault
    r.relay.stuck = False
    r.relay.command(False)
    r.tick(0)
    assert not r.breaker.fault


def test_feedback_is_not_judged_before_the_settle_time():
    ev = EventLog(8)
    relay = FakeRelay(True)
    b = Breaker(relay, ev, settle_ms=200)
    relay.stuck = True
    b.command(False, at(1000))
    assert not b.check(at(1100))
    assert b.check(at(1200)) and ev.count(BREAKER_FAULT) == 1


class DroppingRelay(FakeRelay):
    """A relay whose contacts can open by themselves (a thermal release, a failed coil)."""

    def drop(self):
        self._sensed = not self._cmd


def test_a_mismatch_long_after_the_last_command_is_a_fault_at_once():
    ev = EventLog(8)
    relay = DroppingRelay(True)
    b = Breaker(relay, ev, settle_ms=200)
    b.command(False, at(1000))
    b.command(True, at(2000))
    t = 2000
    for _ in range(10):  # the limiter checks every second
        t += 1000
        assert not b.check(at(t))
    t = (t + (1 << 29) + 5000) & TICKS_MASK  # 6.2 days on: elapsed since the command < 0
    relay.drop()
    assert b.check(at(t)) and ev.count(BREAKER_FAULT) == 1 and b.alarm


def test_a_new_command_restarts_the_settle_time():
    ev = EventLog(8)
    relay = FakeRelay(True)
    b = Breaker(relay, ev, settle_ms=200)
    assert not b.check(at(0))
    assert not b.check(at(1000))
    relay.stuck = True
    b.command(False, at(5000))
    assert not b.check(at(5100)) and b.check(at(5200))


@given(st.integers(0, 2**40), st.integers(-2**28, 2**28))
def test_elapsed_ms_is_right_across_a_ticks_wrap(base, delta):
    period = 1 << 30
    assert elapsed_ms((base + delta) % period, base % period) == delta


def test_limiter_state_round_trips_and_bad_blobs_change_nothing():
    r = Rig(contract=40, max_recloses=1)
    r.tick(50_000, seconds=4)
    blob = r.limiter.to_bytes()
    assert len(blob) == BLOB_LEN <= MAX_BLOB and r.store.latest(KIND_LIMITER) == blob
    fresh = Rig()
    fresh.limiter.from_bytes(blob)
    assert (fresh.limiter.contract, fresh.limiter.state) == (40, S_OPEN)
    for bad in (blob[:-1], b"\x02" + blob[1:], blob[:1] + b"\x19" + blob[2:],
                blob[:2] + b"\x07" + blob[3:], blob[:3] + b"\x09" + blob[4:]):
        before = fresh.limiter.to_bytes()
        with pytest.raises(ValueError):
            fresh.limiter.from_bytes(bad)
        assert fresh.limiter.to_bytes() == before


def test_a_locked_breaker_stays_open_across_a_reboot_and_the_move_is_logged():
    r = Rig(contract=20, max_recloses=0)
    r.tick(30_000, seconds=4)
    assert r.limiter.state == S_LOCKED
    b = r.reboot(relay_closed=True)  # the relay came up closed at power-on
    assert b.limiter.state == S_LOCKED and not b.relay.commanded()
    assert b.events_of(BREAKER_OPEN)[-1][4] == R_BOOT


def test_a_pending_re_close_completes_after_a_reboot():
    r = Rig(contract=20)
    r.tick(30_000, seconds=4)
    b = r.reboot(relay_closed=False)
    b.tick(0, seconds=9)
    assert not b.relay.commanded()
    b.tick(0)
    assert b.relay.commanded() and b.limiter.recloses == 1


def test_limiter_refuses_a_contract_outside_the_allowed_limits():
    t = ReservationTable(EventLog(8), allowed=(10, 20))
    with pytest.raises(ValueError):
        Limiter(t, Breaker(FakeRelay(), EventLog(8)), EventLog(8), contract=30)
    assert Limiter(t, Breaker(FakeRelay(), EventLog(8)), EventLog(8)).contract == 20


# -- drill -------------------------------------------------------------------------------

def test_drill_on_demand_records_would_be_trips_without_moving_the_relay():
    r = Rig(contract=60, max_recloses=1)
    assert r.limiter.drill_now(20, 60, r.now()) == status.OK
    r.tick(25_000, seconds=4)  # would trip at the 4th evaluation
    r.tick(0, seconds=10)  # would re-close
    r.tick(26_000, seconds=4)  # would trip into lock-out
    assert r.relay.operations == 0 and r.limiter.state == S_CLOSED
    d = parse_drill_report(r.limiter.drill.to_bytes())
    assert d.running and d.source == 0 and d.trips == 2 and d.max_ma == 26_000
    assert [x.kind for x in d.records] == [K_TRIP, K_RECLOSE, K_LOCKOUT]
    assert (d.records[0].minute * 60 + d.records[0].second
            - d.start_min * 60 - d.start_s) == 3
    assert d.records[0].current_ma == 25_000 and d.records[0].limit_a == 20
    r.tick(0, seconds=60)
    d = parse_drill_report(r.limiter.drill.to_bytes())
    assert not d.running and d.end_min >= d.start_min
    assert r.store.latest(KIND_DRILL) == r.limiter.drill.to_bytes()


def test_a_confirmed_drill_reservation_runs_the_chain_without_touching_the_real_limit():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(9, m + 1, m + 3, 15, drill=True)
    r.until_minute(m + 1, 10_000)
    assert r.limiter.drill.running and r.limiter.active_a == 60
    r.tick(20_000, seconds=30)
    r.until_minute(m + 4)
    assert r.relay.operations == 0 and not r.events_of(BREAKER_OPEN)
    d = parse_drill_report(r.limiter.drill.to_bytes())
    assert not d.running and d.source == 9 and d.low_a == 15 and d.trips >= 1
    assert (d.start_min, d.start_s) == (m + 1, 0) and (d.end_min, d.end_s) == (m + 3, 0)


def test_an_unconfirmed_drill_reservation_never_runs():
    r = Rig()
    m = r.minute()
    r.send(r.he.create(4, m + 1, m + 2, 10, r.exp(), drill=True))
    r.until_minute(m + 2, 30_000)
    assert not r.limiter.drill.running and r.limiter.drill.start_min == -1


def test_drill_on_demand_refuses_bad_limits_and_durations():
    r = Rig()
    now = r.now()
    assert r.limiter.drill_now(25, 60, now) == status.E_LIMIT
    assert r.limiter.drill_now(20, 0, now) == status.E_DURATION
    assert r.limiter.drill_now(20, 1440 * 60 + 1, now) == status.E_DURATION
    assert r.limiter.demand_a == 0


def test_drill_report_survives_a_reboot_as_an_interrupted_session():
    r = Rig()
    r.limiter.drill_now(10, 600, r.now())
    r.tick(20_000, seconds=5)
    assert len(r.limiter.drill.to_bytes()) == REPORT_LEN <= MAX_BLOB
    b = r.reboot()
    d = parse_drill_report(b.limiter.drill.to_bytes())
    assert not d.running and d.end_min == -1 and d.trips == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40_000), st.integers(-1, 40_000)), max_size=200),
       st.sampled_from((0, 1000, 3000)), st.sampled_from((10, 20, 30)))
def test_the_relay_opens_only_after_the_minimum_over_current_duration(load, min_over, a):
    r = Rig(contract=a, min_over_ms=min_over, reclose_ms=5000, max_recloses=2)
    run = []  # monotonic ms of consecutive over-limit evaluations while closed
    for i_ma, i2 in load:
        was_closed = r.relay.commanded()
        r.tick(i_ma, i2)
        over = max(i_ma, i2) > r.limiter.active_a * 1000
        run = run + [r.clock.ticks_ms()] if over and was_closed else []
        if was_closed and not r.relay.commanded():
            assert run and run[-1] - run[0] >= min_over
            run = []


# -- unknown and absurd currents ---------------------------------------------------------

def test_an_unknown_current_never_trips_and_restarts_an_over_run():
    r = Rig(contract=20, min_over_ms=3000)
    r.tick(25_000, seconds=3)  # 2 s into an over run
    r.tick(-1, -1, seconds=600)  # front end silent: current unknown for 10 minutes
    assert r.limiter.state == S_CLOSED and r.relay.operations == 0
    r.tick(25_000, seconds=3)  # a new run: 2 s, not yet the 3 s minimum
    assert r.limiter.state == S_CLOSED
    r.tick(25_000)
    assert r.limiter.state == S_OPEN


def test_an_unknown_line_leaves_the_other_line_in_charge():
    r = Rig(contract=20)
    r.tick(-1, 25_000, seconds=4)
    assert r.limiter.state == S_OPEN
    r2 = Rig(contract=20)
    r2.tick(25_000, -1, seconds=4)
    assert r2.limiter.state == S_OPEN


def test_an_unknown_current_counts_no_drill_over_time_and_no_would_be_trip():
    r = Rig(contract=60)
    r.limiter.drill_now(10, 600, r.now())
    r.tick(15_000, seconds=3)
    r.tick(-1, -1, seconds=30)
    r.tick(15_000, seconds=3)
    d = parse_drill_report(r.limiter.drill.to_bytes())
    assert d.trips == 0 and d.over_s == 6 and d.max_ma == 15_000


@pytest.mark.parametrize("i_ma", (10**6, 10**9, 10**12))
def test_a_current_far_above_any_limit_trips_and_is_logged_clamped(i_ma):
    r = Rig(contract=60, max_recloses=0)
    r.limiter.drill_now(10, 600, r.now())
    r.tick(i_ma, seconds=4)
    assert r.limiter.state == S_LOCKED and not r.relay.commanded()
    ev = r.events_of(BREAKER_OPEN)[-1]
    assert ev[5] == min(i_ma, MAX_MA)
    d = parse_drill_report(r.limiter.drill.to_bytes())
    assert d.max_ma == min(i_ma, MAX_MA) and d.records[0].current_ma == min(i_ma, MAX_MA)


# -- ticks_ms wrap -----------------------------------------------------------------------

def assert_ticks_stamps(r):
    assert all(0 <= s <= TICKS_MASK for s in r.stamps()), r.stamps()


def test_trip_reclose_drill_and_reservation_work_across_the_ticks_wrap():
    r = Rig(contract=30, max_recloses=1, clock=wrapping_clock(before_wrap_ms=5000))
    m = r.minute()
    assert r.clock.ticks_ms() == TICKS_PERIOD - 5000
    assert r.send(r.he.drill(20, 60, r.exp())).status == 0  # ends 55 s after the wrap
    assert_ticks_stamps(r)
    r.tick(0, seconds=2)
    r.tick(40_000, seconds=3)  # over at -2000, -1000 and 0 (the wrap): 2 s so far
    assert r.limiter.state == S_CLOSED and r.clock.ticks_ms() == 0
    r.tick(40_000)  # 3 s over at 1000: trips just after the wrap
    assert r.limiter.state == S_OPEN
    r.tick(0, seconds=9)
    assert r.limiter.state == S_OPEN
    r.tick(0)
    assert r.limiter.state == S_CLOSED and r.limiter.recloses == 1
    assert_ticks_stamps(r)
    d = parse_drill_report(r.limiter.drill.to_bytes())
    assert d.running and d.trips == 1 and d.records[0].limit_a == 20
    r.tick(0, seconds=43)  # 54 s after the wrap: the drill still runs
    assert r.clock.ticks_ms() == 54_000
    assert r.limiter.drill.running and r.limiter.demand_a == 20
    r.tick(0)  # 55 s: it ends on time
    assert not r.limiter.drill.running and r.limiter.demand_a == 0
    r.reserve(7, m + 2, m + 20, 10)
    r.until_minute(m + 2)
    r.tick(0)
    assert r.limiter.active_a == 10
    r.tick(0, seconds=600)  # the re-close count returns to 0 after the quiet period
    assert r.limiter.recloses == 0
    assert_ticks_stamps(r)
    b = r.reboot()  # a power-on inside the window: ticks restart at 0
    assert_ticks_stamps(b)
    assert b.limiter.active_a == 10
    b.until_minute(m + 20)
    assert b.limiter.active_a == 30 and b.table.state[b.table.find(7)] == ENDED
    assert_ticks_stamps(b)
