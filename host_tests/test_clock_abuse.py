"""Clock abuse: a clock set years ahead and back never stops capture, never evicts or changes
real history, and EA/EB/D0 serve real newest values; a large change needs force=True."""

import pytest

from meter import events as ev
from meter.broute.echonet.meter_object import SmartMeter
from meter.broute.echonet.node import Identity
from meter.clock import CLOCK_JUMP_S
from meter.errors import SettingError
from meter.mac import Hmac
from meter.metering.intervals import MISSING
from meter.metering.registers import FWD
from meter.storage import journal as J
from meter.storage.records import REC_HALF
from hosthal.flash import NorFlash
from rigs import DAY0_S, KEY, MeterRig

TEN_YEARS_MIN = 3652 * 1440


def meter_object(rig):
    m = rig.meter
    return SmartMeter(m.regs, m.metering, m.capture, Identity(serial=b"TEST00010000"),
                      m.store.history_count)


def read(obj, rig, epc):
    now = rig.meter.now.read(rig.clock)
    obj.at(now.minute, now.second, now.valid)
    buf = bytearray(256)
    n = obj.read(epc, buf, 0)
    return bytes(buf[:n])


def codes(meter):
    return [meter.events.get(k)[1] for k in range(meter.events.n - 1, -1, -1)]


def test_a_change_beyond_the_bound_needs_force_and_is_logged_as_forced():
    rig = MeterRig(flash=NorFlash(sectors=64))
    rig.seconds(30)
    m = rig.meter
    wall, n = rig.clock.wall_seconds(), m.events.n
    t = wall + CLOCK_JUMP_S + 60
    with pytest.raises(SettingError) as e:
        m.set_clock(t // 60, t % 60)
    assert e.value.args[0] == "E_CLOCK_JUMP"
    assert rig.clock.wall_seconds() == wall and m.events.n == n  # nothing changed
    t = wall + CLOCK_JUMP_S - 60
    assert m.set_clock(t // 60, t % 60) == CLOCK_JUMP_S - 60  # within the bound
    assert ev.CLOCK_FORCED not in codes(m)
    t = wall + 3 * CLOCK_JUMP_S
    m.set_clock(t // 60, t % 60, force=True)
    assert m.events.newest(ev.CLOCK_FORCED)[4] == t // 60 - (wall + CLOCK_JUMP_S - 60) // 60


def test_ten_years_ahead_and_back_resumes_capture_and_keeps_real_history():
    flash = NorFlash(sectors=64)
    rig = MeterRig(flash=flash, start_s=DAY0_S)
    m = rig.meter
    obj = meter_object(rig)
    rig.seconds(26 * 3600 + 30)  # a day and two hours of real history
    real_hw = m.capture.high_water
    served = {b: m.store.history_count(b, FWD) for b in range(real_hw - 1500, real_hw, 30)}
    assert MISSING not in served.values()
    assert obj.write(0xE5, b"\x01", 0, 1)  # E2 of yesterday, as a HEMS reads it
    e2_yesterday = read(obj, rig, 0xE2)
    # the clock is set ten years ahead by mistake, and runs there for two hours
    real = rig.clock.wall_seconds()
    m.set_clock(real // 60 + TEN_YEARS_MIN, real % 60, force=True)
    rig.seconds(7200)
    assert m.capture.high_water > real_hw + TEN_YEARS_MIN
    # corrected: back to the real time (which ran on by those two hours)
    real += 7200
    m.set_clock(real // 60, real % 60, force=True)
    e0 = m.regs.count[FWD]
    rig.seconds(120)
    # capture resumed at once: every boundary since the correction is captured
    now_m = rig.clock.wall_minute()
    assert all(m.capture.ring.slot(x) >= 0 for x in range(real // 60 + 1, now_m + 1))
    assert m.regs.count[FWD] > e0
    # newest values are real ones: D0 and EA stamped now, not in the corrected future
    assert m.capture.ring.latest() == now_m and m.capture.half.latest() <= now_m
    d0 = read(obj, rig, 0xD0)
    assert (d0[0] << 8 | d0[1]) < 2040
    ea = read(obj, rig, 0xEA)
    assert (ea[0] << 8 | ea[1]) < 2040 and ea[7:11] != b"\xff\xff\xff\xfe"
    # history already served is still served, the same, from RAM and from flash
    assert {b: m.store.history_count(b, FWD) for b in served} == served
    assert read(obj, rig, 0xE2) == e2_yesterday
    # the anomaly is on record: two forced settings and the dropped span
    assert codes(m).count(ev.CLOCK_FORCED) == 2
    drop = m.events.newest(ev.FUTURE_DROPPED)
    assert drop[4] == real // 60 + 1 and drop[5] > real_hw + TEN_YEARS_MIN
    assert m.capture.future_dropped == 60  # the ring's 60 minutes stamped in the future
    # no future-stamped block is left on flash, and after a reboot nothing comes back
    assert all(k * 720 <= now_m for k in m.journal.keys(REC_HALF))
    rig2 = MeterRig(flash=NorFlash(sectors=64, image=flash.image()),
                    start_s=rig.clock.wall_seconds())
    m2 = rig2.meter
    assert m2.capture.high_water == now_m
    assert {b: m2.store.history_count(b, FWD) for b in served} == served
    rig2.seconds(61)
    assert m2.capture.ring.slot(now_m + 1) >= 0


def test_a_future_key_takes_the_place_of_the_oldest_and_a_drop_gives_it_back():
    keep = 204
    dev = NorFlash(sectors=64)
    j = J.Journal(dev, 0, 64, Hmac(KEY), {REC_HALF: keep})
    j.mount()
    n = 10_000
    for k in range(n - keep + 1, n + 1):  # 102 days of 12-hour blocks
        j.append(REC_HALF, b"real%d" % k, key=k)
        while j.compact_step():
            pass
    future = n + 7305  # ten years ahead: the same key % keep as a block in mid-window
    j.append(REC_HALF, b"future", key=future)
    assert j.keys(REC_HALF) == list(range(n - keep + 2, n + 1)) + [future]
    j.append(REC_HALF, None, key=future)  # the correction drops it
    j.append(REC_HALF, b"real%d" % (n + 1), key=n + 1)
    want = list(range(n - keep + 2, n + 2))
    assert j.keys(REC_HALF) == want
    j2 = J.Journal(NorFlash(64, dev.image()), 0, 64, Hmac(KEY), {REC_HALF: keep})
    j2.mount()
    assert j2.keys(REC_HALF) == want and j2.latest(REC_HALF, future) is None
    assert j2.latest(REC_HALF, n) == b"real%d" % n


def test_a_sim_restart_with_an_earlier_start_is_a_forced_clock_command(tmp_path):
    import subprocess
    import sys

    from paths import ROOT

    sim = [sys.executable, ROOT + "/tools/sim.py", "--speed", "0", "--broute", "off",
           "--flash", str(tmp_path / "flash.bin"), "--key", str(tmp_path / "meter.key")]
    ahead = subprocess.run(sim + ["--start", "2036-03-01T06:00", "--duration", "2h"],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert ahead.returncode == 0, ahead.stderr
    back = subprocess.run(sim + ["--start", "2026-03-01T08:00", "--duration", "3m"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert back.returncode == 0, back.stderr
    # capture resumed at once at the corrected time: a line per captured minute
    minutes = [ln[:16] for ln in back.stdout.splitlines() if ln.startswith("2026-03-01 08:0")]
    assert minutes[:3] == ["2026-03-01 08:00", "2026-03-01 08:01", "2026-03-01 08:02"]
    assert not any(ln.startswith("2036-") for ln in back.stdout.splitlines())
