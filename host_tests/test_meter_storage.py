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
    # nothing rewritten to hide it: only blank slots were programmed (the tamper register)
    after = bytes(flash.mem)
    assert all(after[i] == image[i] for i in range(len(image)) if image[i] != 0xFF)
    assert rig.meter.events.count(ev.TAMPER_SEAL) >= 1
    assert rig.meter.store.tamper_pending() and rig.meter.store.tamper_count == 1


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


# ---- registers lost (issue 11 item 5) ------------------------------------------------------

def _without_registers(flash):
    """The journal of `flash` with every record but REC_REGISTERS, re-appended (sealed under
    the meter's key) on a blank flash: what a meter whose registers records were lost has."""
    from meter.storage.assembly import build_storage
    from meter.storage.records import FIRST_TYPE, LAST_TYPE, REC_REGISTERS
    from meter.mac import Hmac
    from rigs import KEY

    old = MeterRig(start_s=DAY0_S, flash=NorFlash(64, flash.image())).meter.journal
    out = NorFlash(64)
    j = build_storage(out, Hmac(KEY), *_parts()).journal
    j.mount()
    for t in range(FIRST_TYPE, LAST_TYPE + 1):
        if t != REC_REGISTERS:
            for key, p in old.records(t):
                j.append(t, bytes(p), key)
    return out


def _parts():
    from meter.assembly import Core

    c = Core(None)
    return c.regs, c.capture, c.events


def test_lost_register_records_are_rebuilt_from_history_and_served_as_not_valid():
    from meter.storage.store import FROM_SERIES

    flash = NorFlash(sectors=64)
    rig = boot(flash, DAY0_S + 6 * 3600, watts=2000)
    rig.seconds(2 * 3600 + 100)
    m = rig.meter
    newest = m.capture.ring.fwd[m.capture.ring.slot(m.capture.high_water)]
    lost = _without_registers(flash)
    new = boot(lost, rig.clock.wall_seconds() + 60, watts=2000)
    n = new.meter
    st = n.store
    assert not st.registers_valid and st.restored_from == FROM_SERIES
    assert n.events.newest(ev.REGISTERS_LOST)[4] == m.capture.high_water
    assert n.regs.count[FWD] == newest  # the newest captured value, never zero
    for k in range(8):  # no half-hour of history above the register
        h = st.history(m.capture.high_water // 30 * 30 - 30 * k)
        assert h == -1 or h[0] <= n.regs.count[FWD]
    new.seconds(120)
    again = boot(lost, new.clock.wall_seconds() + 5, watts=2000).meter
    assert not again.store.registers_valid  # the flag is persisted with the registers
    assert again.regs.count[FWD] >= n.regs.count[FWD] - 2000 * 60 // 360  # a power cut


# ---- the tamper register (issue 11 item 4) -------------------------------------------------

def _forge_oldest_record(flash):
    import binascii
    import struct
    mem = flash.mem
    off = next(a for a in range(256, len(mem), 256) if a % 4096 and mem[a:a + 2] == b"MJ")
    length = mem[off + 4]
    mem[off + 32] ^= 0x01
    struct.pack_into("<I", mem, off + 48 + length,
                     binascii.crc32(bytes(mem[off:off + 48 + length])))


def test_tamper_evidence_stays_pending_until_acknowledged_after_compaction_reclaimed_it():
    flash = NorFlash(sectors=32)
    rig = boot(flash, DAY0_S + 3600, watts=1000)
    rig.seconds(300)
    _forge_oldest_record(flash)
    t = rig.clock.wall_seconds()
    reports = []
    for _ in range(12):
        r = boot(flash, t + 5, watts=1000)
        reports.append(r.meter.mount_report.chain_ok())
        r.seconds(3600)
        t = r.clock.wall_seconds()
    st = r.meter.store
    assert not reports[0] and reports[-1]  # compaction reclaimed the forged record
    assert st.tamper_pending() and st.tamper_count == 1  # one finding, however often seen
    code, sector, seq, minute = st.tamper_first
    assert code == ev.TAMPER_SEAL and st.tamper_last == st.tamper_first
    assert st.ack_tamper(r.meter.now.read(r.clock)) is True
    n = boot(flash, r.clock.wall_seconds() + 5).meter
    assert not n.store.tamper_pending() and n.store.tamper_count == 1
    assert n.events.newest(ev.TAMPER_ACK) is not None


# ---- wear under a flapping supply (issue 11 item 10) ---------------------------------------

def test_a_flapping_supply_writes_a_commit_per_changed_value_not_per_outage():
    flash = NorFlash(sectors=32)
    rig = boot(flash, DAY0_S + 10 * 3600, watts=0, restore_ms=100)
    rig.seconds(30)
    st = rig.meter.store
    commits = st.commits
    for _ in range(400):  # 60 ms off, 250 ms on: 400 outages in ~2 minutes
        rig.mains(False)
        rig.ms(60)
        rig.mains(True)
        rig.ms(250)
    assert rig.meter.lastgasp.failures == 400
    assert st.commits - commits <= 6  # the minute commits and one Last Gasp commit each
    assert st.commits_skipped + st.commits_deferred >= 390


def test_a_last_gasp_commit_with_nothing_changed_writes_nothing():
    flash = NorFlash(sectors=64)
    rig = boot(flash, DAY0_S + 10 * 3600, watts=1000)
    rig.seconds(90)
    st = rig.meter.store
    assert st.commit_now() >= 0
    p = rig.meter.journal.programs
    assert st.commit_now() == -1 and rig.meter.journal.programs == p
    assert st.save_lastgasp(b"state") >= 0 and st.save_lastgasp(b"state") == -1
    assert rig.meter.journal.programs == p + 1


def test_a_flapping_supply_persists_the_last_gasp_state_a_minute_not_per_outage():
    # 400 outages in two minutes: 3 are alarmed (rate limit 3 in 10 minutes), each persisted;
    # the suppressed ones change only counters, which reach flash DEFER_MS later.
    from meter.outage.lastgasp import DEFER_MS
    flash = NorFlash(sectors=32)
    rig = boot(flash, DAY0_S + 10 * 3600, watts=1000, restore_ms=100)
    rig.seconds(30)
    st = rig.meter.store
    saved = []
    real = st.save_lastgasp
    st.save_lastgasp = lambda payload: saved.append(bytes(payload)) or real(payload)
    for _ in range(400):  # 60 ms off, 250 ms on
        rig.mains(False)
        rig.ms(60)
        rig.mains(True)
        rig.ms(250)
    lg = rig.meter.lastgasp
    assert lg.failures == 400 and lg.suppressed == 397
    assert len(saved) <= 3 * 3 + 2  # the alarmed outages, and at most a deferred save a minute
    rig.seconds(DEFER_MS // 1000 + 2)
    state = rig.meter.store.lastgasp_state()
    assert state == lg.state_bytes()  # every count is on flash a minute later
    new = boot(flash, rig.clock.wall_seconds() + 5)
    assert new.meter.lastgasp.failures == 400 and new.meter.lastgasp.suppressed == 397
