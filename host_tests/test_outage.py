"""The Last Gasp machine on its platform, driven directly: every row of the transition table in
meter/outage/lastgasp.py, with a fake store, a fake uplink and a real Metering."""

import time

import pytest

from headend_alarms import decode
from meter import events as ev
from meter.clock import Now
from meter.errors import SettingError
from meter.events import EventLog
from meter.mac import Hmac
from meter.metering.intervals import IntervalCapture
from meter.metering.registers import FWD, REV, EnergyRegisters
from meter.metering.samples import Metering
from meter.outage import lastgasp as L
from meter.outage.assembly import build_alarms, build_outage
from meter.outage.platform import LastGaspPlatform
from meter.outage.wire import MSG_LAST_GASP, MSG_RESTORED
from hosthal.uplink import FakeUplink

KEY = b"outage-test-key-0123456789abcdef"
MINUTE0 = 9_000 * 1440 + 8 * 60  # 08:00 on a day in 2024, wall minutes since 2000


class FakeStore:
    """What the platform uses of meter.storage.store.Store; can be made to fail."""

    def __init__(self, saved=None):
        self.commits = 0
        self.saves = []
        self.saved = saved
        self.fail = False

    def commit_now(self):
        if self.fail:
            raise OSError("E_FLASH")
        self.commits += 1

    def save_lastgasp(self, payload):
        if self.fail:
            raise OSError("E_FLASH")
        self.saved = bytes(payload)
        self.saves.append(self.saved)

    def lastgasp_state(self):
        return self.saved


class FakeBRoute:
    def __init__(self):
        self.calls = []

    def notify_power(self, kind):
        self.calls.append(("notify", kind))

    def suspend(self):
        self.calls.append(("suspend",))

    def resume(self):
        self.calls.append(("resume",))


class Outage:
    """One Last Gasp machine on a virtual time line (ms and a wall clock in seconds)."""

    def __init__(self, store=None, uplink_up=True, ms=0, wall_s=MINUTE0 * 60, valid=True,
                 budget_ms=4000, **settings):
        settings.setdefault("debounce_ms", 20)
        settings.setdefault("restore_ms", 200)
        settings.setdefault("repeats", 2)
        settings.setdefault("repeat_ms", 500)
        self.regs = EnergyRegisters(0x04, 1)
        self.regs.count[FWD] = 123_456
        self.regs.count[REV] = 789
        self.metering = Metering(self.regs, IntervalCapture(self.regs))
        self.events = EventLog(64)
        self.store = FakeStore() if store is None else store
        self.uplink = FakeUplink(uplink_up)
        self.broute = FakeBRoute()
        self.lg = build_outage(b"TEST0001", Hmac(KEY), self.events, self.regs, self.metering,
                               self.store, self.uplink, self.broute, budget_ms, settings)
        self.hold = self.lg.platform
        self.ms_now = ms
        self.wall_s = wall_s
        self.valid = valid
        self.now = Now()

    def at(self):
        return self.now.at(self.ms_now & 0x3FFF_FFFF, self.wall_s // 60, self.wall_s % 60,
                           self.valid)

    def poll(self, level):
        return self.lg.poll(self.at(), level)

    def run(self, level, ms, step=L.FAST_MS):
        """Poll every `step` ms for `ms` ms at one level; returns the actions seen, in order,
        without repeats."""
        seen = []
        for _ in range(0, ms, step):
            a = self.poll(level)
            if not seen or seen[-1] != a:
                seen.append(a)
            self.advance(step)
        return seen

    def advance(self, ms):
        before = self.ms_now // 1000
        self.ms_now += ms
        self.wall_s += self.ms_now // 1000 - before

    def boot(self, level):
        return self.lg.boot(self.at(), level)

    def messages(self, kind=None):
        out = [decode(p, KEY) for _, p in self.uplink.sent]
        return [m for m in out if kind is None or m["type"] == kind]

    def down(self):
        """An outage until the sequence is over (radios off)."""
        self.run(0, 3000)
        assert self.lg.state == L.DOWN


# ---- UP and PENDING ---------------------------------------------------------------------

def test_with_mains_present_poll_asks_for_nothing_but_the_1s_cadence():
    o = Outage()
    assert o.poll(1) == L.IDLE and o.lg.state == L.UP
    assert o.uplink.sent == [] and o.store.saves == []


def test_a_falling_edge_starts_the_debounce_and_asks_for_fast_polls():
    o = Outage()
    assert o.poll(0) == L.FAST and o.lg.state == L.PENDING
    assert o.hold.commits_now == 0 and not o.metering.frozen


def test_a_dip_shorter_than_the_debounce_is_counted_and_raises_nothing():
    o = Outage()
    assert o.run(0, 15) == [L.FAST]
    assert o.poll(1) == L.IDLE and o.lg.state == L.UP
    assert o.lg.dips == 1 and o.lg.failures == 0 and o.uplink.sent == []
    assert o.events.count(ev.POWER_FAIL) == 0 and o.hold.background


def test_after_the_debounce_the_sequence_freezes_commits_persists_and_sends_the_alarm():
    o = Outage()
    start = (o.wall_s // 60, o.wall_s % 60)
    o.run(0, 20)
    assert o.poll(0) == L.FAST and o.lg.state == L.HOLDING
    h = o.hold
    assert o.metering.frozen and not h.background and h.radios
    assert h.commits_now == 1 and o.store.commits == 1 and len(o.store.saves) == 1
    assert o.events.count(ev.POWER_FAIL) == 1 and o.lg.failures == 1
    assert o.lg.outage_pending() and o.lg.edge_to_alarm_ms == 0
    (a,) = o.messages("last_gasp")
    assert (a["start_minute"], a["start_second"]) == start
    assert a["e0"] == 123_456 and a["e3"] == 789 and a["unit"] == 0x04
    assert a["repeat"] == 0 and a["flags"] & L.F_CLOCK_VALID
    assert o.broute.calls == [("notify", MSG_LAST_GASP)]


def test_with_no_debounce_the_edge_itself_runs_the_sequence():
    o = Outage(debounce_ms=0)
    assert o.poll(0) == L.FAST and o.lg.state == L.HOLDING
    assert len(o.messages("last_gasp")) == 1


# ---- HOLDING and DOWN -------------------------------------------------------------------

def test_the_alarm_repeats_then_the_radios_go_off_and_poll_says_sleep():
    o = Outage(repeats=2, repeat_ms=500)
    seen = o.run(0, 3000)
    assert seen == [L.FAST, L.SLEEP]
    assert [a["repeat"] for a in o.messages("last_gasp")] == [0, 1, 2]
    assert {a["seq"] for a in o.messages("last_gasp")} == {0}
    assert o.lg.state == L.DOWN and not o.hold.radios
    assert o.broute.calls[-1] == ("suspend",)
    assert 1000 <= o.lg.last_sequence_ms < 2000  # persisted with the radios going off
    saved = o.store.saved
    fresh = Outage()
    fresh.lg.restore(saved)
    assert fresh.lg.last_sequence_ms == o.lg.last_sequence_ms and fresh.lg.outage_pending()


def test_repeats_stop_when_the_budget_is_spent():
    o = Outage(repeats=10, repeat_ms=500, budget_ms=1200)
    o.run(0, 5000)
    assert len(o.messages("last_gasp")) == 2  # at 0 ms and 500 ms; 1000 + 500 > 1200
    assert o.lg.state == L.DOWN


def test_down_poll_returns_sleep_at_once_and_never_blocks():
    o = Outage()
    o.down()
    assert not hasattr(o.hold, "sleep")  # sleeping is the shell's job
    t0 = time.monotonic()
    actions = [o.poll(0) for _ in range(1000)]
    assert time.monotonic() - t0 < 1.0
    assert set(actions) == {L.SLEEP} and o.lg.state == L.DOWN


def test_mains_back_mid_sequence_pauses_the_repeats_until_it_stays():
    o = Outage(repeats=5, repeat_ms=100, restore_ms=200)
    o.run(0, 25)
    assert len(o.messages("last_gasp")) == 1
    assert o.run(1, 150) == [L.FAST]  # high, but not yet for restore_ms
    assert o.lg.state == L.HOLDING and len(o.messages("last_gasp")) == 1  # paused
    o.run(0, 5)  # it drops again: the repeats go on, the restore count starts over
    assert len(o.messages("last_gasp")) == 2
    o.run(1, 150)
    assert o.lg.state == L.HOLDING


def test_mains_back_in_holding_releases_the_meter_and_sends_the_notice():
    o = Outage()
    o.run(0, 300)
    seen = o.run(1, 300)
    assert seen == [L.FAST, L.IDLE] and o.lg.state == L.UP
    assert not o.metering.frozen and o.hold.background and o.hold.radios
    assert ("resume",) in o.broute.calls and o.broute.calls[-1] == ("notify", MSG_RESTORED)
    (n,) = o.messages("restored")
    assert n["failures"] == 1 and 0 < n["sequence_ms"] < 1000 and n["alarm_seq"] == 0
    assert n["seq"] == 1 and not n["flags"] & L.F_REBOOTED
    assert not o.lg.outage_pending() and not o.lg.notice_pending
    assert o.events.count(ev.POWER_RESTORED) == 1


def test_a_blip_in_down_wakes_the_shell_then_sends_it_back_to_sleep():
    o = Outage(restore_ms=200)
    o.down()
    assert o.run(1, 100) == [L.FAST]  # awake, counting restore_ms
    assert o.poll(0) == L.SLEEP and o.lg.state == L.DOWN  # sleep again
    assert o.messages("restored") == []
    assert o.run(1, 300) == [L.FAST, L.IDLE] and o.lg.state == L.UP
    assert len(o.messages("restored")) == 1 and o.hold.radios


def test_a_rate_limited_outage_sends_nothing_and_goes_down_at_once():
    o = Outage(rate_max=1, rate_window_min=10, restore_ms=100)
    o.run(0, 100)
    o.run(1, 200)
    assert len(o.messages("last_gasp")) == 1
    o.run(0, 20)
    assert o.poll(0) == L.SLEEP and o.lg.state == L.DOWN  # no alarm: radios off
    assert o.lg.suppressed == 1 and len(o.messages("last_gasp")) == 1
    o.run(1, 200)
    assert o.lg.state == L.UP and len(o.messages("restored")) == 1  # no notice either
    assert o.events.count(ev.POWER_RESTORED) == 2


def test_the_rate_limit_is_kept_across_a_reboot():
    o = Outage(rate_max=2, rate_window_min=10, restore_ms=100)
    for _ in range(2):
        o.run(0, 100)
        o.run(1, 200)
        o.advance(20_000)
    new = Outage(store=FakeStore(o.store.saved), wall_s=o.wall_s + 60, rate_max=2,
                 rate_window_min=10)
    assert new.lg.recover(new.at())
    new.run(0, 100)
    assert new.messages("last_gasp") == [] and new.lg.suppressed == 1


def test_with_the_clock_invalid_the_rate_limit_counts_monotonic_time():
    o = Outage(valid=False, rate_max=1, rate_window_min=1, restore_ms=100)
    o.run(0, 100)
    o.run(1, 200)
    o.run(0, 100)
    o.run(1, 200)
    assert len(o.messages("last_gasp")) == 1
    o.advance(61_000)
    o.run(0, 100)
    assert len(o.messages("last_gasp")) == 2
    assert o.messages("last_gasp")[0]["flags"] & L.F_CLOCK_VALID == 0


# ---- boot, REBOOTED, WAIT_CLOCK -----------------------------------------------------------

def outage_saved(**kw):
    """The persisted state of a meter whose hold-up ran out inside an outage."""
    o = Outage(**kw)
    o.down()
    return o, o.store.saved


def test_boot_without_a_persisted_outage_does_nothing():
    o = Outage()
    assert not o.boot(1) and o.lg.state == L.UP and o.uplink.sent == []


def test_boot_with_mains_back_and_a_valid_clock_sends_the_notice_at_once():
    old, saved = outage_saved()
    new = Outage(store=FakeStore(saved), wall_s=old.wall_s + 600)
    assert new.lg.recover(new.at()) and new.lg.outage_pending()
    assert new.boot(1) and new.lg.state == L.UP
    (n,) = new.messages("restored")
    assert n["flags"] & L.F_REBOOTED and n["flags"] & L.F_END_VALID and n["flags"] & L.F_LONG
    assert 595 <= n["duration_s"] <= 605 and n["long_failures"] == 1 and n["failures"] == 1
    assert ("resume",) not in new.broute.calls  # nothing was held in this run
    assert not new.lg.outage_pending() and new.events.count(ev.LONG_POWER_FAIL) == 1


def test_a_reboot_with_mains_still_off_sleeps_until_mains_stays_back():
    old, saved = outage_saved()
    new = Outage(store=FakeStore(saved), wall_s=old.wall_s + 60)
    new.lg.recover(new.at())
    assert new.boot(0) and new.lg.state == L.REBOOTED
    assert new.run(0, 100) == [L.SLEEP]
    assert new.run(1, 100) == [L.FAST]  # a blip
    assert new.poll(0) == L.SLEEP and new.lg.state == L.REBOOTED
    assert new.run(1, 300) == [L.FAST, L.IDLE] and new.lg.state == L.UP
    (n,) = new.messages("restored")
    assert n["flags"] & L.F_REBOOTED and new.lg.failures == 1
    assert new.messages("last_gasp") == []  # not counted twice


def test_a_reboot_without_a_clock_waits_for_it_and_back_dates_the_end():
    old, saved = outage_saved()
    new = Outage(store=FakeStore(saved), wall_s=old.wall_s + 3600, valid=False)
    new.lg.recover(new.at())
    new.boot(1)
    assert new.lg.state == L.WAIT_CLOCK and new.poll(1) == L.IDLE
    new.run(1, 30_000, step=1000)
    assert new.messages("restored") == [] and new.lg.state == L.WAIT_CLOCK
    new.valid = True  # the head-end sets the clock 30 s after the reboot
    assert new.poll(1) == L.IDLE and new.lg.state == L.UP
    (n,) = new.messages("restored")
    assert n["flags"] & L.F_END_VALID and n["flags"] & L.F_LONG
    assert 3595 <= n["duration_s"] <= 3605  # the end is when mains came back, not now


def test_without_a_clock_for_clock_wait_ms_the_notice_goes_without_an_end():
    old, saved = outage_saved()
    new = Outage(store=FakeStore(saved), wall_s=old.wall_s + 600, valid=False)
    new.lg.recover(new.at())
    new.boot(1)
    new.advance(L.CLOCK_WAIT_MS - 1000)
    new.poll(1)
    assert new.lg.state == L.WAIT_CLOCK
    new.advance(1000)
    assert new.poll(1) == L.IDLE and new.lg.state == L.UP
    (n,) = new.messages("restored")
    assert n["flags"] & L.F_REBOOTED and not n["flags"] & L.F_END_VALID
    assert n["duration_s"] == 0 and n["end_minute"] == 0


def test_a_new_power_failure_while_waiting_for_the_clock_sends_the_old_notice_first():
    old, saved = outage_saved()
    new = Outage(store=FakeStore(saved), wall_s=old.wall_s + 600, valid=False)
    new.lg.recover(new.at())
    new.boot(1)
    assert new.poll(0) == L.FAST and new.lg.state == L.PENDING
    (n,) = new.messages("restored")
    assert n["flags"] & L.F_REBOOTED and not n["flags"] & L.F_END_VALID
    new.run(0, 25)
    assert new.lg.state == L.HOLDING and new.lg.failures == 2
    assert new.messages("last_gasp")[0]["seq"] == n["seq"] + 1


# ---- the restoration notice and the uplink ---------------------------------------------------

def test_the_notice_stays_pending_and_persisted_until_the_uplink_takes_it():
    o = Outage(uplink_up=False)
    o.run(0, 3000)
    o.run(1, 300)
    assert o.lg.state == L.UP and o.lg.notice_pending and o.uplink.sent == []
    fresh = Outage(store=FakeStore(o.store.saved))
    fresh.lg.recover(fresh.at())
    assert fresh.lg.notice_pending  # a reboot keeps it
    o.uplink.up = True
    assert o.poll(1) == L.IDLE and not o.lg.notice_pending
    (n,) = o.messages("restored")
    assert n["flags"] & L.F_ALARM_LOST and n["alarm_seq"] == 0
    assert len(o.store.saved) == len(o.lg.state_bytes())
    fresh2 = Outage(store=FakeStore(o.store.saved))
    fresh2.lg.recover(fresh2.at())
    assert not fresh2.lg.notice_pending


def test_a_pending_notice_goes_out_while_waiting_for_the_clock_too():
    o = Outage(uplink_up=False)
    o.run(0, 3000)
    o.run(1, 300)  # notice 1 pending
    o.run(0, 3000)  # outage 2: the hold-up runs out
    saved = o.store.saved
    new = Outage(store=FakeStore(saved), valid=False)
    new.lg.recover(new.at())
    assert new.lg.notice_pending and new.lg.outage_pending()
    new.boot(1)
    assert new.lg.state == L.WAIT_CLOCK and new.uplink.sent == []
    assert new.poll(1) == L.IDLE
    (n,) = new.messages("restored")
    assert n["failures"] == 1  # notice 1, sent while outage 2 waits for the clock
    assert new.lg.state == L.WAIT_CLOCK and not new.lg.notice_pending


# ---- the platform ------------------------------------------------------------------------

def test_store_faults_are_counted_and_the_alarm_still_goes_out():
    store = FakeStore()
    store.fail = True
    o = Outage(store=store)
    o.run(0, 30)
    assert o.hold.commits_now == 1 and o.hold.commit_failures == 2  # commit + state save
    assert len(o.messages("last_gasp")) == 1


def test_a_platform_without_store_uplink_or_broute_still_runs_the_sequence():
    regs = EnergyRegisters()
    metering = Metering(regs, IntervalCapture(regs))
    lg = build_outage(b"TEST0001", Hmac(KEY), EventLog(16), regs, metering, None, None, None,
                      4000, {})
    now = Now()
    t = 0
    while lg.poll(now.at(t, MINUTE0, 0, True), 0) != L.SLEEP:
        t += 5
    assert lg.platform.commits_now == 1 and metering.frozen and not lg.platform.radios
    assert lg.platform.saved_state() is None
    while lg.poll(now.at(t, MINUTE0, 10, True), 1) != L.IDLE:
        t += 5
    assert lg.notice_pending  # nowhere to send it


def test_the_platform_reads_the_registers_the_alarm_carries():
    regs = EnergyRegisters(0x01, 10)
    regs.count[FWD] = 42
    regs.count[REV] = 7
    p = LastGaspPlatform(Metering(regs, IntervalCapture(regs)), regs)
    assert (p.e0(), p.e3(), p.unit, p.coefficient) == (42, 7, 0x01, 10)
    assert p.background and p.radios and p.commits_now == 0 and p.commit_failures == 0


def test_an_outage_across_the_ticks_wrap_still_ends_and_releases():
    o = Outage(ms=(1 << 30) - 500, restore_ms=200)  # the sequence starts before the wrap
    o.run(0, 700)
    assert o.lg.state == L.HOLDING
    o.run(1, 1500)  # crosses the wrap
    assert o.at().ms < 10_000
    assert o.lg.state == L.UP and not o.metering.frozen
    (n,) = o.messages("restored")
    assert 0 < n["sequence_ms"] < 3000


# ---- persistence -------------------------------------------------------------------------

def test_recover_logs_a_malformed_record_and_keeps_state():
    o = Outage(store=FakeStore(b"\x01\x02"))
    o.lg.failures = 4
    assert not o.lg.recover(o.at())
    assert o.lg.failures == 4 and o.events.count(ev.JOURNAL_CORRUPT) == 1
    with pytest.raises(ValueError, match="E_LASTGASP_RECORD"):
        o.lg.restore(b"\x01\x02")


def test_state_bytes_round_trip_through_restore():
    o = Outage(uplink_up=False)
    o.run(0, 3000)
    o.run(1, 300)
    b = o.lg.state_bytes()
    assert isinstance(b, bytes)
    fresh = Outage()
    fresh.lg.restore(b)
    assert fresh.lg.state_bytes() == b
    assert (fresh.lg.seq, fresh.lg.failures) == (o.lg.seq, o.lg.failures)


# ---- assembly ------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [{"debounce_ms": -1}, {"repeat_ms": 0},
                                      {"rate_max": L.RATE_SLOTS + 1}, {"rate_window_min": 0},
                                      {"restore_ms": 2.5}, {"no_such_setting": 1}])
def test_invalid_settings_are_rejected_with_a_code(settings):
    regs = EnergyRegisters()
    with pytest.raises(SettingError, match="E_LASTGASP_SETTING"):
        build_outage(b"TEST0001", Hmac(KEY), EventLog(8), regs,
                     Metering(regs, IntervalCapture(regs)), None, None, None, 4000, settings)


def test_a_meter_id_that_is_not_8_bytes_is_rejected():
    regs = EnergyRegisters()
    with pytest.raises(SettingError, match="E_METER_ID"):
        build_outage(b"SHORT", Hmac(KEY), EventLog(8), regs,
                     Metering(regs, IntervalCapture(regs)), None, None, None, 4000, {})
    with pytest.raises(SettingError, match="E_METER_ID"):
        build_alarms(b"SHORT", Hmac(KEY))


def test_the_alarm_sender_stamps_with_now_and_counts_what_the_uplink_refused():
    sender = build_alarms(b"TEST0001", Hmac(KEY))
    up = FakeUplink()
    assert sender.send(up, ev.BREAKER_FAULT, Now().at(0, MINUTE0, 17, True), 1, 0)
    up.up = False
    assert not sender.send(up, ev.BREAKER_FAULT, Now().at(0, MINUTE0, 18, False), 0, 1)
    assert not sender.send(None, ev.BREAKER_FAULT, Now().at(0, MINUTE0, 19, True))
    assert (sender.seq, sender.sent, sender.lost) == (3, 1, 2)
    (a,) = [decode(p, KEY) for _, p in up.sent]
    assert (a["code"], a["minute"], a["second"], a["a"], a["b"]) == \
        (ev.BREAKER_FAULT, MINUTE0, 17, 1, 0)
    sender.send(FakeUplink(), ev.BREAKER_FAULT, Now().at(0, MINUTE0, 18, False))
    assert decode(bytes(sender.buf), KEY)["minute"] == -1  # stamped while the clock is invalid
