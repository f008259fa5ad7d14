"""Minute-boundary race: between the wall minute change and the tick that captures it, the
meter object answers as at the previous minute, so no read sees a boundary before it is
captured and no served value changes."""

from meter.broute.echonet.meter_object import SmartMeter
from meter.broute.echonet.node import Identity
from hosthal.flash import NorFlash
from rigs import MeterRig


def read(obj, rig, epc):
    now = rig.meter.now.read(rig.clock)
    obj.at(now.minute, now.second, now.valid)
    buf = bytearray(256)
    return bytes(buf[:obj.read(epc, buf, 0)])


def test_a_read_landing_before_the_tick_of_a_new_minute_never_sees_it_missing():
    rig = MeterRig(flash=NorFlash(sectors=64))
    m = rig.meter
    obj = SmartMeter(m.regs, m.metering, m.capture, Identity(serial=b"TEST00010000"),
                     m.store.history_count)
    rig.seconds(125)
    rig.seconds(60 - rig.clock.wall_second())  # ticks up to hh:mm:59; now hh:mm+1:00
    minute = rig.clock.wall_minute()
    assert m.capture.high_water == minute - 1
    before = {epc: read(obj, rig, epc) for epc in (0x97, 0xEE, 0xD0, 0xE2)}
    assert before[0x97][1] == (minute - 1) % 60  # the minute whose boundary is captured
    assert before[0xEE][7:11] != b"\xff\xff\xff\xfe"  # EE's first value: a real one
    m.step()  # the tick of the new minute: its boundary is captured
    after_ee = read(obj, rig, 0xEE)
    assert read(obj, rig, 0x97)[1] == minute % 60
    # every value served before the tick is served unchanged after it (EE moved one on)
    assert after_ee[7 + 8:] == before[0xEE][7:-8]
    assert after_ee[7:11] != b"\xff\xff\xff\xfe"


def test_once_the_capture_window_closed_a_boundary_not_captured_is_missing():
    rig = MeterRig(flash=NorFlash(sectors=64))
    m = rig.meter
    obj = SmartMeter(m.regs, m.metering, m.capture, Identity(serial=b"TEST00010000"),
                     m.store.history_count)
    rig.seconds(125)
    rig.seconds(60 - rig.clock.wall_second())
    rig.clock.advance(5000)  # ticks stalled for 5 s past the minute: window closed
    minute = rig.clock.wall_minute()
    ee = read(obj, rig, 0xEE)
    assert read(obj, rig, 0x97)[1] == minute % 60 and ee[7:11] == b"\xff\xff\xff\xfe"
    m.step()  # the late tick marks it missing: the value served stays the same
    assert read(obj, rig, 0xEE) == ee
