"""The control sub-assembly (meter.control.assembly): what build_control() wires, what
restore_control() loads, the save-only handles and stores of meter.storage.persist, the E_
codes of control, and the command wire layout named on both ends (firmware and head-end)."""

import os
import re
import struct
import subprocess
import sys

import pytest

from meter.control import command as C
from meter.control.assembly import Control, build_control, restore_control
from meter.control.audit import AuditLog
from meter.control.breaker import Breaker
from meter.control.command import CommandProcessor
from meter.control.limiter import Limiter, S_LOCKED
from meter.control.reservations import ReservationTable
from meter.errors import SettingError, code
from meter.events import EventLog
from meter.storage.persist import (KIND_AUDIT, KIND_COUNTER, KIND_DRILL, KIND_LIMITER,
                                   KIND_RESERVATIONS, NullStore)
from hosthal.pins import FakeRelay

import headend
from paths import BOARD, FIRMWARE, ROOT
from remote_rig import ALLOWED, KEY, METER_ID, FakeStore, Rig


def build(store=None, key=KEY, contract=60, **timing):
    return build_control(FakeRelay(True), EventLog(64), store, METER_ID, key, ALLOWED,
                         contract, 1440, **timing)


def test_build_control_wires_every_part_once():
    ctl = build(FakeStore())
    assert isinstance(ctl, Control)
    assert isinstance(ctl.limiter, Limiter) and isinstance(ctl.breaker, Breaker)
    assert isinstance(ctl.table, ReservationTable) and isinstance(ctl.audit, AuditLog)
    assert isinstance(ctl.commands, CommandProcessor)
    assert ctl.limiter.table is ctl.table and ctl.limiter.breaker is ctl.breaker
    assert ctl.commands.limiter is ctl.limiter and ctl.commands.audit is ctl.audit
    assert ctl.table.events is ctl.limiter.events is ctl.breaker.events is ctl.commands.events


def test_each_part_saves_through_the_handle_of_its_own_kind():
    r = Rig(contract=20, max_recloses=0)  # built by build_control on a FakeStore
    m = r.minute()
    r.reserve(3, m + 5, m + 9, 10)
    r.send(r.he.drill(10, 60, r.exp()))
    r.tick(30_000, seconds=4)
    assert r.limiter.state == S_LOCKED
    store = r.store
    assert store.latest(KIND_LIMITER) == r.limiter.to_bytes()
    assert store.latest(KIND_RESERVATIONS) == r.table.to_bytes()
    assert store.latest(KIND_COUNTER) == r.proc.counter_bytes()
    assert store.latest(KIND_DRILL) == r.limiter.drill.to_bytes()
    assert store.all(KIND_AUDIT) == [r.audit.entry_bytes(k) for k in range(r.audit.n - 1, -1,
                                                                           -1)]


def test_without_a_key_there_are_no_commands_but_an_audit_log():
    ctl = build(None, key=None)
    assert ctl.commands is None and ctl.audit.n == 0


def test_without_a_key_the_command_envelope_is_never_imported():
    probe = ("import sys; from meter.control.assembly import build_control;"
             "from meter.events import EventLog; from hosthal.pins import FakeRelay;"
             "c = build_control(FakeRelay(True), EventLog(8), None, b'TEST0001', None,"
             " (10, 20), 0, 60);"
             "print(c.commands, 'meter.control.command' in sys.modules,"
             " 'meter.mac' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(BOARD, "cpython"), FIRMWARE, BOARD]))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=60)
    assert out.stdout.split() == ["None", "False", "False"], out.stderr


def test_restore_control_loads_every_kind_and_the_audit_entries_oldest_first():
    r = Rig(contract=40, max_recloses=0)
    m = r.minute()
    r.reserve(2, m + 1, m + 9, 20)
    r.send(r.he.drill(10, 60, r.exp()))
    r.tick(45_000, seconds=4)
    ctl = build(r.store, contract=60, max_recloses=0)
    assert restore_control(ctl, r.store) == 0
    assert ctl.limiter.to_bytes() == r.limiter.to_bytes()
    assert ctl.table.listing() == r.table.listing()
    assert ctl.commands.counter == r.proc.counter
    assert ctl.limiter.drill.trips == r.limiter.drill.trips == 1
    assert [ctl.audit.get(k) for k in range(ctl.audit.n)] == [
        r.audit.get(k) for k in range(r.audit.n)]


def test_restore_control_skips_and_counts_invalid_blobs():
    store = FakeStore()
    for kind in (KIND_LIMITER, KIND_RESERVATIONS, KIND_COUNTER, KIND_DRILL, KIND_AUDIT):
        store.save(kind, b"\x09bad")
    ctl = build()
    before = (ctl.limiter.to_bytes(), ctl.table.to_bytes(), ctl.commands.counter)
    assert restore_control(ctl, store) == 5
    assert (ctl.limiter.to_bytes(), ctl.table.to_bytes(), ctl.commands.counter) == before
    assert ctl.audit.n == 0


def test_restore_control_of_an_empty_store_changes_nothing():
    ctl = build()
    before = (ctl.limiter.to_bytes(), ctl.table.to_bytes(), ctl.limiter.drill.to_bytes())
    assert restore_control(ctl, NullStore()) == 0
    assert (ctl.limiter.to_bytes(), ctl.table.to_bytes(),
            ctl.limiter.drill.to_bytes()) == before


def test_the_null_store_keeps_nothing_and_refuses_every_save():
    s = NullStore()
    h = s.saver(KIND_LIMITER)
    assert h.save(b"abc") is False  # nothing is durable on a meter that keeps nothing
    assert s.latest(KIND_LIMITER) is None and s.all(KIND_AUDIT) == []


def test_the_fake_store_handles_copy_what_they_are_given():
    s = FakeStore()
    buf = bytearray(b"one")
    assert s.saver(KIND_DRILL).save(buf) is True
    buf[:] = b"two"
    assert s.latest(KIND_DRILL) == b"one" and s.log == [(KIND_DRILL, b"one")]


def test_a_fake_store_told_to_refuse_keeps_nothing_of_those_kinds_and_says_so():
    s = FakeStore()
    s.refuse(KIND_COUNTER)
    assert s.saver(KIND_COUNTER).save(b"c") is False and s.latest(KIND_COUNTER) is None
    assert s.saver(KIND_AUDIT).save(b"a") is True
    s.refuse()
    assert s.saver(KIND_AUDIT).save(b"b") is False and s.refused == 2
    s.accept()
    assert s.saver(KIND_COUNTER).save(b"d") is True and s.latest(KIND_COUNTER) == b"d"


def test_build_control_hands_the_tamper_register_to_the_commands():
    def ack(now):
        return 0

    def pending():
        return 2

    ctl = build_control(FakeRelay(True), EventLog(8), FakeStore(), METER_ID, KEY, ALLOWED,
                        0, 60, ack_tamper=ack, tamper_pending=pending)
    assert ctl.commands.ack_tamper is ack and ctl.commands.tamper_pending is pending
    assert build(FakeStore()).commands.ack_tamper is None


# -- the journal store: the kinds keep their record types and keys -----------------------

def test_the_journal_store_keeps_the_record_types_and_keys_of_each_kind():
    from meter.storage.records import REC_AUDIT, REC_LIMITER, REC_RESERVATIONS
    from hosthal.flash import NorFlash
    from test_command import flash_store

    store = flash_store(NorFlash(16))
    j = store.journal
    assert store.latest(KIND_LIMITER) is None and store.all(KIND_AUDIT) == []
    r = Rig(contract=30, max_recloses=0, store=store)
    m = r.minute()
    r.reserve(4, m + 1, m + 30, 20)
    r.send(r.he.drill(10, 60, r.exp()))
    r.tick(35_000, seconds=4)
    assert store.save_failures == 0
    assert j.latest(REC_LIMITER, 0) == r.limiter.to_bytes() == store.latest(KIND_LIMITER)
    assert j.latest(REC_LIMITER, 1) == r.proc.counter_bytes() == store.latest(KIND_COUNTER)
    assert j.latest(REC_LIMITER, 2) == r.limiter.drill.to_bytes() == store.latest(KIND_DRILL)
    assert j.latest(REC_RESERVATIONS, 0) == r.table.to_bytes() == store.latest(
        KIND_RESERVATIONS)
    entries = [r.audit.entry_bytes(k) for k in range(r.audit.n - 1, -1, -1)]
    assert j.keys(REC_AUDIT) == [struct.unpack(">I", e[:4])[0] for e in entries]
    assert store.all(KIND_AUDIT) == entries and store.latest(KIND_AUDIT) == entries[-1]
    assert store.all(KIND_LIMITER) == [r.limiter.to_bytes()]


# -- one error convention ----------------------------------------------------------------

def codes_of(fn, *args):
    with pytest.raises(SettingError) as e:
        fn(*args)
    return code(e.value)


def test_settings_out_of_range_are_refused_with_their_codes():
    assert codes_of(build, None, KEY, 25) == "E_CONTRACT_LIMIT"
    with pytest.raises(SettingError) as e:
        build(min_over_ms=-1)
    assert code(e.value) == "E_LIMITER_TIMING"
    with pytest.raises(SettingError) as e:
        build(max_recloses=256)
    assert code(e.value) == "E_LIMITER_TIMING"
    with pytest.raises(SettingError) as e:
        build_control(FakeRelay(True), EventLog(8), None, METER_ID, KEY, ALLOWED, 0, 0)
    assert code(e.value) == "E_RESERVATION_DURATION"
    with pytest.raises(SettingError) as e:
        build_control(FakeRelay(True), EventLog(8), None, b"SHORT", KEY, ALLOWED, 0, 60)
    assert code(e.value) == "E_METER_ID"


def test_malformed_stored_blobs_are_refused_with_their_codes():
    r = Rig()
    m = r.minute()
    r.reserve(1, m + 1, m + 5, 20)
    r.reserve(2, m + 2, m + 6, 10)
    ctl = build()
    lim, table, drill, proc = ctl.limiter, ctl.table, ctl.limiter.drill, ctl.commands
    good = r.limiter.to_bytes()
    assert codes_of(lim.from_bytes, good[:-1]) == "E_LIMITER_RECORD"
    assert codes_of(lim.from_bytes, b"\x02" + good[1:]) == "E_LIMITER_RECORD"
    assert codes_of(lim.from_bytes, good[:1] + b"\x19" + good[2:]) == "E_LIMITER_FIELDS"
    t = r.table.to_bytes()
    assert codes_of(table.from_bytes, t[:-1]) == "E_RESERVATION_RECORD"
    bad = bytearray(t)
    bad[13] = 9  # slot 0's state
    assert codes_of(table.from_bytes, bytes(bad)) == "E_RESERVATION_SLOT"
    dup = bytearray(t)
    dup[14:16] = dup[1:3]  # slot 1 takes slot 0's id
    assert codes_of(table.from_bytes, bytes(dup)) == "E_RESERVATION_DUPLICATE"
    d = drill.to_bytes()
    assert codes_of(drill.from_bytes, d[:-1]) == "E_DRILL_RECORD"
    assert codes_of(drill.from_bytes, d[:25] + b"\x09" + d[26:]) == "E_DRILL_COUNT"
    assert codes_of(proc.restore_counter, b"\x01\x00") == "E_COUNTER_RECORD"
    assert codes_of(ctl.audit.restore, b"\x00" * 3) == "E_AUDIT_RECORD"


# -- the command layout, named on both ends ----------------------------------------------

def test_the_named_offsets_match_the_documented_layout():
    assert struct.calcsize(C.REQ_HEAD_FMT) == C.REQ_HEAD
    assert struct.calcsize(C.RESP_HEAD_FMT) == C.RESP_HEAD
    assert struct.calcsize(C.RESP_HEAD_FMT[:-2]) == C.RESP_STATUS
    assert struct.calcsize(C.RESP_HEAD_FMT[:-1]) == C.RESP_DATA_LEN


def test_the_head_end_reads_the_layout_the_meter_writes_with_its_own_constants():
    assert headend.REQ_HEAD_FMT == C.REQ_HEAD_FMT and headend.RESP_HEAD_FMT == C.RESP_HEAD_FMT
    assert (headend.RESP_HEAD, headend.MAC_LEN, headend.TAG_LEN) == (
        C.RESP_HEAD, C.MAC_LEN, C.TAG_LEN)
    from meter.control import audit, drill, reservations
    assert (headend.RECORD_FMT, headend.RECORD_LEN) == (reservations.RECORD_FMT,
                                                       reservations.RECORD_LEN)
    assert (headend.AUDIT_FMT, headend.AUDIT_LEN) == (audit.ENTRY_FMT, audit.ENTRY_LEN)
    assert headend.STATUS_FMT == C.STATUS_FMT and headend.REBASE_FMT == C.REBASE_FMT
    assert (headend.EPOCH_TAG, headend.MAX_EXPIRY_MIN) == (C.EPOCH_TAG, C.MAX_EXPIRY_MIN)
    assert headend.STATUS_TAMPER == C._ST_TAMPER
    assert headend.DEFAULT_EXPIRY_MIN <= headend.MAX_EXPIRY_MIN
    assert (headend.DRILL_RECORDS, headend.DRILL_RECORD_LEN) == (drill.REPORT_HEAD,
                                                                drill.RECORD)


def test_the_head_end_does_not_import_the_firmware_layouts():
    src = open(headend.__file__).read()
    imports = [ln.split("  #")[0] for ln in src.splitlines()
               if ln.startswith(("from meter", "import meter"))]
    assert imports == ["from meter.control import command as C",
                       "from meter.control import status as S",
                       "from meter.control.reservations import STATE_NAMES",
                       "from meter.control.limiter import STATE_NAMES as BREAKER_STATES"]
    used = set(re.findall(r"\bC\.(\w+)", src))
    assert used and all(n == "VERSION" or n.startswith("CMD_") for n in used), used
