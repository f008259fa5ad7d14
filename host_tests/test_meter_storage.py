"""The composed meter on a journal: reboots keep everything, Last Gasp never erases."""

from meter import events as ev
from meter.outage.lastgasp import F_LONG, F_REBOOTED
from meter.metering.registers import FWD
from rigs import DAY0_S, MeterRig
from hosthal.flash import NorFlash
from hosthal.pins import FakeRelay


def boot(flash, start_s, **kw):
    """A meter booting on this flash image (the RAM state of any earlier one is gone)."""
    return MeterRig(start_s=start_s, flash=flash, **kw)


def test_registers_ring_and_history_survive_a_reboot_with_at_most_a_minute_lost():
    flash = NorFlash(sectors=64)
    rig = boot(flash, DAY0_S + 6 * 3600, watts=2000)
    rig.seconds(3 * 3600 + 25)  # to 09:00:25 without a Last Gasp
    m = rig.meter
    total = m.regs.total_joules(FWD)
    ring = [(k, m.capture.ring.fwd[m.capture.ring.slot(k)])
            for k in range(m.capture.high_water - 59, m.capture.high_water + 1)]
    # power lost with no warning; reboot 10 minutes later
    new = boot(flash, rig.clock.wall_seconds() + 600, watts=2000)
    n = new.meter
    assert n.mount_report.chain_ok()
    lost = total - n.regs.total_joules(FWD)
    assert 0 <= lost <= 2000 * 60  # at most one minute of energy
    assert [(k, n.capture.ring.fwd[n.capture.ring.slot(k)]) for k, _ in ring] == ring
    assert n.store.history(m.capture.high_water // 30 * 30) != -1
    new.seconds(120)
    assert n.regs.total_joules(FWD) > total - lost  # it runs on


def test_a_last_gasp_commit_loses_nothing_and_erases_nothing():
    flash = NorFlash(sectors=64)
    rig = boot(flash, DAY0_S + 8 * 3600 + 10, watts=1500)
    rig.seconds(1800)
    rig.mains(False)
    erases = flash.erases
    rig.ms(3000)
    m = rig.meter
    assert flash.erases == erases
    assert m.commits_now == 1 and m.lastgasp.state == 3  # DOWN
    total = m.regs.total_joules(FWD)
    new = boot(flash, rig.clock.wall_seconds() + 3600, watts=1500)
    assert new.meter.regs.total_joules(FWD) == total
    notices = new.alarms("restored")
    assert len(notices) == 1 and notices[0]["flags"] & F_REBOOTED
    assert 3590 <= notices[0]["duration_s"] <= 3610
    assert new.meter.events.count(ev.POWER_FAIL) == 1  # the event log survived too


def test_an_outage_during_compaction_stops_it_and_commits_without_erasing():
    flash = NorFlash(sectors=32)  # a small journal compacts often
    rig = boot(flash, DAY0_S, watts=800)
    while flash.erases == 0:
        rig.seconds(60)
    rig.seconds(1)
    before = flash.erases
    rig.mains(False)
    rig.ms(3000)
    assert flash.erases == before and not rig.meter.background
    total = rig.meter.regs.total_joules(FWD)
    new = boot(flash, rig.clock.wall_seconds() + 5)
    assert new.meter.regs.total_joules(FWD) == total
    assert new.meter.mount_report.chain_ok()


def test_an_outage_on_a_minute_boundary_keeps_the_boundary_once():
    flash = NorFlash(sectors=64)
    rig = boot(flash, DAY0_S + 12 * 3600 + 1, watts=1000)
    rig.seconds(59)  # the next step runs at 12:01:00
    m = rig.meter
    rig.seconds(1)  # boundary 12:01 captured and committed
    boundary = rig.clock.wall_minute()
    value = m.capture.ring.fwd[m.capture.ring.slot(boundary)]
    rig.mains(False)
    rig.ms(2000)
    new = boot(flash, rig.clock.wall_seconds() + 120)
    n = new.meter
    s = n.capture.ring.slot(boundary)
    assert s >= 0 and n.capture.ring.fwd[s] == value
    assert n.capture.high_water == boundary


def test_reservations_and_the_command_counter_survive_a_reboot():
    from headend import HeadEnd
    from rigs import KEY
    flash = NorFlash(sectors=64)
    rig = boot(flash, DAY0_S + 8 * 3600, relay=FakeRelay())
    rig.seconds(5)
    he = HeadEnd(b"TEST0001", KEY, 0)
    now = rig.clock.wall_minute()
    r = he.parse(rig.meter.command(he.create(7, now + 10, now + 70, 20, now + 5)))
    assert r.status == 0
    replay = he.create(8, now + 10, now + 70, 20, now + 5)
    assert he.parse(rig.meter.command(replay)).status == 0
    new = boot(flash, rig.clock.wall_seconds() + 30, relay=FakeRelay())
    n = new.meter
    assert n.limiter.table.find(7) >= 0 and n.limiter.table.find(8) >= 0
    # the counter survived: the same request is now a replay
    assert n.command(replay)[22] != 0


def test_an_on_demand_audit_reports_a_tampered_record_and_repairs_nothing():
    flash = NorFlash(sectors=64)
    rig = boot(flash, DAY0_S + 3600, watts=1000)
    rig.seconds(600)
    assert rig.meter.audit().chain_ok()
    # an attacker rewrites a payload byte of an early record and fixes up its CRC: the
    # CRC passes, the seal cannot
    import binascii
    import struct
    mem = flash.mem
    off = next(a for a in range(256, len(mem), 256)
               if a % 4096 and mem[a:a + 2] == b"MJ")  # the oldest record slot
    length = mem[off + 4]
    mem[off + 32] ^= 0x01  # a payload byte (header 32 bytes, then payload, seal 16, crc 4)
    crc = binascii.crc32(bytes(mem[off:off + 48 + length]))
    struct.pack_into("<I", mem, off + 48 + length, crc)
    image = bytes(mem)
    rep = rig.meter.audit()
    assert not rep.chain_ok()
    assert bytes(flash.mem) == image  # nothing rewritten to hide it
    assert rig.meter.events.count(ev.TAMPER_SEAL) >= 1


def test_a_fast_flapping_supply_never_wedges_the_journal_or_the_meter():
    flash = NorFlash(sectors=32)
    rig = boot(flash, DAY0_S + 10 * 3600, watts=1000, restore_ms=100)
    rig.seconds(30)
    for _ in range(400):  # 60 ms off, 250 ms on, for two minutes
        rig.mains(False)
        rig.ms(60)
        rig.mains(True)
        rig.ms(250)
    rig.ms(1000)
    m = rig.meter
    assert m.lastgasp.state == 0 and not m.metering.frozen and m.background  # UP, running
    before = m.regs.total_joules(FWD)
    rig.seconds(300)
    assert m.regs.total_joules(FWD) > before  # still counting
    assert m.lastgasp.failures == 400
    new = boot(flash, rig.clock.wall_seconds() + 5)
    assert new.meter.mount_report.chain_ok()
    new.seconds(120)  # compaction and commits run on after the reboot
    assert new.meter.regs.total_joules(FWD) >= m.regs.total_joules(FWD) - 1000 * 60


def outage_until_the_capacitor_runs_out(flash, start_s=DAY0_S + 9 * 3600, **kw):
    rig = boot(flash, start_s, **kw)
    rig.seconds(30)
    rig.mains(False)
    rig.ms(3000)
    return rig


def test_a_reboot_while_mains_is_still_off_waits_for_mains_before_the_notice():
    flash = NorFlash(sectors=64)
    rig = outage_until_the_capacitor_runs_out(flash)
    new = MeterRig(start_s=rig.clock.wall_seconds() + 60, flash=flash, pg_level=0)
    lg = new.meter.lastgasp
    new.ms(2000)
    assert new.alarms() == [] and lg.failures == 1 and lg.outage_pending()
    new.mains(True)
    new.ms(400)
    notices = new.alarms("restored")
    assert len(notices) == 1 and notices[0]["flags"] & F_REBOOTED
    assert lg.failures == 1 and new.alarms("last_gasp") == []  # not counted twice


def test_the_restoration_notice_waits_for_the_uplink_even_across_a_reboot():
    flash = NorFlash(sectors=64)
    rig = outage_until_the_capacitor_runs_out(flash)
    new = boot(flash, rig.clock.wall_seconds() + 600, uplink_up=False)
    new.seconds(70)  # the notice is pending; a minute commit persists it
    assert new.meter.lastgasp.notice_pending and new.uplink.sent == []
    third = boot(flash, new.clock.wall_seconds() + 5, uplink_up=False)
    assert third.meter.lastgasp.notice_pending
    third.uplink.up = True
    third.seconds(2)
    notices = third.alarms("restored")
    assert len(notices) == 1 and 590 <= notices[0]["duration_s"] <= 610
    assert not third.meter.lastgasp.notice_pending


def test_after_a_reboot_with_an_invalid_clock_the_notice_waits_for_the_clock():
    flash = NorFlash(sectors=64)
    rig = outage_until_the_capacitor_runs_out(flash)
    down_at = rig.clock.wall_seconds()
    new = boot(flash, None)  # the RTC lost its time with the power
    new.seconds(30)
    assert new.alarms("restored") == []
    # the head-end sets the clock 30 s after the reboot, which came 1 h after the outage
    now = down_at + 3600 + 30
    new.meter.set_clock(now // 60, now % 60)
    new.seconds(2)
    n = new.alarms("restored")
    assert len(n) == 1 and n[0]["flags"] & F_LONG
    assert 3590 <= n[0]["duration_s"] <= 3610 and n[0]["long_failures"] == 1


def test_the_alarm_rate_limit_holds_across_reboots():
    flash = NorFlash(sectors=64)
    t = DAY0_S + 9 * 3600
    sent = 0
    for _ in range(6):  # six outages that each outlast the capacitor, a minute apart
        rig = boot(flash, t, rate_max=3, rate_window_min=10)
        rig.seconds(20)
        rig.mains(False)
        rig.ms(3000)
        sent += len({a["seq"] for a in rig.alarms("last_gasp")})
        t = rig.clock.wall_seconds() + 40
    assert sent == 3


def test_a_meter_with_a_relay_audits_its_journal_and_keeps_its_command_log():
    flash = NorFlash(sectors=64)
    rig = boot(flash, DAY0_S + 3600, relay=FakeRelay())
    rig.seconds(120)
    assert rig.meter.audit().chain_ok()
    assert rig.meter.command_log is rig.meter.commands.audit
