"""The composed meter: metering, limiter and signed commands run together in Meter.step()."""

from headend import HeadEnd
from meter import events as ev
from meter.control import status
from meter.metering.registers import FWD
from rigs import KEY, MeterRig
from hosthal.pins import FakeRelay
from hosthal.radio import MASTER, MemoryModule
from hosthal.flash import NorFlash


def rig_with_relay(watts, contract=30):
    # a flash for the journal: a meter that keeps nothing refuses every command (its
    # counter cannot be made durable: meter.control.command fails closed)
    rig = MeterRig(watts=watts, flash=NorFlash(64))
    rig.hal.relay = FakeRelay(closed=True)
    rig.config.CONTRACT_LIMIT_A = contract
    from meter.assembly import build_meter
    rig.meter = build_meter(rig.hal, rig.config, key=KEY)
    rig.meter.boot()
    return rig


def test_a_load_above_the_contract_limit_trips_the_breaker_through_the_meter_loop():
    rig = rig_with_relay(watts=3500, contract=30)  # 34.7 A at 100.8 V
    rig.seconds(2)
    assert rig.hal.relay.sensed()
    rig.seconds(4)
    assert not rig.hal.relay.sensed()
    assert rig.meter.events.count(ev.BREAKER_OPEN) == 1


def test_a_load_within_the_limit_never_trips():
    rig = rig_with_relay(watts=2500, contract=30)
    rig.seconds(120)
    assert rig.hal.relay.sensed() and rig.meter.events.count(ev.BREAKER_OPEN) == 0
    assert rig.meter.regs.count[FWD] > 0


def test_signed_commands_reach_the_limiter_and_forged_ones_change_nothing():
    rig = rig_with_relay(watts=500, contract=30)
    rig.seconds(5)
    he = HeadEnd(b"TEST0001", KEY, 0)
    minute = rig.clock.wall_minute()
    ok = he.parse(rig.meter.command(he.contract(40, expiry=minute + 5)))
    assert ok.status == status.OK
    assert rig.meter.limiter.contract == 40
    forged = HeadEnd(b"TEST0001", b"x" * 32, 10)
    raw = rig.meter.command(forged.contract(20, expiry=minute + 5))
    assert raw[22] == status.E_MAC and rig.meter.limiter.contract == 40
    assert rig.meter.events.count(ev.TAMPER_AUTH) == 1


def test_without_a_key_no_command_is_accepted():
    rig = MeterRig()
    rig.hal.relay = FakeRelay()
    from meter.assembly import build_meter
    m = build_meter(rig.hal, rig.config, key=None)
    m.boot()
    assert m.command(b"\x01" * 60) is None and m.limiter is not None


def test_an_overload_beyond_the_meter_rating_still_trips_the_breaker():
    # 14 kW at 100.8 V is about 139 A: above MAX_CURRENT_MA, so metering rejects every
    # sample; the limiter must still see the current and open.
    rig = rig_with_relay(watts=14_000, contract=30)
    rig.seconds(6)
    m = rig.meter
    assert sum(m.metering.rejected) >= 5
    assert not rig.hal.relay.sensed()
    assert m.events.count(ev.BREAKER_OPEN) == 1


def test_a_silent_front_end_makes_the_current_unknown_and_never_trips():
    rig = rig_with_relay(watts=3500, contract=30)
    rig.seconds(1)
    rig.load.mains = False  # the front end stops answering (no reading), relay stays
    rig.seconds(120)
    assert rig.hal.relay.sensed() and rig.meter.events.count(ev.BREAKER_OPEN) == 0


def test_a_rejected_sample_on_a_boundary_still_captures_the_boundary():
    rig = MeterRig(watts=1000)
    rig.seconds(59 - rig.clock.wall_second() + 1)  # to hh:mm:00 of the next minute
    m = rig.meter
    minute = rig.clock.wall_minute()
    assert rig.clock.wall_second() == 0
    before = m.regs.count[FWD]
    rig.load.watts = 90_000  # an absurd spike on the boundary tick: rejected
    rig.seconds(1)
    assert m.metering.rejected[1] == 1 and m.regs.count[FWD] == before
    s = m.capture.ring.slot(minute)
    assert s >= 0 and m.capture.ring.fwd[s] == before


def test_a_stuck_relay_raises_a_fault_event_and_a_sealed_alarm_on_the_uplink():
    from headend_alarms import ALARM, decode_alarm
    rig = rig_with_relay(watts=3500, contract=30)
    rig.hal.relay.stuck = True  # welded contacts: the trip command does not open them
    rig.seconds(8)
    m = rig.meter
    assert m.events.count(ev.BREAKER_FAULT) == 1
    sent = [decode_alarm(p, KEY) for t, p in rig.uplink.sent if p[0] == ALARM]
    assert len(sent) == 1
    a = sent[0]
    assert a["code"] == ev.BREAKER_FAULT and a["a"] == 0 and a["b"] == 1  # open vs closed
    assert a["meter_id"] == b"TEST0001"
    forged = bytearray(rig.uplink.sent[-1][1])
    forged[5] ^= 1
    try:
        decode_alarm(bytes(forged), KEY)
    except ValueError as e:
        assert e.args[0] == "E_MAC"
    else:
        raise AssertionError("forged alarm accepted")


def test_the_hems_hears_the_outage_and_the_restoration_over_the_b_route():
    radio = MemoryModule()
    rig = MeterRig()
    rig.hal.radio = radio
    rig.hal.broute_key = MASTER
    from meter.assembly import build_meter
    rig.meter = build_meter(rig.hal, rig.config, key=KEY)
    rig.meter.boot()
    rig._t0 = rig.clock.ticks_ms()
    for _ in range(3):
        rig.meter.serve()
        rig.seconds(1)
    assert radio.opened and any(f[0][12] == 0xD5 for f in radio.sent)  # instance list
    radio.sent.clear()
    rig.mains(False)
    rig.ms(3000)  # outage: 0x80 = 0x31 announced, then radios off
    assert not radio.opened
    status = [f[0][14] for f in radio.sent if f[0][12] == 0x80]
    assert status == [0x31]
    radio.sent.clear()
    rig.mains(True)
    rig.ms(400)
    rig.meter.serve()
    status = [f[0][14] for f in radio.sent if f[0][12] == 0x80]
    assert radio.opened and status == [0x30]  # operating again, told once the link is back
    assert any(f[0][12] == 0xD5 for f in radio.sent)
