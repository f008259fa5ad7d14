"""The registers' running copy in retained memory: a crash loses nothing, a bad copy is refused."""

import struct

from meter import events as ev
from meter.assembly import build_meter
from meter.metering.registers import FWD, REV
from meter.storage import retained as R
from meter.storage.store import FROM_JOURNAL, FROM_RETAINED
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from hosthal.loads import ConstantLoad
from hosthal.retained import FileRetained, RamRetained
from rigs import DAY0_S, KEY, Config


class Board:
    """A meter on a flash and a retained memory. crash() is a watchdog reset or panic: RAM
    lost, flash and retained memory kept; power_off() also clears the retained memory."""

    def __init__(self, flash=None, retained=None, start_s=DAY0_S + 8 * 3600, watts=1500,
                 key=KEY):
        self.flash = flash or NorFlash(sectors=64)
        self.retained = retained if retained is not None else RamRetained()
        self.clock = VirtualClock(wall_s=start_s)
        self.key = key
        self.watts = watts
        self.meter = self._boot()

    def _boot(self):
        hal = HostHal(self.clock, ConstantLoad(self.watts), flash=self.flash,
                      retained=self.retained)
        m = build_meter(hal, Config(), key=self.key)
        m.boot()
        return m

    def seconds(self, n):
        for _ in range(n):
            self.meter.step()
            self.meter.idle()
            self.clock.advance(1000)

    def crash(self, flash=None):
        if flash is not None:
            self.flash = flash
        self.meter = self._boot()
        return self.meter

    def power_off(self):
        self.retained.power_off()
        return self.crash()


def state(m):
    r = m.regs
    return [(r.count[i], r.rem_dwh[i], r.rem_j[i], r.wraps[i]) for i in range(4)]


def test_a_crash_mid_minute_loses_no_energy_and_serves_nothing_lower():
    b = Board()
    b.seconds(3600 + 42)  # 42 s past the last minute commit
    m = b.meter
    served = m.regs.count[FWD]
    before = state(m)
    n = b.crash()
    assert n.store.restored_from == FROM_RETAINED and n.store.retained_state == R.USED
    assert state(n) == before  # every joule, the remainders too
    assert n.regs.count[FWD] >= served
    used = n.events.newest(ev.RETAINED_USED)
    assert used is not None and abs(used[4] * 360 - 42 * 1500) <= 3000  # dWh regained
    n.store.retain()  # and the copy carries on from the commit the boot made
    assert b.crash().regs.total_joules(FWD) == n.regs.total_joules(FWD)


def test_the_partial_interval_survives_a_crash_so_the_next_boundary_is_exact():
    b = Board()
    b.seconds(1800 + 30)
    cap = b.meter.capture
    partial = (cap.high_water, cap.last_five, cap.volt_sum, cap.volt_n)
    n = b.crash()
    c = n.capture
    assert (c.high_water, c.last_five, c.volt_sum, c.volt_n) == partial


def test_a_power_off_clears_the_copy_and_the_journal_covers_it():
    b = Board()
    b.seconds(3600 + 42)
    total = b.meter.regs.total_joules(FWD)
    n = b.power_off()
    assert n.store.retained_state == R.BLANK and n.store.restored_from == FROM_JOURNAL
    lost = total - n.regs.total_joules(FWD)
    assert 0 < lost <= 1500 * 60  # at most the minute since the commit
    assert n.events.newest(ev.RETAINED_REJECTED) is None  # blank is normal, not an event


def test_repeated_crashes_never_lose_energy():
    b = Board()
    for k in range(12):
        b.seconds(37 + 11 * k)
        exact = b.meter.regs.total_joules(FWD)
        assert b.crash().regs.total_joules(FWD) == exact


def test_after_a_last_gasp_commit_the_journal_is_newer_and_the_copy_is_stale():
    b = Board()
    b.seconds(600 + 20)
    b.meter.store.commit_now()  # the Last Gasp (or power_down) commits after the last step
    before = state(b.meter)
    n = b.crash()
    assert n.store.retained_state == R.STALE and state(n) == before


def test_another_meters_copy_is_refused_and_logged():
    mem = RamRetained()
    other = Board(retained=mem, key=b"another-meter-key-0123456789abcd")
    other.seconds(200)
    b = Board(retained=mem)
    assert b.meter.store.retained_state == R.FOREIGN
    e = b.meter.events.newest(ev.RETAINED_REJECTED)
    assert e is not None and e[4] == R.FOREIGN
    assert b.meter.regs.total_joules(FWD) == 0


def test_a_corrupted_copy_is_refused_and_a_torn_block_falls_back_to_the_other():
    b = Board()
    b.seconds(600 + 9)
    older = b.meter.regs.total_joules(FWD)
    b.seconds(1)
    mem = b.retained.mem
    newest = b.meter.store.retained.seq & 1
    mem[newest * R.BLOCK + 40] ^= 0xFF  # the newest block torn: the other is one second older
    n = b.crash()
    assert n.store.retained_state == R.USED
    assert n.regs.total_joules(FWD) == older
    b.seconds(2)  # both blocks written afresh, then both damaged
    for k in range(2):
        b.retained.mem[k * R.BLOCK + 40] ^= 0xFF
    n = b.crash()
    assert n.store.retained_state == R.CORRUPT
    assert n.events.newest(ev.RETAINED_REJECTED)[4] == R.CORRUPT


def test_a_flash_rolled_back_under_a_copy_is_not_trusted():
    b = Board()
    b.seconds(600)
    old = NorFlash(64, b.flash.image())
    b.seconds(300)
    n = b.crash(flash=old)  # the copy runs on from commits the old image never had
    assert n.store.retained_state == R.AHEAD


def test_a_copy_with_less_energy_than_the_journal_or_implausibly_more_is_refused():
    b = Board()
    b.seconds(600 + 5)
    st = b.meter.store
    b.meter.regs.count[FWD] -= 100  # below the minute commit (10 s ago: ~42 counts)
    st.retain()
    assert b.crash().store.retained_state == R.BEHIND
    b.seconds(5)
    b.meter.regs.count[REV] += 10_000_000  # 1 MWh in a second: not from this meter's front end
    b.meter.store.retain()
    n = b.crash()
    assert n.store.retained_state == R.IMPLAUSIBLE and n.regs.count[REV] < 10_000_000


def test_the_copy_is_written_every_second_without_touching_flash():
    b = Board()
    b.seconds(30)  # inside the first minute: no commit due
    j = b.meter.journal
    p, e, w = j.programs, j.erases, b.retained.writes
    b.seconds(20)
    assert b.retained.writes - w == 20 and (j.programs, j.erases) == (p, e)


def test_the_file_retained_memory_survives_the_process_and_a_power_off_deletes_it(tmp_path):
    path = str(tmp_path / "retained.bin")
    f = FileRetained(path)
    buf = bytearray(range(256))
    f.write(buf)
    f.close()
    got = bytearray(256)
    assert FileRetained(path).read(got) and got == buf
    FileRetained(path).power_off()
    assert not FileRetained(path).read(got)


def test_the_esp32_retained_memory_shares_rtc_memory_with_the_flag_slots(monkeypatch):
    import sys
    import types

    class FakeRTC:
        mem = b""

        def memory(self, data=None):
            if data is None:
                return FakeRTC.mem
            FakeRTC.mem = bytes(data)

    machine = types.ModuleType("machine")
    machine.RTC = FakeRTC
    monkeypatch.setitem(sys.modules, "machine", machine)
    monkeypatch.delitem(sys.modules, "esp32hal.rtcmem", raising=False)
    from esp32hal import rtcmem

    r = rtcmem.RtcRetained()
    buf = bytearray(256)
    assert not r.read(buf)  # power-on: nothing retained
    rtcmem.put(rtcmem.CLOCK_VALID, 1)
    r.write(bytearray(b"\x5a" * 256))
    assert rtcmem.get(rtcmem.CLOCK_VALID) == 1  # the write kept the flag
    rtcmem.put(rtcmem.CLOCK_VALID, 0)
    assert rtcmem.RtcRetained().read(buf) and buf == b"\x5a" * 256  # the put kept the copy
    assert rtcmem.get(rtcmem.CLOCK_VALID) == 0
    assert len(FakeRTC.mem) == rtcmem.RETAINED_END <= 2048


def test_the_block_crc_is_crc16_ccitt_false():
    R._table()
    saved = R._hqx
    try:
        R._hqx = None  # the board's table path
        assert R.crc16(bytearray(b"123456789"), 0, 9) == 0x29B1
    finally:
        R._hqx = saved
    assert R.crc16(bytearray(b"123456789"), 0, 9) == 0x29B1
    assert struct.calcsize("<IiII") == 16 and R.OFF_PAYLOAD + 96 <= 126


def test_boundaries_captured_while_the_journal_refused_commits_are_reported_lost_by_a_crash():
    from meter.storage import journal as J

    b = Board()
    b.seconds(200)
    j = b.meter.journal
    real = j.append_group

    def refuse(items, reserve=J.NORMAL):
        raise J.JournalFull("E_JOURNAL_FULL")

    j.append_group = refuse  # compaction fell behind: every commit is refused and retried
    committed = b.meter.store._hw
    b.seconds(130)
    hw = b.meter.capture.high_water
    assert hw >= committed + 2
    j.append_group = real
    m = b.crash()  # a watchdog reset: RAM lost, the retained copy kept
    assert m.store.restored_from == FROM_RETAINED
    lost = [m.events.get(k) for k in range(m.events.n) if m.events.get(k)[1] ==
            ev.BOUNDARIES_LOST]
    assert len(lost) == 1 and lost[0][4] == committed + 1 and lost[0][5] == hw - committed
    ring = m.capture.ring
    assert all(ring.slot(x) < 0 for x in range(committed + 1, hw + 1))  # missing, not invented
    assert m.capture.high_water == hw  # and never captured again with other values
