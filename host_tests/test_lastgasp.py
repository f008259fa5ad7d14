"""Last Gasp on a whole meter: debounce, the alarm burst, restoration, flapping, the head-end's
view of the messages."""

import pytest

from headend_alarms import decode_outage
from meter import events as ev
from meter.clock import Now
from meter.errors import SettingError
from meter.outage.lastgasp import (DOWN, F_ALARM_LOST, F_CLOCK_VALID, F_END_VALID, F_LONG,
                                   F_REBOOTED, HOLDING, SLEEP, UP, LastGasp)
from meter.mac import Hmac
from meter.metering.registers import FWD
from rigs import KEY, MeterRig


def now_of(rig):
    return Now().read(rig.clock)


def test_a_dip_shorter_than_the_debounce_raises_nothing():
    rig = MeterRig()
    rig.seconds(10)
    rig.mains(False)
    rig.ms(15)
    rig.mains(True)
    rig.ms(100)
    lg = rig.meter.lastgasp
    assert lg.state == UP and lg.dips == 1 and lg.failures == 0
    assert rig.uplink.sent == [] and lg.platform.commits_now == 0
    assert rig.meter.events.count(ev.POWER_FAIL) == 0
    assert not rig.meter.metering.frozen


def test_a_real_outage_commits_once_and_sends_one_alarm_burst():
    rig = MeterRig(repeats=2, repeat_ms=500)
    rig.seconds(30)
    e0 = rig.meter.regs.count[FWD]
    start = rig.clock.wall_minute(), rig.clock.wall_second()
    rig.mains(False)
    rig.ms(30)
    m = rig.meter
    hold = m.lastgasp.platform
    assert hold.commits_now == 1 and m.metering.frozen and not hold.background
    assert m.events.count(ev.POWER_FAIL) == 1
    rig.ms(3000)
    alarms = rig.alarms("last_gasp")
    assert len(alarms) == 3  # the alarm and two repeats within the budget
    assert {a["seq"] for a in alarms} == {0}
    assert [a["repeat"] for a in alarms] == [0, 1, 2]
    a = alarms[0]
    assert a["meter_id"] == b"TEST0001" and a["e0"] == e0 and a["flags"] & F_CLOCK_VALID
    assert (a["start_minute"], a["start_second"]) == start  # 20 ms debounce, same second
    assert m.lastgasp.state == DOWN and not hold.radios
    assert m.lastgasp.poll(now_of(rig), 0) == SLEEP  # the shell sleeps, not the core
    assert hold.commits_now == 1
    assert all(len(p) <= 128 for _, p in rig.uplink.sent)


def test_repeats_stop_when_the_budget_is_spent():
    rig = MeterRig(repeats=10, repeat_ms=500)
    rig.meter.lastgasp.budget_ms = 1200
    rig.seconds(5)
    rig.mains(False)
    rig.ms(5000)
    assert len(rig.alarms("last_gasp")) == 2  # at 0 ms and 500 ms; 1000 + 500 > 1200
    assert rig.meter.lastgasp.state == DOWN


def test_power_back_mid_sequence_resumes_without_counting_twice():
    rig = MeterRig(watts=3600)
    rig.seconds(60)
    before = rig.meter.regs.total_joules(FWD)
    rig.mains(False)
    rig.ms(300)
    assert rig.meter.lastgasp.state == HOLDING
    rig.mains(True)
    rig.ms(300)
    m = rig.meter
    hold = m.lastgasp.platform
    assert m.lastgasp.state == UP and not m.metering.frozen and hold.background and hold.radios
    rest = rig.alarms("restored")
    assert len(rest) == 1 and rest[0]["failures"] == 1
    assert rest[0]["sequence_ms"] < 1000
    # the load was cut with mains: nothing counted while frozen, nothing counted twice
    assert m.regs.total_joules(FWD) == before
    rig.seconds(10)
    gained = m.regs.total_joules(FWD) - before
    assert 9 * 3600 <= gained <= 11 * 3600  # about ten seconds of load again
    assert m.events.count(ev.POWER_RESTORED) == 1


def test_with_the_uplink_down_the_alarm_goes_into_the_restoration_report():
    rig = MeterRig(uplink_up=False)
    rig.seconds(10)
    rig.mains(False)
    rig.ms(3000)
    assert rig.uplink.sent == []
    rig.uplink.up = True
    rig.mains(True)
    rig.ms(400)
    rest = rig.alarms("restored")
    assert len(rest) == 1 and rest[0]["flags"] & F_ALARM_LOST
    assert rest[0]["alarm_seq"] == 0


def test_a_flapping_supply_is_rate_limited():
    rig = MeterRig(rate_max=3, rate_window_min=10, restore_ms=100)
    rig.seconds(5)
    for _ in range(6):
        rig.mains(False)
        rig.ms(100)
        rig.mains(True)
        rig.ms(200)
        rig.seconds(20)
    lg = rig.meter.lastgasp
    assert lg.failures == 6 and lg.suppressed == 3
    assert len({a["seq"] for a in rig.alarms("last_gasp")}) == 3
    notices = rig.alarms("restored")
    assert len(notices) == 3
    # after the window, alarms flow again and report what was held back
    rig.seconds(600)
    rig.mains(False)
    rig.ms(100)
    rig.mains(True)
    rig.ms(200)
    assert rig.alarms("restored")[-1]["suppressed"] == 3
    assert lg.failures == 7


def test_an_outage_that_outlasts_the_capacitor_is_reported_after_reboot():
    rig = MeterRig()
    rig.seconds(10)
    rig.mains(False)
    rig.ms(3000)
    saved = rig.meter.lastgasp.state_bytes()  # what the journal holds at power loss
    # a new boot 10 minutes later
    fresh = MeterRig(start_s=rig.clock.wall_seconds() + 600)
    lg = fresh.meter.lastgasp
    lg.restore(saved)
    assert lg.outage_pending()
    assert lg.boot(now_of(fresh), 1)
    rest = fresh.alarms("restored")
    assert len(rest) == 1
    r = rest[0]
    assert r["flags"] & F_REBOOTED and r["flags"] & F_END_VALID and r["flags"] & F_LONG
    assert 590 <= r["duration_s"] <= 610 and r["long_failures"] == 1
    assert r["sequence_ms"] < 2000
    assert not lg.outage_pending()
    assert fresh.meter.events.count(ev.LONG_POWER_FAIL) == 1


def test_restore_rejects_a_malformed_record_and_keeps_state():
    rig = MeterRig()
    lg = rig.meter.lastgasp
    lg.failures = 4
    with pytest.raises(ValueError):
        lg.restore(b"\x01\x02")
    assert lg.failures == 4


def test_forged_or_truncated_messages_are_rejected_by_the_head_end():
    rig = MeterRig()
    rig.seconds(3)
    rig.mains(False)
    rig.ms(50)
    msg = bytearray(rig.uplink.sent[0][1])
    assert decode_outage(bytes(msg), KEY)["type"] == "last_gasp"
    with pytest.raises(ValueError, match="E_MAC"):
        decode_outage(bytes(msg), b"another key")
    msg[20] ^= 1
    with pytest.raises(ValueError, match="E_MAC"):
        decode_outage(bytes(msg), KEY)
    with pytest.raises(ValueError, match="E_LENGTH"):
        decode_outage(bytes(msg[:-1]), KEY)
    with pytest.raises(ValueError, match="E_TYPE"):
        decode_outage(b"\x09" + bytes(msg[1:]), KEY)


def test_settings_out_of_range_are_rejected():
    class Platform:
        pass
    with pytest.raises(SettingError, match="E_LASTGASP_SETTING"):
        LastGasp(Platform(), b"TEST0001", Hmac(KEY), None, 4000, debounce_ms=-1)
    with pytest.raises(SettingError, match="E_METER_ID"):
        LastGasp(Platform(), b"SHORT", Hmac(KEY), None, 4000)


def test_an_outage_across_the_ticks_wrap_still_ends_and_unfreezes():
    # ticks_ms() wraps at 2**30 on the board (every 12.4 days): start 3 s before it
    rig = MeterRig(ticks_start=(1 << 30) - 3000, restore_ms=200)
    rig.seconds(1)
    rig.mains(False)
    rig.ms(700)
    assert rig.meter.lastgasp.state == HOLDING
    rig.mains(True)
    rig.ms(1500)  # crosses the wrap
    assert rig.clock.ticks_ms() < 10_000
    m = rig.meter
    assert m.lastgasp.state == UP and not m.metering.frozen
    assert len(rig.alarms("restored")) == 1
    assert 0 < rig.alarms("restored")[0]["sequence_ms"] < 3000
