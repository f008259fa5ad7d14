"""The one persistence owner: the keep map is the product's whole record set and every
journal is built with it; the control parts' blobs go through save-only handles onto the same
records as before; the interval series are one table; and the on-flash format is the one the
meter wrote before the store was restructured (old images mount and restore identically)."""

import hashlib
import struct

import pytest

from meter.clock import Now
from meter.errors import SettingError
from meter.events import EventLog, POWER_FAIL
from meter.mac import Hmac
from meter.metering.intervals import COLUMNS, IntervalCapture, MISSING
from meter.metering.registers import EnergyRegisters
from meter.metering.samples import Metering, Sample
from meter.storage import journal as J
from meter.storage import records as R
from meter.storage.assembly import build_storage
from meter.storage.store import (EVENT_BLOCK, HALF_BLOCKS, LIMITER_KEYS, SERIES, Store,
                                 keep_map, kind_record)
from hosthal.flash import NorFlash

KEY = bytes(range(32, 64))
DAY0 = 9_123 * 1440
SECTORS = 64
CONTROL_KINDS = (R.KIND_LIMITER, R.KIND_COUNTER, R.KIND_DRILL, R.KIND_RESERVATIONS)


def parts(dev, **sizes):
    regs = EnergyRegisters()
    cap = IntervalCapture(regs)
    ev = EventLog()
    return regs, cap, ev, build_storage(dev, Hmac(KEY), regs, cap, ev, **sizes)


# ---- the keep map: the product's record set, used by the storage sub-assembly ----------

def test_the_keep_map_covers_every_record_type_the_product_writes():
    keep = keep_map()
    # the control parts' records: limiter state, command counter, drill report; the table;
    # one audit entry per key, as many as the audit log holds
    assert keep[R.REC_LIMITER] == LIMITER_KEYS == 3
    assert keep[R.REC_AUDIT] == R.AUDIT_KEYS
    assert keep[R.REC_RESERVATIONS] == 1
    # the outage part's and the clock's state, the registers
    assert keep[R.REC_LASTGASP] == 1 and keep[R.REC_CLOCK] == 1 and keep[R.REC_REGISTERS] == 1
    # the series: enough blocks for the RAM rings (60 minutes, 24 h of 5-minute values)
    # plus the block being filled, and 102 days of half hours
    assert keep[R.REC_MINUTE] == 60 // 10 + 1
    assert keep[R.REC_FIVE] == 288 // 8 + 1
    assert keep[R.REC_HALF] == HALF_BLOCKS == 204
    # the event log: its 128 entries in blocks of 10, plus the block being filled
    assert keep[R.REC_EVENT] == (128 + EVENT_BLOCK - 1) // EVENT_BLOCK + 1
    assert set(keep) == {R.REC_REGISTERS, R.REC_MINUTE, R.REC_FIVE, R.REC_HALF, R.REC_EVENT,
                         R.REC_CLOCK, R.REC_LIMITER, R.REC_RESERVATIONS, R.REC_AUDIT,
                         R.REC_LASTGASP}


def test_smaller_rings_shrink_the_counts_but_never_the_record_set():
    small = keep_map(five_entries=24, event_entries=16, half_blocks=4)
    assert set(small) == set(keep_map())
    assert small[R.REC_FIVE] == 4 and small[R.REC_EVENT] == 3 and small[R.REC_HALF] == 4
    assert small[R.REC_LIMITER] == 3 and small[R.REC_AUDIT] == R.AUDIT_KEYS


def test_build_storage_puts_the_journal_on_the_whole_flash_with_the_keep_map():
    dev = NorFlash(SECTORS)
    regs, cap, ev, st = parts(dev)
    assert isinstance(st, Store) and (st.regs, st.capture, st.events) == (regs, cap, ev)
    j = st.journal
    assert (j.first, j.count) == (0, SECTORS)
    want = keep_map(cap.five.entries, ev.entries)
    for t in range(1, J.MAX_TYPE + 1):
        assert j.kept(t) == want.get(t, 1 if t <= R.LAST_TYPE else 0), t
    # sized from the parts it persists, and the half-hour blocks on request
    regs2 = EnergyRegisters()
    from meter.metering.intervals import FiveMinuteRing
    cap2 = IntervalCapture(regs2, five=FiveMinuteRing(24))
    st2 = build_storage(NorFlash(16), Hmac(KEY), regs2, cap2, EventLog(16), half_blocks=4)
    assert st2.journal.kept(R.REC_FIVE) == 4 and st2.journal.kept(R.REC_HALF) == 4
    assert st2.journal.kept(R.REC_AUDIT) == R.AUDIT_KEYS


def test_build_storage_refuses_a_flash_too_small_for_the_product_record_set():
    with pytest.raises(J.JournalError) as e:
        parts(NorFlash(8))
    assert e.value.args[0] == "E_JOURNAL_TOO_SMALL"


# ---- save-only handles for the control parts ---------------------------------------------

def test_kinds_map_onto_the_same_records_as_before():
    assert kind_record(R.KIND_LIMITER) == (R.REC_LIMITER, 0)
    assert kind_record(R.KIND_COUNTER) == (R.REC_LIMITER, 1)
    assert kind_record(R.KIND_DRILL) == (R.REC_LIMITER, 2)
    assert kind_record(R.KIND_RESERVATIONS) == (R.REC_RESERVATIONS, 0)
    assert kind_record(R.KIND_AUDIT, b"\x12\x34\x56\x78rest") == (R.REC_AUDIT, 0x12345678)
    assert kind_record(R.KIND_AUDIT, b"\xc0\x00\x00\x05") == (R.REC_AUDIT, 5)  # & 0x3FFFFFFF
    with pytest.raises(SettingError) as e:
        kind_record(99)
    assert e.value.args[0] == "E_STORE_KIND"


def test_saved_blobs_are_copied_and_read_back_by_kind_after_a_reboot():
    dev = NorFlash(SECTORS)
    st = parts(dev)[3]
    st.restore(Now())
    buf = bytearray(b"limiter-v1")
    lim = st.saver(R.KIND_LIMITER)
    lim.save(buf)
    buf[:] = b"XXXXXXXXXX"  # the caller reuses its buffer: the saved blob is a copy
    lim.save(b"limiter-v2")
    st.saver(R.KIND_COUNTER).save(b"\x00\x00\x00\x07")
    audit = st.saver(R.KIND_AUDIT)
    for seq in (3, 4, 5):
        audit.save(seq.to_bytes(4, "big") + b"entry")
    b = parts(NorFlash(SECTORS, dev.image()))[3]
    b.restore(Now())
    assert b.latest(R.KIND_LIMITER) == b"limiter-v2"
    assert b.all(R.KIND_LIMITER) == [b"limiter-v2"]
    assert b.latest(R.KIND_COUNTER) == b"\x00\x00\x00\x07"
    assert b.latest(R.KIND_DRILL) is None and b.all(R.KIND_RESERVATIONS) == []
    assert b.all(R.KIND_AUDIT) == [s.to_bytes(4, "big") + b"entry" for s in (3, 4, 5)]
    assert b.latest(R.KIND_AUDIT) == (5).to_bytes(4, "big") + b"entry"
    # the same records the journal held before the store owned them
    assert b.journal.latest(R.REC_LIMITER, 0) == b"limiter-v2"
    assert b.journal.latest(R.REC_LIMITER, 1) == b"\x00\x00\x00\x07"
    assert b.journal.keys(R.REC_AUDIT) == [3, 4, 5]


def test_blobs_written_by_the_old_control_store_are_read_back_by_kind():
    dev = NorFlash(SECTORS)
    st = parts(dev)[3]
    st.restore(Now())
    j = st.journal  # records as meter.storage.persist.JournalStore wrote them
    j.append(R.REC_LIMITER, b"state", 0)
    j.append(R.REC_LIMITER, b"counter", 1)
    j.append(R.REC_LIMITER, b"drill", 2)
    j.append(R.REC_RESERVATIONS, b"table", 0)
    j.append(R.REC_AUDIT, b"\x00\x00\x00\x09nine", 9)
    j.append(R.REC_AUDIT, b"\x00\x00\x00\x08eight", 8)
    b = parts(NorFlash(SECTORS, dev.image()))[3]
    b.restore(Now())
    assert [b.latest(k) for k in CONTROL_KINDS] == [b"state", b"counter", b"drill", b"table"]
    assert b.all(R.KIND_AUDIT) == [b"\x00\x00\x00\x08eight", b"\x00\x00\x00\x09nine"]


def test_a_failed_save_is_counted_and_never_propagates():
    dev = NorFlash(SECTORS)
    st = parts(dev)[3]
    lim = st.saver(R.KIND_LIMITER)
    lim.save(b"before mount")  # the journal refuses: not mounted
    assert lim.failed == 1 and lim.last_error.args[0] == "E_NOT_MOUNTED"
    st.restore(Now())
    lim.save(b"x" * (R.MAX_BLOB + 1))
    assert lim.failed == 2 and lim.last_error.args[0] == "E_RECORD_TOO_BIG"
    audit = st.saver(R.KIND_AUDIT)
    audit.save(b"\x01")  # too short to carry its seq
    assert audit.failed == 1 and st.save_failures == 3
    lim.save(b"fine")
    assert lim.failed == 2 and st.latest(R.KIND_LIMITER) == b"fine"
    with pytest.raises(SettingError):
        st.saver(42)


# ---- the series table --------------------------------------------------------------------

def test_the_series_table_matches_the_rings_the_capture_keeps():
    cap = IntervalCapture(EnergyRegisters())
    rings = (cap.ring, cap.five, cap.half)
    assert [(r[0], r[1], r[2], r[3]) for r in SERIES] == [
        (R.REC_MINUTE, 1, 10, 2), (R.REC_FIVE, 5, 8, 5), (R.REC_HALF, 30, 24, 2)]
    for row, ring in zip(SERIES, rings):
        assert ring.step == row[1] and ring.ncols == row[3]
        assert [COLUMNS[c] for c in range(ring.ncols)] == \
            (["fwd", "rev"] if row[3] == 2 else ["fwd", "rev", "lag", "lead", "volt"])
        # a block fits one journal record
        assert 8 + 4 * row[3] * row[2] <= J.MAX_PAYLOAD


def test_a_store_refuses_rings_that_do_not_match_the_table():
    from meter.metering.intervals import SeriesRing
    regs = EnergyRegisters()
    cap = IntervalCapture(regs, five=SeriesRing(5, 288, 2))  # lost its reactive columns
    with pytest.raises(SettingError) as e:
        Store(J.Journal(NorFlash(SECTORS), 0, SECTORS, Hmac(KEY), keep_map()), regs, cap,
              EventLog())
    assert e.value.args[0] == "E_STORE_SERIES"


def _old_block(base, entries, step, fmt):
    """A series block as the store before the table wrote it, packed independently:
    i32 base | u32 present bits | one fmt entry per boundary (zeros where absent)."""
    size = struct.calcsize(fmt)
    per = len(entries)
    buf = bytearray(8 + size * per)
    bits = 0
    for i, values in enumerate(entries):
        if values is not None:
            bits |= 1 << i
            struct.pack_into(fmt, buf, 8 + size * i, *values)
    struct.pack_into("<iI", buf, 0, base, bits)
    assert base % (step * per) == 0
    return bytes(buf)


def test_blocks_are_written_byte_for_byte_in_the_old_layout():
    dev = NorFlash(SECTORS)
    regs, cap, ev, st = parts(dev)
    st.restore(Now())
    base = DAY0 + 6 * 60  # 06:00: a boundary of all three series and block starts
    cap.high_water = base + 39
    for k in range(0, 40):
        if k % 7 != 3:  # a few missing minutes
            cap.ring.record(base + k, 1000 + k, 7 * k)
    for k in range(0, 40, 5):
        if k != 15:
            cap.five.record(base + k, 1000 + k, 7 * k, 3 * k, k, 1000 + k if k else MISSING)
    cap.half.record(base, 1000, 0)
    cap.half.record(base + 30, 1030, 210)
    st.commit_minute()
    j = st.journal
    for key in range(base // 10, (base + 39) // 10 + 1):
        want = _old_block(key * 10, [
            None if (key * 10 + i - base) % 7 == 3
            else (1000 + key * 10 + i - base, 7 * (key * 10 + i - base))
            for i in range(10)], 1, "<ii")
        assert j.latest(R.REC_MINUTE, key) == want, key
    want = _old_block(base, [None if k == 15 else (1000 + k, 7 * k, 3 * k, k,
                                                   1000 + k if k else MISSING)
                             for k in range(0, 40, 5)], 5, "<iiiii")
    assert j.latest(R.REC_FIVE, base // 40) == want
    half = [None] * 24
    half[12], half[13] = (1000, 0), (1030, 210)  # 06:00 and 06:30 of the 00:00 block
    assert j.latest(R.REC_HALF, base // 720) == _old_block(base - 360, half, 30, "<ii")


def test_old_format_records_constructed_directly_restore_identically():
    """Records packed by hand after the documented layout (not by the store) restore into
    the registers, the capture state, the rings, the event log and the clock."""
    dev = NorFlash(SECTORS)
    st = parts(dev)[3]
    st.restore(Now())
    j = st.journal
    hw = DAY0 + 90
    regs = struct.pack("<BB2xI", 1, 0x02, 1)
    for r, (count, rd, rj, wraps) in enumerate(((12_345, 9, 100, 0), (77, 0, 5, 0),
                                                 (3_000, 99, 359, 1), (0, 0, 0, 0))):
        regs += struct.pack("<IIII", count, rd, rj, wraps)
    regs += struct.pack("<iiqii", hw, hw - 5, 40_400, 40, 3)
    assert len(regs) == 96
    minute = _old_block(DAY0 + 80, [(500 + i, i) if i != 4 else None for i in range(10)],
                        1, "<ii")
    five = _old_block(DAY0 + 80, [(400 + i, i, 2 * i, 3 * i, 1000 + i) for i in range(8)],
                      5, "<iiiii")
    half = _old_block(DAY0, [(300 + i, i) for i in range(24)], 30, "<ii")
    events = bytearray(8 + 16 * 10)
    struct.pack_into("<II", events, 0, 0, 0b101)
    struct.pack_into("<HBxiii", events, 8, POWER_FAIL, 7, DAY0 + 1, 11, -11)
    struct.pack_into("<HBxiii", events, 8 + 32, POWER_FAIL, 9, DAY0 + 2, 22, -22)
    clock = struct.pack("<BB2xiiI", 1, 1, DAY0 + 3, 17, 4)
    j.append_group([(R.REC_MINUTE, (DAY0 + 80) // 10, minute),
                    (R.REC_FIVE, (DAY0 + 80) // 40, five), (R.REC_HALF, DAY0 // 720, half),
                    (R.REC_EVENT, 0, bytes(events)), (R.REC_CLOCK, 0, clock),
                    (R.REC_REGISTERS, 0, regs)])
    regs2, cap, ev, b = parts(NorFlash(SECTORS, dev.image()))
    assert b.restore(Now()).ok()
    assert [(regs2.count[r], regs2.rem_dwh[r], regs2.rem_j[r], regs2.wraps[r])
            for r in range(4)] == [(12_345, 9, 100, 0), (77, 0, 5, 0), (3_000, 99, 359, 1),
                                   (0, 0, 0, 0)]
    assert (cap.high_water, cap.last_five, cap.volt_sum, cap.volt_n, cap.missed) == \
        (hw, hw - 5, 40_400, 40, 3)
    for i in range(10):  # the 1-minute block: its present boundaries up to hw
        s = cap.ring.slot(DAY0 + 80 + i)
        assert (s < 0) == (i == 4), i
        if s >= 0:
            assert (cap.ring.fwd[s], cap.ring.rev[s]) == (500 + i, i)
    for i in range(8):  # 5-minute boundaries after hw are not restored (never captured)
        s = cap.five.slot(DAY0 + 80 + 5 * i)
        if DAY0 + 80 + 5 * i > hw:
            assert s < 0
        else:
            assert [cap.five.cols[c][s] for c in range(5)] == [400 + i, i, 2 * i, 3 * i,
                                                               1000 + i]
    assert [b.history(DAY0 + 30 * i) for i in range(4)] == [(300, 0), (301, 1), (302, 2),
                                                            (303, 3)]
    assert b.history(DAY0 + 120) == MISSING  # after the high-water mark
    assert [ev.get(k) for k in range(ev.n)] == [(2, POWER_FAIL, DAY0 + 2, 9, 22, -22),
                                               (0, POWER_FAIL, DAY0 + 1, 7, 11, -11)]
    assert (b.clock_valid, b.clock_minute, b.clock_second, b.clock_adjustments) == \
        (1, DAY0 + 3, 17, 4)


# ---- a whole run against the store before the restructuring -------------------------------

# sha256 digests of the flash image and of the restored state of golden_run(), computed
# with the code before the store owned every record (git 658361a: Store, default_keep() +
# REC_LIMITER 3 + REC_AUDIT AUDIT_KEYS as meter/app.py built it, persist.JournalStore for the
# control blobs; the same run with the loose time parameters of that API). A change of
# either digest is a change of the on-flash format or of what a boot restores from it.
GOLDEN_IMAGE = "d7f594c934451c30798b45d96c0322829ed1117850aa8358fe7eb5c67adec10f"
GOLDEN_STATE = "5e4921cd670cb28ee51264fd1a0f79ff7917c17466e7d48ec9fb63e57d221533"
GOLDEN_HOURS = 26


def _blob(kind, i):
    if kind == R.KIND_AUDIT:
        return i.to_bytes(4, "big") + bytes((i * 7 + k) & 0xFF for k in range(20))
    return bytes((kind * 31 + i + k) & 0xFF for k in range(8 + kind * 9))


def golden_run():
    """26 hours of varying load with an outage, a clock set back, events, a clock setting,
    control blobs, compaction round the partition, then the Last Gasp state and commit."""
    dev = NorFlash(SECTORS)
    regs, cap, ev, st = parts(dev)
    st.restore(Now().at(0, DAY0, 0, True))
    savers = {k: st.saver(k) for k in CONTROL_KINDS + (R.KIND_AUDIT,)}
    met = Metering(regs, cap)
    s = Sample()
    s.dt_ms = 1000
    now = Now()
    t0 = DAY0 * 60
    audit_seq = 0
    for i in range(GOLDEN_HOURS * 3600):
        if 7200 <= i < 7200 + 1500:
            continue  # an outage of 25 minutes: no ticks
        wall = t0 + i
        if 4 * 3600 <= i < 4 * 3600 + 900:
            wall -= 600  # the clock set back 10 minutes for 15 minutes
        s.e_fwd = 1000 + (i * 37) % 3000
        s.e_rev = (i * 11) % 200 if i % 3 == 0 else 0
        s.q_lag = s.e_fwd // 4
        s.q_lead = (i * 5) % 90
        s.p_w = s.e_fwd
        s.v_dv = 1000 + i % 17
        now.at(i * 1000, wall // 60, wall % 60, True)
        st.on_tick(now, met.tick(s, now))
        st.compact_step()
        if i % 997 == 0:
            ev.log(POWER_FAIL, wall // 60, wall % 60, i, -i)
        if i % 1777 == 0:
            for kind in CONTROL_KINDS:
                savers[kind].save(_blob(kind, i))
            savers[R.KIND_AUDIT].save(_blob(R.KIND_AUDIT, audit_seq))
            audit_seq += 1
        if i == 5 * 3600:
            st.commit_clock(True, wall // 60 + 3, 17, st.clock_adjustments + 1)
    st.save_lastgasp(b"lastgasp-state-v1")
    met.frozen = True
    st.commit_now()
    assert sum(sv.failed for sv in savers.values()) == 0
    return dev


def restored_state(image):
    regs, cap, ev, st = parts(NorFlash(SECTORS, image))
    rep = st.restore(Now().at(0, DAY0 + 999, 5, True))
    out = [repr(rep)]
    out.append([(regs.count[r], regs.rem_dwh[r], regs.rem_j[r], regs.wraps[r])
                for r in range(4)])
    out.append([cap.high_water, cap.last_five, cap.volt_sum, cap.volt_n, cap.missed])
    out.append([list(cap.ring.stamp), list(cap.ring.fwd), list(cap.ring.rev)])
    out.append([list(getattr(cap.five, c)) for c in ("stamp", "fwd", "rev", "lag", "lead",
                                                     "volt")])
    out.append([list(cap.half.stamp), list(cap.half.fwd), list(cap.half.rev)])
    out.append([ev.get(k) for k in range(ev.n)] + [ev.seq])
    out.append([st.clock_valid, st.clock_minute, st.clock_second, st.clock_adjustments])
    out.append([st.history(m) for m in range(DAY0 - 60, cap.high_water + 60, 30)])
    out.append([st.latest(k) for k in CONTROL_KINDS])
    out.append(st.all(R.KIND_AUDIT))
    out.append(st.lastgasp_state())
    return repr(out)


def test_a_day_written_now_is_byte_identical_to_the_old_store_and_restores_the_same():
    dev = golden_run()
    assert dev.erases > SECTORS  # compaction went round the partition: carries included
    assert hashlib.sha256(bytes(dev.mem)).hexdigest() == GOLDEN_IMAGE
    assert hashlib.sha256(restored_state(dev.image()).encode()).hexdigest() == GOLDEN_STATE


def test_a_registers_record_of_another_version_is_refused_with_its_code():
    dev = NorFlash(SECTORS)
    st = parts(dev)[3]
    st.restore(Now())
    st.journal.append(R.REC_REGISTERS, struct.pack("<BB2xI", 2, 0x02, 1) + bytes(88))
    with pytest.raises(SettingError) as e:
        parts(NorFlash(SECTORS, dev.image()))[3].restore(Now())
    assert e.value.args[0] == "E_STORE_VERSION"
