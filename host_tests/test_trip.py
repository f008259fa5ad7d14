"""Trip rule: the one over-current / re-close / lock-out machine that the limiter and the drill
drive (meter.control.trip): each transition, the unknown-current rule, the quiet-period
count reset, ticks that wrap at 2**30, and the limiter and drill deciding alike."""

from hypothesis import given, settings, strategies as st

from meter.clock import Now
from meter.control.drill import K_LOCKOUT, K_RECLOSE, K_TRIP
from meter.control.limiter import R_LOCKOUT, R_OVERCURRENT, R_RECLOSE
from meter.control.trip import (CLEARED, CLOSED, LOCKED, LOCKOUT, NEVER, NOTHING, OPEN, OVER,
                                RECLOSE, TRIP, TripRule)
from meter.events import BREAKER_CLOSE, BREAKER_OPEN
from meter.ticks import TICKS_MASK

from remote_rig import Rig

LIMIT = 20  # A
OVER_MA = 25_000
UNDER_MA = 5_000


def at(ms):
    return Now().at(ms & TICKS_MASK, 0, 0, True)


def run(rule, start_ms, currents, step_ms=1000):
    """Evaluate once per step_ms from start_ms; returns the results."""
    out = []
    ms = start_ms
    for cur in currents:
        out.append(rule.evaluate(at(ms), cur, LIMIT))
        ms += step_ms
    return out


def rule(min_over_ms=3000, reclose_ms=10_000, max_recloses=2, reclose_reset_ms=NEVER):
    return TripRule(min_over_ms, reclose_ms, max_recloses, reclose_reset_ms)


def test_a_new_rule_is_closed_with_no_re_close_used():
    r = rule()
    assert (r.state, r.recloses, r.over) == (CLOSED, 0, False)


def test_current_under_or_at_the_limit_does_nothing():
    r = rule()
    assert run(r, 0, [UNDER_MA, LIMIT * 1000, 0] * 5) == [NOTHING] * 15
    assert r.state == CLOSED and not r.over


def test_over_the_limit_for_min_over_ms_trips_and_opens():
    r = rule(min_over_ms=3000)
    assert run(r, 0, [OVER_MA] * 4) == [OVER, OVER, OVER, TRIP]
    assert r.state == OPEN and r.opened_ms == 3000 and not r.over


def test_zero_min_over_ms_trips_at_the_first_over_evaluation():
    r = rule(min_over_ms=0)
    assert r.evaluate(at(500), LIMIT * 1000 + 1, LIMIT) == TRIP and r.state == OPEN


def test_a_dip_under_the_limit_restarts_the_over_run():
    r = rule(min_over_ms=3000)
    res = run(r, 0, [OVER_MA, OVER_MA, OVER_MA, UNDER_MA, OVER_MA, OVER_MA, OVER_MA, OVER_MA])
    assert res == [OVER, OVER, OVER, NOTHING, OVER, OVER, OVER, TRIP]


def test_open_recloses_after_reclose_ms_and_counts_it():
    r = rule(min_over_ms=0, reclose_ms=10_000)
    assert r.evaluate(at(0), OVER_MA, LIMIT) == TRIP
    assert run(r, 1000, [OVER_MA] * 9) == [NOTHING] * 9  # OPEN ignores the current
    assert r.evaluate(at(10_000), OVER_MA, LIMIT) == RECLOSE
    assert (r.state, r.recloses, r.closed_ms, r.over) == (CLOSED, 1, 10_000, False)


def test_a_trip_with_every_re_close_used_locks_out_until_close():
    r = rule(min_over_ms=0, reclose_ms=1000, max_recloses=2)
    assert run(r, 0, [OVER_MA, 0] * 2) == [TRIP, RECLOSE] * 2
    assert r.evaluate(at(4000), OVER_MA, LIMIT) == LOCKOUT and r.state == LOCKED
    assert run(r, 5000, [0, OVER_MA, -1] * 100) == [NOTHING] * 300  # locked: waits
    r.close(at(400_000))
    assert (r.state, r.recloses, r.closed_ms) == (CLOSED, 0, 400_000)
    assert r.evaluate(at(401_000), OVER_MA, LIMIT) == TRIP  # a fresh count


def test_max_recloses_zero_locks_out_at_the_first_trip():
    r = rule(min_over_ms=0, max_recloses=0)
    assert r.evaluate(at(0), OVER_MA, LIMIT) == LOCKOUT and r.state == LOCKED


def test_close_ends_an_open_rule_early():
    r = rule(min_over_ms=0)
    r.evaluate(at(0), OVER_MA, LIMIT)
    r.close(at(2000))
    assert r.state == CLOSED and r.recloses == 0
    assert r.evaluate(at(12_000), 0, LIMIT) == NOTHING  # no late re-close


def test_an_unknown_current_never_trips_and_restarts_the_run():
    r = rule(min_over_ms=3000)
    assert run(r, 0, [OVER_MA, OVER_MA, OVER_MA]) == [OVER] * 3
    assert run(r, 3000, [-1] * 600) == [NOTHING] * 600
    assert not r.over and r.state == CLOSED
    assert run(r, 603_000, [OVER_MA] * 4) == [OVER, OVER, OVER, TRIP]


def test_an_open_rule_recloses_on_time_even_with_the_current_unknown():
    r = rule(min_over_ms=0, reclose_ms=5000)
    r.evaluate(at(0), OVER_MA, LIMIT)
    assert run(r, 1000, [-1] * 5) == [NOTHING] * 4 + [RECLOSE]


def test_the_count_returns_to_zero_after_the_quiet_period_under_the_limit():
    r = rule(min_over_ms=0, reclose_ms=1000, reclose_reset_ms=600_000)
    run(r, 0, [OVER_MA, 0])  # trip at 0, re-close at 1000
    assert r.recloses == 1
    assert r.evaluate(at(600_999), 0, LIMIT) == NOTHING and r.recloses == 1
    assert r.evaluate(at(601_000), 0, LIMIT) == CLEARED and r.recloses == 0
    assert r.evaluate(at(602_000), 0, LIMIT) == NOTHING  # reported once


def test_an_unknown_current_is_not_a_quiet_evaluation():
    r = rule(min_over_ms=0, reclose_ms=1000, reclose_reset_ms=10_000)
    run(r, 0, [OVER_MA, 0])
    assert run(r, 2000, [-1] * 20) == [NOTHING] * 20 and r.recloses == 1
    assert r.evaluate(at(22_000), 0, LIMIT) == CLEARED


def test_with_never_the_count_stays_however_long_the_quiet():
    r = rule(min_over_ms=0, reclose_ms=1000, reclose_reset_ms=NEVER)
    run(r, 0, [OVER_MA, 0])
    assert run(r, 2000, [0] * 100, step_ms=60_000) == [NOTHING] * 100 and r.recloses == 1


def test_restart_dates_the_timers_from_boot_and_keeps_state_and_count():
    r = rule(min_over_ms=0, reclose_ms=10_000)
    run(r, 0, [OVER_MA])
    r.recloses = 1
    r.restart(at(50))  # a power-on: ticks restart near 0
    assert (r.state, r.recloses, r.opened_ms, r.closed_ms) == (OPEN, 1, 50, 50)
    assert r.evaluate(at(10_049), 0, LIMIT) == NOTHING
    assert r.evaluate(at(10_050), 0, LIMIT) == RECLOSE and r.recloses == 2


def test_clear_starts_afresh():
    r = rule(min_over_ms=0, max_recloses=0)
    r.evaluate(at(0), OVER_MA, LIMIT)
    r.clear()
    assert (r.state, r.recloses, r.over) == (CLOSED, 0, False)


def test_an_over_run_and_a_re_close_across_the_ticks_wrap():
    r = rule(min_over_ms=3000, reclose_ms=10_000)
    start = TICKS_MASK + 1 - 2000  # 2 s before the wrap
    assert run(r, start, [OVER_MA] * 4) == [OVER, OVER, OVER, TRIP]
    assert r.opened_ms == 1000
    assert r.evaluate(at(start + 3000 + 9999), 0, LIMIT) == NOTHING
    assert r.evaluate(at(start + 3000 + 10_000), 0, LIMIT) == RECLOSE


def test_a_last_close_more_than_2_29_ms_ago_counts_as_quiet():
    r = rule(min_over_ms=0, reclose_ms=1000, reclose_reset_ms=600_000)
    run(r, 0, [OVER_MA, 0])
    assert r.evaluate(at(1000 + (1 << 29) + 5000), 0, LIMIT) == CLEARED  # elapsed reads < 0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4000), st.sampled_from((-1, 0, 19_999, 20_000,
                                                                  20_001, 60_000))),
                max_size=150),
       st.integers(0, TICKS_MASK), st.sampled_from((0, 2000, 3000)),
       st.sampled_from((NEVER, 0, 30_000)))
def test_wrapped_ticks_decide_exactly_as_unbounded_time(steps, origin, min_over, reset):
    wrapped = rule(min_over, 5000, 2, reset)
    plain = rule(min_over, 5000, 2, reset)
    t = 0
    for dt, cur in steps:
        t += dt
        a = wrapped.evaluate(at(origin + t), cur, LIMIT)
        b = plain.evaluate(Now().at(t, 0, 0, True), cur, LIMIT)
        assert a == b and (wrapped.state, wrapped.recloses) == (plain.state, plain.recloses)


# -- the two drivers ---------------------------------------------------------------------

def test_the_limiter_and_the_drill_each_drive_a_trip_rule_with_the_same_timing():
    r = Rig(min_over_ms=2000, reclose_ms=7000, max_recloses=1)
    lim, d = r.limiter.rule, r.limiter.drill.rule
    assert isinstance(lim, TripRule) and isinstance(d, TripRule) and lim is not d
    assert (lim.min_over_ms, lim.reclose_ms, lim.max_recloses) == (2000, 7000, 1)
    assert (d.min_over_ms, d.reclose_ms, d.max_recloses) == (2000, 7000, 1)
    assert lim.reclose_reset_ms == 600_000 and d.reclose_reset_ms == NEVER


def test_a_drill_at_the_real_limit_records_what_the_limiter_does():
    r = Rig(contract=20, max_recloses=2)
    r.limiter.drill_now(20, 1200, r.now())
    for _ in range(4):
        r.tick(30_000, seconds=4)
        r.tick(0, seconds=10)
    d = r.limiter.drill
    opened = {R_OVERCURRENT: K_TRIP, R_LOCKOUT: K_LOCKOUT}
    moves = [e for e in reversed([r.events.get(k) for k in range(r.events.n)])
             if e[1] in (BREAKER_OPEN, BREAKER_CLOSE)]
    assert all(e[4] == R_RECLOSE for e in moves if e[1] == BREAKER_CLOSE)
    real = [(opened[e[4]] if e[1] == BREAKER_OPEN else K_RECLOSE, e[2], e[3]) for e in moves]
    shadow = [(d.kind[k], d.rec_min[k], d.rec_s[k]) for k in range(d.n)]
    assert shadow == real
    assert [k for k, _, _ in real] == [K_TRIP, K_RECLOSE, K_TRIP, K_RECLOSE, K_LOCKOUT]
