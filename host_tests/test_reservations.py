"""Reservation table: creation bounds, read-back confirmation, activation and release on
time, cancel, overlap rule, fail-safe ends, boot restore (meter.control.reservations)."""

import pytest
from hypothesis import given, settings, strategies as st

from meter.clock import Now
from meter.control import status
from meter.events import EventLog, RESERVATION
from meter.storage.persist import KIND_RESERVATIONS, MAX_BLOB
from meter.control.reservations import (ACTIVE, BLOB_LEN, CANCELLED, CONFIRMED, CREATED, ENDED,
                                EXPIRED, FLAG_DRILL, RECORD_LEN, SLOTS, ReservationTable,
                                digest)

from headend import parse_record, parse_records, record_digest
from remote_rig import ALLOWED, DAY, Rig

M = DAY + 600  # 10:00
S_DUP = status.E_DUPLICATE_ID


def at(minute, valid=True, ms=0, second=0):
    """A meter.clock.Now at a wall minute (second 0, monotonic ms 0 by default)."""
    return Now().at(ms, minute, second, valid)


def table(max_duration_min=1440):
    return ReservationTable(EventLog(64), allowed=ALLOWED, max_duration_min=max_duration_min)


def created(t, rid, start, end, limit=20, flags=0, now=M):
    assert t.create(rid, start, end, limit, flags, at(now)) == status.OK
    return t.find(rid)


def confirmed(t, rid, start, end, limit=20, flags=0, now=M):
    i = created(t, rid, start, end, limit, flags, now)
    assert t.confirm(rid, t.slot_digest(i), at(now)) == status.OK
    return i


def test_create_refuses_out_of_range_arguments_and_changes_nothing():
    t = table(max_duration_min=120)
    before = t.to_bytes()
    cases = [((1, M, M + 10, 20, 0), status.E_START_PAST),
             ((1, M - 5, M + 10, 20, 0), status.E_START_PAST),
             ((1, M + 10, M + 10, 20, 0), status.E_DURATION),
             ((1, M + 10, M + 5, 20, 0), status.E_DURATION),
             ((1, M + 10, M + 131, 20, 0), status.E_DURATION),
             ((1, M + 10, M + 20, 25, 0), status.E_LIMIT),
             ((0, M + 10, M + 20, 20, 0), status.E_RANGE),
             ((1, M + 10, M + 20, 20, 2), status.E_RANGE)]
    for args, code in cases:
        assert t.create(*args, at(M)) == code, args
    assert t.create(1, M + 10, M + 20, 20, 0, at(M, valid=False)) == status.E_CLOCK
    assert t.to_bytes() == before and t.events.n == 0


def test_maximum_duration_is_accepted_exactly():
    t = table(max_duration_min=120)
    assert t.create(1, M + 1, M + 121, 20, 0, at(M)) == status.OK


def test_a_live_id_cannot_be_created_twice_but_a_dead_one_is_replaced():
    t = table()
    created(t, 5, M + 10, M + 20)
    assert t.create(5, M + 30, M + 40, 10, 0, at(M)) == status.E_DUPLICATE_ID
    t.cancel(5, at(M))
    i = created(t, 5, M + 30, M + 40, 10)
    assert t.state[i] == CREATED and t.start[i] == M + 30
    assert sum(1 for j in range(SLOTS) if t.rid[j] == 5 and t.state[j]) == 1


def test_a_confirmed_reservation_cannot_be_extended_only_cancelled_and_replaced():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(1, m + 1, m + 10, 20)
    r.until_minute(m + 2)
    before = r.table.to_bytes()
    resp = r.send(r.he.create(1, m + 3, m + 60, 20, r.exp()))
    assert resp.status == S_DUP and r.table.to_bytes() == before
    assert r.send(r.he.cancel(1, r.exp())).status == status.OK
    r.reserve(2, m + 3, m + 60, 20)
    r.until_minute(m + 3)
    assert (r.limiter.active_a, r.limiter.active_id) == (20, 2)


def test_a_full_table_refuses_and_dead_entries_are_recycled_oldest_first():
    t = table()
    for k in range(SLOTS):
        created(t, k + 1, M + 10 + k, M + 20 + k)
    assert t.create(99, M + 10, M + 20, 20, 0, at(M)) == status.E_FULL
    t.cancel(3, at(M))
    t.cancel(6, at(M))
    created(t, 99, M + 10, M + 20)
    assert t.find(3) < 0 and t.find(6) >= 0  # id 3 ended first (end M+22 < M+25)


def test_confirmation_must_quote_the_digest_of_the_record_as_read_back():
    t = table()
    i = created(t, 7, M + 10, M + 70, 30, FLAG_DRILL)
    rec = parse_record(t.record(7))
    assert rec.digest == record_digest(7, M + 10, M + 70, 30, FLAG_DRILL) == digest(
        7, M + 10, M + 70, 30, FLAG_DRILL)
    wrong = bytes(8)
    assert t.confirm(7, wrong, at(M)) == status.E_DIGEST
    assert t.confirm(7, rec.digest[:7], at(M)) == status.E_DIGEST
    assert t.confirm(8, rec.digest, at(M)) == status.E_UNKNOWN_ID
    assert t.confirm(7, rec.digest, at(M, valid=False)) == status.E_CLOCK
    assert t.state[i] == CREATED
    assert t.confirm(7, rec.digest, at(M)) == status.OK and t.state[i] == CONFIRMED
    assert t.confirm(7, rec.digest, at(M)) == status.E_STATE


def test_a_confirmation_after_the_start_is_too_late_and_the_reservation_expires():
    t = table()
    i = created(t, 7, M + 1, M + 10)
    d = t.slot_digest(i)
    assert t.confirm(7, d, at(M + 1)) == status.E_TOO_LATE
    t.evaluate(at(M + 1))
    assert t.state[i] == EXPIRED and t.limit_a == 0


def test_an_unconfirmed_reservation_never_caps_the_limit():
    r = Rig(contract=60)
    m = r.minute()
    r.send(r.he.create(1, m + 1, m + 5, 10, r.exp()))
    for _ in range(6 * 60):
        r.tick(30_000)
        assert r.limiter.active_a == 60
    assert r.relay.operations == 0


def test_a_confirmed_reservation_caps_from_its_start_to_its_end_to_the_second():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(2, m + 2, m + 4, 30)
    seen = []
    while r.minute() < m + 5:
        r.tick(0)
        seen.append((r.minute(), r.clock.wall_second(), r.limiter.active_a))
    capped = [(mm, s) for mm, s, a in seen if a == 30]
    assert capped[0] == (m + 2, 0) and capped[-1] == (m + 3, 59)
    assert all(a == 60 for mm, s, a in seen if not m + 2 <= mm < m + 4)
    states = [e[5] for e in r.events_of(RESERVATION)]
    assert states == [CREATED, CONFIRMED, ACTIVE, ENDED]


def test_cancel_before_the_start_means_it_never_fires():
    r = Rig()
    m = r.minute()
    r.reserve(3, m + 1, m + 3, 10)
    assert r.send(r.he.cancel(3, r.exp())).status == status.OK
    r.until_minute(m + 4, 20_000)
    assert r.relay.operations == 0 and r.table.state[r.table.find(3)] == CANCELLED


def test_cancel_during_the_window_lifts_the_limit_within_one_tick():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(3, m + 1, m + 30, 10)
    r.until_minute(m + 2)
    assert r.limiter.active_a == 10
    assert r.send(r.he.cancel(3, r.exp())).status == status.OK
    r.tick(0)  # the next evaluation, <= 1 s later
    assert r.limiter.active_a == 60
    assert r.send(r.he.cancel(3, r.exp())).status == status.E_STATE
    assert r.send(r.he.cancel(77, r.exp())).status == status.E_UNKNOWN_ID


def test_overlapping_reservations_the_lowest_limit_wins_and_never_above_contract():
    r = Rig(contract=40)
    m = r.minute()
    r.reserve(1, m + 1, m + 4, 30)
    r.reserve(2, m + 2, m + 3, 20)
    r.reserve(3, m + 1, m + 5, 50)  # above the contract: no effect
    trace = {}
    while r.minute() < m + 6:
        r.tick(0)
        trace[r.minute()] = (r.limiter.active_a, r.limiter.active_id)
    assert trace[m + 1] == (30, 1) and trace[m + 2] == (20, 2)
    assert trace[m + 3] == (30, 1) and trace[m + 4] == (40, 0) and trace[m + 5] == (40, 0)


def test_a_wall_clock_set_back_cannot_extend_an_active_reservation():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(1, m + 1, m + 11, 20)
    r.until_minute(m + 9)
    r.clock.jump(-7 * 60)  # back to m+2: still inside the window by the wall clock
    r.tick(0, seconds=60)  # m+3 by the wall, 9 min after activation
    assert r.limiter.active_a == 20
    r.tick(0, seconds=61)  # 10 min after activation: the monotonic guard ends it
    assert r.limiter.active_a == 60 and r.table.state[r.table.find(1)] == ENDED


def test_a_wall_clock_set_before_the_start_ends_an_active_reservation():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(1, m + 1, m + 11, 20)
    r.until_minute(m + 3)
    r.clock.jump(-5 * 60)
    r.tick(0)
    assert r.limiter.active_a == 60 and r.table.state[r.table.find(1)] == ENDED


def test_an_end_that_passed_during_an_outage_is_honoured_at_boot():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(1, m + 1, m + 20, 15)
    r.until_minute(m + 2)
    assert r.limiter.active_a == 15
    b = r.reboot(wall_min=m + 45)
    assert b.table.state[b.table.find(1)] == ENDED and b.limiter.active_a == 60
    b.tick(50_000, seconds=10)
    assert b.relay.commanded()


def test_a_window_skipped_entirely_by_an_outage_never_fires():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(1, m + 10, m + 20, 15)
    b = r.reboot(wall_min=m + 30)
    assert b.table.state[b.table.find(1)] == ENDED and b.limiter.active_a == 60
    assert [e[5] for e in b.events_of(RESERVATION)] == [ENDED]


def test_a_boot_inside_the_window_resumes_the_cap_and_still_ends_on_time():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(1, m + 1, m + 10, 15)
    b = r.reboot(wall_min=m + 5)
    assert b.limiter.active_a == 15
    b.until_minute(m + 10)
    assert b.limiter.active_a == 60


def test_a_boot_with_an_invalid_clock_falls_back_to_the_contract():
    r = Rig(contract=60)
    m = r.minute()
    r.reserve(1, m + 1, m + 10, 15)
    r.until_minute(m + 2)
    b = r.reboot(valid=False)
    assert b.limiter.active_a == 60 and b.limiter.fallback
    b.tick(0, seconds=9 * 60)  # the guard ends it after its window length on ms
    assert b.table.state[b.table.find(1)] == ENDED


def test_listing_and_read_back_show_every_slot_in_use():
    t = table()
    confirmed(t, 1, M + 1, M + 5)
    created(t, 2, M + 2, M + 6, 10, FLAG_DRILL)
    recs = parse_records(t.listing())
    assert [(x.rid, x.state, x.flags) for x in recs] == [(1, CONFIRMED, 0),
                                                       (2, CREATED, FLAG_DRILL)]
    assert len(t.record(2)) == RECORD_LEN and t.record(3) is None


def test_table_round_trips_through_its_blob_and_bad_blobs_change_nothing():
    r = Rig()
    m = r.minute()
    r.reserve(1, m + 1, m + 5, 20)
    r.send(r.he.create(2, m + 2, m + 9, 10, r.exp(), drill=True))
    blob = r.table.to_bytes()
    assert len(blob) == BLOB_LEN <= MAX_BLOB and r.store.latest(KIND_RESERVATIONS) == blob
    t = table()
    t.from_bytes(blob)
    assert t.listing() == r.table.listing()
    bad_state = bytearray(blob)
    bad_state[13] = 9
    bad_limit = bytearray(blob)
    bad_limit[11] = 25
    dup = bytearray(blob)
    dup[14:16] = dup[1:3]
    for bad in (blob[:-1], b"\x07" + blob[1:], bytes(bad_state), bytes(bad_limit), bytes(dup)):
        u = table()
        with pytest.raises(ValueError):
            u.from_bytes(bad)
        assert u.to_bytes() == table().to_bytes()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ccxt"), st.integers(1, 5), st.integers(-2, 12),
                          st.integers(1, 8), st.sampled_from(ALLOWED), st.booleans()),
                max_size=40))
def test_only_confirmed_windows_cap_and_every_reservation_is_released_by_its_end(ops):
    t = table()
    now = M
    model = {}  # rid -> (start, end, limit, drill) of confirmed, not cancelled
    for op, rid, off, dur, limit, drill in ops:
        if op == "c":
            flags = FLAG_DRILL if drill else 0
            ok = t.create(rid, now + off, now + off + dur, limit, flags, at(now))
            if ok == status.OK:
                model.pop(rid, None)
                i = t.find(rid)
                if off % 2 == 0 and t.confirm(rid, t.slot_digest(i), at(now)) == 0:
                    model[rid] = (now + off, now + off + dur, limit, drill)
        elif op == "x":
            if t.cancel(rid, at(now)) == status.OK:
                model.pop(rid, None)
        else:
            now += off % 4
        t.evaluate(at(now, ms=(now - M) * 60_000))
        live = [v for v in model.values() if v[0] <= now < v[1]]
        real = [v[2] for v in live if not v[3]]
        drills = [v[2] for v in live if v[3]]
        assert t.limit_a == (min(real) if real else 0)
        assert t.drill_a == (min(drills) if drills else 0)
        for i in range(SLOTS):
            if t.state[i] == ACTIVE:
                assert t.start[i] <= now < t.end[i]
