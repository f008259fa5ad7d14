"""Tamper evidence stands until an authenticated head-end acknowledges it: the ACK_TAMPER
command, the tamper flag of the status block, and the TAMPER_SEAL alarm the meter sends
to the uplink for each new finding (meter.control.command, meter.app; issue 11 item 4)."""

import binascii
import struct

from meter import events as ev
from meter.control import status as S
from meter.storage.persist import KIND_COUNTER
from hosthal.flash import NorFlash
from hosthal.pins import FakeRelay

import headend
from headend import HeadEnd, parse_status
from remote_rig import METER_ID, FakeTamper, Rig
from rigs import DAY0_S, KEY, MeterRig

TAMPER_FLAG = headend.STATUS_TAMPER


def test_an_authentic_ack_clears_standing_evidence_and_the_status_block_shows_it():
    t = FakeTamper(pending=True)
    r = Rig(tamper=t)
    assert parse_status(r.send(r.he.status(r.exp())).data).flags & TAMPER_FLAG
    resp = r.send(r.he.ack_tamper(r.exp()))
    assert resp.status == S.OK and not parse_status(resp.data).flags & TAMPER_FLAG
    assert t.acks == [r.minute()] and not t.pending()
    assert "TAMPER" not in headend.describe(resp)


def test_a_forged_or_replayed_ack_leaves_the_evidence_standing():
    t = FakeTamper(pending=True)
    r = Rig(tamper=t)
    forged = HeadEnd(METER_ID, b"z" * 32, 0)
    assert r.send(forged.ack_tamper(r.exp()), check_tag=False).status == S.E_MAC
    bent = bytearray(r.he.ack_tamper(r.exp()))
    bent[-1] ^= 1
    assert r.send(bytes(bent), check_tag=False).status == S.E_MAC
    assert t.pending() and t.acks == []
    assert len(r.events_of(ev.TAMPER_AUTH)) == 2
    ack = r.he.ack_tamper(r.exp())
    assert r.send(ack).status == S.OK
    t.standing = True  # a new finding after the acknowledgement
    assert r.send(ack).status == S.E_REPLAY and t.pending() and len(t.acks) == 1
    assert "TAMPER EVIDENCE STANDS" in headend.describe(r.send(r.he.status(r.exp())))


def test_an_ack_needs_a_valid_clock_and_a_durable_counter():
    t = FakeTamper(pending=True)
    r = Rig(tamper=t)
    r.clock.invalidate()
    assert r.send(r.he.ack_tamper(r.exp())).status == S.E_CLOCK
    r.clock.set_wall(r.clock.wall_minute(), 0)
    r.store.refuse(KIND_COUNTER)
    assert r.send(r.he.ack_tamper(r.exp())).status == S.E_NOT_DURABLE
    assert t.pending() and t.acks == []


def test_an_ack_the_register_cannot_persist_is_answered_not_durable():
    t = FakeTamper(pending=True)
    t.durable = False
    r = Rig(tamper=t)
    resp = r.send(r.he.ack_tamper(r.exp()))
    assert resp.status == S.E_NOT_DURABLE and resp.data == b""


def test_a_meter_without_a_tamper_register_answers_unsupported():
    r = Rig()
    assert r.send(r.he.ack_tamper(r.exp())).status == S.E_UNSUPPORTED
    assert r.proc.counter == 1  # authentic: consumed like any other
    assert not parse_status(r.send(r.he.status(r.exp())).data).flags & TAMPER_FLAG


# -- the whole meter: the store's tamper register, the command and the alarm -------------

def tamper_oldest_record(flash):
    """An attacker rewrites a payload byte of the oldest record and fixes its CRC: the
    CRC passes, the seal cannot."""
    mem = flash.mem
    off = next(a for a in range(256, len(mem), 256) if a % 4096 and mem[a:a + 2] == b"MJ")
    length = mem[off + 4]
    mem[off + 32] ^= 0x01
    struct.pack_into("<I", mem, off + 48 + length,
                     binascii.crc32(bytes(mem[off:off + 48 + length])))


def tamper_alarms(rig):
    from headend_alarms import ALARM, decode_alarm
    return [decode_alarm(p, KEY) for _, p in rig.uplink.sent
            if p[0] == ALARM and decode_alarm(p, KEY)["code"] == ev.TAMPER_SEAL]


def meter_with_relay(flash, start_s):
    """A whole meter (rigs.MeterRig, its own key rigs.KEY) booting on this flash."""
    return MeterRig(start_s=start_s, flash=flash, relay=FakeRelay(closed=True))


def test_a_finding_is_alarmed_once_stands_across_reboots_and_clears_only_by_an_ack():
    flash = NorFlash(64)
    rig = meter_with_relay(flash, DAY0_S + 3600)
    rig.seconds(300)
    assert tamper_alarms(rig) == []
    tamper_oldest_record(flash)
    assert not rig.meter.audit().chain_ok()
    rig.seconds(5)
    (alarm,) = tamper_alarms(rig)  # one alarm for the finding, not one a second
    assert alarm["meter_id"] == b"TEST0001"
    he = HeadEnd(b"TEST0001", KEY, 0)
    exp = rig.clock.wall_minute() + 5
    st = parse_status(he.parse(rig.meter.command(he.status(exp))).data)
    assert st.flags & TAMPER_FLAG
    # a reboot: the evidence still stands, and is alarmed again once
    rig2 = meter_with_relay(flash, rig.clock.wall_seconds() + 30)
    rig2.seconds(5)
    assert rig2.meter.store.tamper_pending() and len(tamper_alarms(rig2)) == 1
    forged = HeadEnd(b"TEST0001", b"f" * 32, 50)
    exp = rig2.clock.wall_minute() + 5
    assert rig2.meter.command(forged.ack_tamper(exp))[22] == S.E_MAC
    assert rig2.meter.store.tamper_pending()
    resp = he.parse(rig2.meter.command(he.ack_tamper(exp)))
    assert resp.status == S.OK and not parse_status(resp.data).flags & TAMPER_FLAG
    rig2.seconds(120)
    assert len(tamper_alarms(rig2)) == 1  # acknowledged: no more alarms
    rig3 = meter_with_relay(flash, rig2.clock.wall_seconds() + 30)
    rig3.seconds(5)
    assert not rig3.meter.store.tamper_pending() and tamper_alarms(rig3) == []


def test_a_tamper_alarm_the_uplink_refused_is_retried_a_minute_later_until_taken():
    flash = NorFlash(64)
    rig = meter_with_relay(flash, DAY0_S + 3600)
    rig.seconds(300)
    tamper_oldest_record(flash)
    rig.uplink.up = False
    rig.meter.audit()
    alarms = rig.meter.alarms
    lost = alarms.lost
    rig.seconds(30)
    assert alarms.lost == lost + 1 and tamper_alarms(rig) == []  # tried once, not each second
    rig.uplink.up = True
    rig.seconds(25)
    assert tamper_alarms(rig) == []  # the retry waits its minute
    rig.seconds(10)
    assert len(tamper_alarms(rig)) == 1 and alarms.lost == lost + 1
    rig.seconds(180)
    assert len(tamper_alarms(rig)) == 1
