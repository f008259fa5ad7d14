"""Sequenced ring log (meter.ringlog.SeqRing) and the two logs on it: the event log
(meter.events.EventLog) and the command audit log (meter.control.audit.AuditLog): FIFO
drop of the oldest, newest-first reads, restore order and seq continuation."""

import struct
from collections import deque

import pytest
from hypothesis import given, settings, strategies as st

from meter.clock import Now
from meter.control.audit import ENTRIES, ENTRY_FMT, ENTRY_LEN, AuditLog
from meter.errors import SettingError, code
from meter.events import BREAKER_OPEN, POWER_FAIL, STARTUP, EventLog
from meter.ringlog import SeqRing
from meter.storage.records import KIND_AUDIT

from remote_rig import FakeStore


def fill(ring, values):
    for v in values:
        i = ring.claim(ring.seq)
        ring.cols[0][i] = v


def test_an_empty_ring_has_no_entries():
    r = SeqRing(4, "i")
    assert (r.n, r.seq, r.slot(0), r.row(0)) == (0, 0, -1, None)


def test_entries_read_newest_first_with_their_seq():
    r = SeqRing(4, "ih")
    for v in (10, 20, 30):
        i = r.claim(r.seq)
        r.cols[0][i] = v
        r.cols[1][i] = -v
    assert [r.row(k) for k in range(3)] == [(2, 30, -30), (1, 20, -20), (0, 10, -10)]
    assert r.row(3) is None and r.row(-1) is None and r.slot(3) == -1


def test_a_full_ring_drops_the_oldest_and_keeps_numbering():
    r = SeqRing(3, "i")
    fill(r, range(7))
    assert r.n == 3 and r.seq == 7
    assert [r.row(k) for k in range(3)] == [(6, 6), (5, 5), (4, 4)]


def test_a_claim_with_a_seq_continues_the_numbering_from_it():
    r = SeqRing(3, "i")
    r.claim(41)
    assert r.seq == 42
    r.claim(r.seq)
    assert r.row(0)[0] == 42 and r.row(1)[0] == 41


def test_a_restore_takes_entries_oldest_first_and_ignores_older_ones():
    r = SeqRing(3, "i")
    assert r.continues(100)  # an empty ring takes any seq
    r.claim(100)
    assert r.continues(101) and r.continues(150) and not r.continues(99)


def test_a_ring_needs_a_slot():
    with pytest.raises(ValueError) as e:
        SeqRing(0, "i")
    assert code(e.value) == "E_RING_SIZE"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.lists(st.integers(-2**31, 2**31 - 1), max_size=40))
def test_the_ring_holds_the_last_entries_of_the_stream(size, values):
    r = SeqRing(size, "i")
    model = deque(maxlen=size)
    for seq, v in enumerate(values):
        fill(r, [v])
        model.append((seq, v))
    assert r.n == len(model) and r.seq == len(values)
    assert [r.row(k) for k in range(r.n)] == list(reversed(model))


# -- the event log -----------------------------------------------------------------------

def test_the_event_log_keeps_its_api_on_the_ring():
    ev = EventLog(4)
    seen = []
    ev.listener = lambda *e: seen.append(e)
    for k in range(6):
        assert ev.log(POWER_FAIL if k % 2 else STARTUP, 100 + k, k, k, -k) == k
    assert ev.entries == 4 and ev.n == 4 and ev.seq == 6 and len(seen) == 6
    assert ev.get(0) == (5, POWER_FAIL, 105, 5, 5, -5) == seen[-1]
    assert ev.get(3) == (2, STARTUP, 102, 2, 2, -2) and ev.get(4) is None
    assert ev.count(POWER_FAIL) == 2 and ev.newest(STARTUP)[0] == 4
    assert ev.newest(BREAKER_OPEN) is None


def test_stamp_logs_the_event_minute_of_a_now():
    ev = EventLog(4)
    ev.stamp(BREAKER_OPEN, Now().at(5, 777, 12, True), 1, 31_000)
    ev.stamp(BREAKER_OPEN, Now().at(6, 777, 13, False), 2)
    assert ev.get(1) == (0, BREAKER_OPEN, 777, 12, 1, 31_000)
    assert ev.get(0) == (1, BREAKER_OPEN, -1, 13, 2, 0)


def test_a_restored_event_log_continues_the_numbering():
    old = EventLog(8)
    for k in range(12):
        old.log(POWER_FAIL, k, 0, k)
    new = EventLog(8)
    for k in range(old.n - 1, -1, -1):  # oldest first, as the store restores them
        new.restore(*old.get(k))
    new.restore(*old.get(3))  # an entry older than the newest held: ignored
    assert [new.get(k) for k in range(8)] == [old.get(k) for k in range(8)]
    assert new.log(STARTUP, 0, 0) == 12


# -- the audit log -----------------------------------------------------------------------

def test_the_audit_log_persists_each_entry_through_its_handle():
    store = FakeStore()
    log = AuditLog(store.saver(KIND_AUDIT))
    log.append(7, 500, 9, 0x0B, 0, 0)
    log.append(2**32 + 8, -1, 10, 0x06, 7, 0x10033)  # counter and arg are masked
    log.append(9, 501, 0, 0x01, 4, 3, persist=False)
    assert log.unsaved == 1 and log.n == 3 and log.seq == 3
    blobs = store.all(KIND_AUDIT)
    assert blobs == [log.entry_bytes(2), log.entry_bytes(1)]  # copies: the buffer is reused
    assert struct.unpack(ENTRY_FMT, blobs[1]) == (1, 8, -1, 10, 0x06, 7, 0x33) == log.get(1)


def test_the_audit_log_is_a_fifo_restored_oldest_first():
    store = FakeStore()
    log = AuditLog(store.saver(KIND_AUDIT))
    for k in range(ENTRIES + 5):
        log.append(k, 1000 + k, k % 60, 0x0B, 0, k)
    assert log.n == ENTRIES and log.get(ENTRIES - 1)[0] == 5
    back = AuditLog()
    restored = [back.restore(b) for b in store.all(KIND_AUDIT)]
    assert restored.count(True) == ENTRIES + 5  # each newer than the last
    assert [back.get(k) for k in range(ENTRIES)] == [log.get(k) for k in range(ENTRIES)]
    assert back.restore(store.all(KIND_AUDIT)[0]) is False  # older than the newest held
    assert back.append(0, 0, 0, 0, 0, 0) == ENTRIES + 5


def test_a_malformed_audit_blob_is_refused_with_its_code():
    with pytest.raises(SettingError) as e:
        AuditLog().restore(b"\x00" * (ENTRY_LEN - 1))
    assert code(e.value) == "E_AUDIT_RECORD"
