"""What the meter keeps on flash: registers, capture state, rings, 100 days of half-hour
history served from flash, the event log, clock settings; the key file; the file-backed
flash of the host simulation."""

import os
import signal
import subprocess
import sys

import pytest

from meter.storage import journal as J
from meter.clock import Now, set_clock
from meter.events import (EventLog, CLOCK_ADJUST_OLD, CLOCK_ADJUST_NEW, JOURNAL_CORRUPT,
                          TAMPER_SEAL, POWER_FAIL)
from meter.metering.intervals import IntervalCapture, HalfHourHistory, MISSING, MINUTE
from meter.storage.keyfile import load_key, KeyMissing
from meter.mac import Hmac
from meter.metering.samples import Metering, Sample
from meter.metering.registers import EnergyRegisters, FWD, SettingError
from meter.storage.assembly import build_storage
from meter.storage.store import Store, keep_map, HALF_BLOCKS, COMMIT_MS
from paths import ROOT
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash, PowerCut
from hosthal.flash_file import FileNorFlash
from hosthal.keyfile import host_key

KEY = b"s" * 32
SECTORS = 64
DAY0 = 9_000 * 1440


def boot_now(minute):
    """The clock reading at a boot: wall `minute` (second 0), or an invalid clock (MISSING)."""
    return Now().at(0, max(minute, 0), 0, minute >= 0)


class Meter:
    """The parts the store persists, built fresh as at a boot, through the storage
    sub-assembly (the product's record set)."""

    def __init__(self, dev, unit=0x02, minute=MISSING):
        self.dev = dev
        self.regs = EnergyRegisters(unit=unit)
        self.cap = IntervalCapture(self.regs)
        self.metering = Metering(self.regs, self.cap)
        self.events = EventLog()
        self.store = build_storage(dev, Hmac(KEY), self.regs, self.cap, self.events)
        self.journal = self.store.journal
        self.report = self.store.restore(boot_now(minute))
        self.sample = Sample()
        self.sample.dt_ms = 1000
        self.sample.v_dv = 1005
        self.now = Now()

    def tick(self, ms, minute, second, valid=True):
        """One metering second at monotonic `ms` and wall (minute, second): metering, then
        the store, with one clock reading. Returns the store's on_tick() result."""
        now = self.now.at(ms, minute, second, valid)
        return self.store.on_tick(now, self.metering.tick(self.sample, now))

    def run(self, start_s, seconds, watts=1500, step=1):
        s = self.sample
        s.dt_ms = step * 1000
        s.e_fwd = watts * step
        s.q_lag = watts // 4 * step
        s.p_w = watts
        last = None
        for t in range(start_s, start_s + seconds, step):
            last = self.tick(t * 1000, t // 60, t % 60)
            self.store.compact_step()
        return last

    def reboot(self, minute=MISSING):
        return Meter(NorFlash(SECTORS, self.dev.image()), self.regs.unit, minute)


def regs_state(regs):
    return [(regs.count[r], regs.rem_dwh[r], regs.rem_j[r], regs.wraps[r]) for r in range(4)]


def test_restore_rebuilds_registers_remainders_rings_and_capture_state():
    m = Meter(NorFlash(SECTORS))
    m.run(DAY0 * 60, 3 * 3600 + 17)
    m.store.commit_now()
    b = m.reboot()
    assert b.report.ok()
    assert regs_state(b.regs) == regs_state(m.regs)
    assert b.regs.total_joules(FWD) == m.regs.total_joules(FWD)
    for a in ("high_water", "last_five", "volt_sum", "volt_n", "missed"):
        assert getattr(b.cap, a) == getattr(m.cap, a), a
    assert list(b.cap.ring.stamp) == list(m.cap.ring.stamp)
    assert list(b.cap.ring.fwd) == list(m.cap.ring.fwd)
    for col in ("stamp", "fwd", "rev", "lag", "lead", "volt"):
        assert list(getattr(b.cap.five, col)) == list(getattr(m.cap.five, col)), col
    assert list(b.cap.half.stamp) == list(m.cap.half.stamp)
    assert list(b.cap.half.fwd) == list(m.cap.half.fwd)


def test_without_last_gasp_at_most_one_minute_of_energy_is_lost():
    m = Meter(NorFlash(SECTORS))
    for extra in range(0, 125, 7):
        start = DAY0 * 60 + 600
        mm = Meter(NorFlash(SECTORS))
        mm.run(start, 600 + extra, watts=3000)
        b = mm.reboot()
        lost = mm.regs.total_joules(FWD) - b.regs.total_joules(FWD)
        assert 0 <= lost <= 3000 * 60, (extra, lost)
    assert m.report.records == 0


def test_with_last_gasp_nothing_is_lost_and_no_erase_happens():
    m = Meter(NorFlash(SECTORS))
    m.run(DAY0 * 60, 5000 + 33, watts=2222)
    m.metering.frozen = True
    e0 = m.dev.erases
    p0 = m.dev.programs
    m.store.commit_now()
    assert m.dev.erases == e0 and m.dev.programs - p0 <= 6
    b = m.reboot()
    assert regs_state(b.regs) == regs_state(m.regs)
    assert (b.cap.volt_sum, b.cap.volt_n) == (m.cap.volt_sum, m.cap.volt_n)


def test_last_gasp_commit_succeeds_when_compaction_fell_behind():
    m = Meter(NorFlash(SECTORS))
    m.run(DAY0 * 60, 600)
    with pytest.raises(J.JournalFull):
        while True:  # commits with no compaction in between until refused
            m.store.commit_minute()
    e0 = m.dev.erases
    m.store.commit_now()
    assert m.dev.erases == e0
    assert regs_state(m.reboot().regs) == regs_state(m.regs)


def test_registers_are_committed_every_minute_while_the_clock_is_set_back():
    m = Meter(NorFlash(SECTORS))
    t0 = DAY0 * 60
    m.run(t0, 600)
    c0 = m.store.commits
    # the wall clock is set back 20 minutes: no boundary is processed for 20 minutes
    now = m.now
    for i in range(1200):
        wall = t0 + 600 - 1200 + i
        now.at((t0 + 600 + i) * 1000, wall // 60, wall % 60, True)
        bits = m.metering.tick(m.sample, now)
        assert not bits & MINUTE
        m.store.on_tick(now, bits)
    assert m.store.commits - c0 == 1200 * 1000 // COMMIT_MS


def test_history_of_100_days_is_served_from_flash_with_bounded_ram():
    dev = NorFlash(SECTORS)
    m = Meter(dev)
    assert m.cap.half.entries == 96  # RAM: two days only
    truth = {}
    s = m.sample
    start = DAY0 - 103 * 1440
    for k in range(103 * 48):
        minute = start + 30 * k
        s.dt_ms = 60_000
        s.e_fwd = 60_000 + k * 7
        s.e_rev = k % 3 * 1000
        m.tick(minute * 60_000, minute, 0)
        m.store.compact_step()
        i = m.cap.half.slot(minute)
        truth[minute] = (m.cap.half.fwd[i], m.cap.half.rev[i])
    b = m.reboot()
    hw = b.cap.high_water
    for day in range(100):  # ECHONET E2/E4 days 0..99
        for h in range(48):
            minute = (hw // 1440 - day) * 1440 + 30 * h
            if minute <= hw:
                assert b.store.history(minute) == truth[minute], (day, h)
    m0 = hw - hw % 30 - 99 * 1440
    assert b.store.history_count(m0, FWD) == truth[m0][0]
    assert b.store.history_count(m0, 1) == truth[m0][1]
    assert b.store.history_count(hw + 30, FWD) == MISSING
    assert b.store.history(hw + 30) == MISSING
    assert b.store.history(hw + 1) == MISSING
    assert b.store.history(start - 30) == MISSING
    assert len(b.journal.keys(J.REC_HALF)) == HALF_BLOCKS
    assert dev.erases > 0


def test_event_log_survives_reboot_and_numbering_continues():
    m = Meter(NorFlash(SECTORS))
    for i in range(25):
        m.events.log(POWER_FAIL, DAY0 + i, 0, i, 0)
    m.run(DAY0 * 60, 61)
    b = m.reboot()
    assert b.events.n == 25 and b.events.seq == 25
    assert b.events.get(0) == (24, POWER_FAIL, DAY0 + 24, 0, 24, 0)
    assert b.events.log(POWER_FAIL, DAY0, 0) == 25


def test_clock_set_logs_old_and_new_time_and_is_persisted():
    m = Meter(NorFlash(SECTORS))
    clock = VirtualClock(DAY0 * 60 + 100)
    m.run(DAY0 * 60, 120)
    assert set_clock(clock, m.events, m.store, DAY0 + 90, 5, force=True) == (90 * 60 + 5) - 100
    assert set_clock(clock, m.events, m.store, DAY0 + 10, 0, force=True) == -(80 * 60 + 5)
    b = m.reboot()
    olds = [e for e in (b.events.get(k) for k in range(b.events.n))
            if e[1] == CLOCK_ADJUST_OLD]
    news = [e for e in (b.events.get(k) for k in range(b.events.n))
            if e[1] == CLOCK_ADJUST_NEW]
    assert [e[4:] for e in reversed(olds)] == [(DAY0 + 1, 40), (DAY0 + 90, 5)]
    assert [e[4:] for e in reversed(news)] == [(DAY0 + 90, 5), (DAY0 + 10, 0)]
    assert (b.store.clock_valid, b.store.clock_minute, b.store.clock_second,
            b.store.clock_adjustments) == (1, DAY0 + 10, 0, 2)


def test_clock_set_from_invalid_and_out_of_range_values():
    m = Meter(NorFlash(SECTORS))
    clock = VirtualClock()
    assert set_clock(clock, m.events, m.store, DAY0, 0) is None
    assert m.events.get(1)[4:] == (-1, 0)
    n = m.events.n
    for bad in ((-1, 0), (DAY0, 60), (DAY0, -1), (10 ** 9, 0), (DAY0, 1.5)):
        with pytest.raises(SettingError):
            set_clock(clock, m.events, m.store, *bad)
    assert m.events.n == n and clock.wall_minute() == DAY0


def test_clock_jumps_never_duplicate_overwrite_or_invent_intervals():
    m = Meter(NorFlash(SECTORS))
    t0 = DAY0 * 60
    m.run(t0, 3600)
    before = {b: m.store.history(b) for b in range(DAY0, DAY0 + 60, 30)}
    # back 40 minutes, run an hour: the boundaries already stored are not rewritten
    m.run(t0 + 3600 - 2400, 3600, watts=5000)
    assert {b: m.store.history(b) for b in before} == before
    # forward 2 hours: the skipped boundaries stay missing
    hw = m.cap.high_water
    m.run((hw + 120) * 60, 120)
    b = m.reboot()
    for minute in range(hw + 30 - hw % 30, hw + 120, 30):
        assert b.store.history(minute) == MISSING
    assert {x: b.store.history(x) for x in before} == before


def test_corruption_and_tamper_become_events_once():
    m = Meter(NorFlash(SECTORS))
    m.run(DAY0 * 60, 900)
    dev = m.dev
    addrs = [s * 4096 + p * 256 for s in range(SECTORS) for p in range(1, 16)
             if dev.mem[s * 4096 + p * 256:s * 4096 + p * 256 + 2] == b"MJ"]
    dev.mem[addrs[3] + 40] ^= 0x04  # a bit flip
    victim = addrs[5]
    n = dev.mem[victim + 4]
    dev.mem[victim + 33] ^= 0x01  # a tamperer who knows the CRC
    end = victim + 48 + n
    dev.mem[end:end + 4] = J.crc32(bytes(dev.mem[victim:end])).to_bytes(4, "little")
    b = m.reboot(DAY0 + 20)
    assert b.report.corrupt == 1 and b.report.tamper == 1
    assert b.events.count(JOURNAL_CORRUPT) == 1 and b.events.count(TAMPER_SEAL) == 1
    again = b.reboot(DAY0 + 21)
    assert again.events.count(JOURNAL_CORRUPT) == 1 and again.events.count(TAMPER_SEAL) == 1
    assert again.report.tamper == 1  # still reported: nothing was repaired


def test_registers_with_another_unit_are_restored_with_their_unit():
    m = Meter(NorFlash(SECTORS), unit=0x04)
    m.run(DAY0 * 60, 300)
    m.store.commit_now()
    b = Meter(NorFlash(SECTORS, m.dev.image()), unit=0x02)
    assert b.regs.unit == 0x04 and regs_state(b.regs) == regs_state(m.regs)


def test_store_half_ring_smaller_than_a_block_keeps_flash_entries():
    dev = NorFlash(SECTORS)
    regs = EnergyRegisters()
    cap = IntervalCapture(regs, half=HalfHourHistory(days=1))
    cap.half.entries = 10  # a tiny RAM window (entries < one flash block)
    j = J.Journal(dev, 0, SECTORS, Hmac(KEY), keep_map())
    st = Store(j, regs, cap, EventLog())
    st.restore()
    met = Metering(regs, cap)
    s = Sample()
    s.dt_ms = 60_000
    s.e_fwd = 50_000
    now = Now()
    for k in range(24):
        now.at((DAY0 + 30 * k) * 60_000, DAY0 + 30 * k, 0, True)
        st.on_tick(now, met.tick(s, now))
    assert all(st.history(DAY0 + 30 * k) != MISSING for k in range(24))


def test_key_loader_raises_a_clear_error_when_the_key_is_missing(tmp_path):
    with pytest.raises(KeyMissing) as e:
        load_key(str(tmp_path / "meter.key"))
    assert e.value.args[0] == "E_KEY_MISSING" and "provision" in e.value.args[1]
    (tmp_path / "short.key").write_bytes(b"x" * 8)
    with pytest.raises(KeyMissing) as e:
        load_key(str(tmp_path / "short.key"))
    assert e.value.args[0] == "E_KEY_LENGTH"


def test_host_key_is_generated_once_under_var(tmp_path):
    p = str(tmp_path / "var" / "meter.key")
    k1 = host_key(p)
    assert len(k1) == 32 and host_key(p) == k1


def test_no_key_in_source_control():
    r = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    files = r.stdout.split()
    assert not [f for f in files if f.endswith(".key")]


def test_file_flash_persists_programs_and_can_start_blank(tmp_path):
    p = str(tmp_path / "var" / "flash.bin")
    f = FileNorFlash(p, sectors=8)
    f.program(4096 + 10, b"\x12\x34")
    f.cut_after(1)
    with pytest.raises(PowerCut):
        f.program(8192, b"\x00\x00")
    f.close()
    g = FileNorFlash(p, sectors=8)
    assert g.mem[4096 + 10:4096 + 12] == b"\x12\x34"
    assert g.mem[8192:8194] == b"\x00\xff"  # the byte programmed before the cut is there
    g.erase_sector(1)
    g.close()
    assert FileNorFlash(p, sectors=8).mem[4096 + 10] == 0xFF
    assert FileNorFlash(p, sectors=8, blank=True).mem[8192] == 0xFF
    with pytest.raises(ValueError):
        FileNorFlash(p, sectors=4)


_CHILD = r"""
import sys, time
sys.path[:0] = [%r + "/board/cpython", %r + "/firmware", %r + "/board"]
from hosthal.flash_file import FileNorFlash
from meter.storage import journal as J
from meter.mac import Hmac
dev = FileNorFlash(sys.argv[1], sectors=16)
j = J.Journal(dev, 0, 16, Hmac(b"c" * 32))
j.mount()
i = 0
while True:
    j.append(J.REC_REGISTERS, b"%%08d" %% i)
    j.compact_step()
    print(i, flush=True)
    i += 1
"""


def test_a_sigkilled_simulation_resumes_from_its_flash_file(tmp_path):
    p = str(tmp_path / "sim-flash.bin")
    child = subprocess.Popen([sys.executable, "-c", _CHILD % (ROOT, ROOT, ROOT), p],
                             stdout=subprocess.PIPE, text=True)
    last = -1
    for line in child.stdout:
        last = int(line)
        if last >= 300:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    dev = FileNorFlash(p, sectors=16)
    j = J.Journal(dev, 0, 16, Hmac(b"c" * 32))
    rep = j.mount()
    assert rep.chain_ok()
    assert int(j.latest(J.REC_REGISTERS)) >= last  # everything reported done is there


def test_default_policy_and_partition_last_more_than_20_years():
    import wear
    r = wear.measure(sectors=64, days=1)  # with the A-route's outbox record every minute
    assert r["outbox_records_per_day"] == 1440
    assert r["lifetime_years_worst_sector"] >= 20
    writes = r["commits_per_day"] + r["outbox_records_per_day"]
    assert r["page_programs_per_day"] < 4 * writes  # a few page programs per record


def test_last_gasp_state_is_saved_without_erase_and_restored():
    m = Meter(NorFlash(SECTORS))
    m.run(DAY0 * 60, 120)
    e0 = m.dev.erases
    m.store.save_lastgasp(b"lg-state")
    assert m.dev.erases == e0
    assert m.reboot().store.lastgasp_state() == b"lg-state"


def test_a_full_journal_delays_commits_until_compaction_made_room_and_boot_survives():
    m = Meter(NorFlash(SECTORS))
    t0 = DAY0 * 60
    for t in range(t0, t0 + 8 * 3600):  # no compaction at all: the journal fills up
        m.tick(t * 1000, t // 60, t % 60)
    assert m.store.full_errors > 0
    m.store.commit_now()  # the Last Gasp still lands
    b = m.reboot(DAY0 + 200)
    assert regs_state(b.regs) == regs_state(m.regs)
    while b.store.compact_step():
        pass
    t = t0 + 8 * 3600
    assert b.tick(t * 1000, t // 60, t % 60) >= 0


def test_a_save_handle_returns_true_when_durable_and_false_when_refused():
    from meter.storage.records import KIND_LIMITER

    m = Meter(NorFlash(SECTORS))
    saver = m.store.saver(KIND_LIMITER)
    assert saver.save(b"\x01\x02") is True and m.store.latest(KIND_LIMITER) == b"\x01\x02"

    def full(*a, **kw):
        raise J.JournalFull("E_JOURNAL_FULL")

    m.journal.append = full
    assert saver.save(b"\x03") is False and saver.failed == 1 and m.store.save_failures == 1
