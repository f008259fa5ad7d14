# scenario-runner: test_wasm32.py (a 31-bit port is the point: run by the wasm32 MicroPython)
# Small ints at any date to 2099, proven on a 31-bit port (the ESP32's: values >= 2**30 are
# heap-allocated long ints): the product meter, built by meter.assembly.build_meter with the
# host clock at 2034-01-10 (the seconds since 2000 pass 2**30 that day), 2050-06-01 and
# 2099-12-31 23:00, runs under micropython.heap_lock(): an hour of metering seconds (minute,
# 5- and 30-minute rollovers, the monotonic ms wrapping at 2**30), ECHONET Lite Gets of the
# time-stamped properties every 7 s, and a Last Gasp outage (debounce, radios off, restore).
# Under the lock a long int is a MemoryError: none may appear. The outage's alarm poll
# allocates (the HMAC seal) and runs unlocked: it must allocate no more at a late date than
# at the first one (a long int would add its bytes).

import gc
import micropython

from meter import caltime
from meter.assembly import build_meter
from meter.metering.frontends.simulated import SimulatedHousehold
from meter.metering.intervals import FIVE, HALF_HOUR, MINUTE
from meter.outage.lastgasp import DOWN, FAST, HOLDING, IDLE, PENDING, SLEEP, UP
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.pins import FakeRelay, ScriptedPowerGood
from hosthal.radio import MASTER, MemoryModule
from hosthal.uplink import FakeUplink

TICKS_MASK = (1 << 30) - 1  # ticks_ms() wraps at 2**30 (a small int itself)
DATES = ((2034, 1, 10, 0, 0), (2050, 6, 1, 12, 0), (2099, 12, 31, 23, 0))
GET_RES = 0x72


class Config:
    METER_ID = b"MPY02099"
    LASTGASP = {}
    HOLDUP_BUDGET_MS = 4000


def get_frame(tid, epcs):
    """An ECHONET Lite Get (ESV 0x62) from a HEMS controller to the smart meter object."""
    out = bytearray((0x10, 0x81, tid >> 8, tid & 0xFF, 0x05, 0xFF, 0x01, 0x02, 0x88, 0x01, 0x62,
                     len(epcs)))
    for epc in epcs:
        out.append(epc)
        out.append(0)
    return out


# cumulative energy, power, currents, the fixed-time stamped readings (EA/EB: date and time),
# the half-hour history (E2) and the time-stamped series of the last 10 minutes (EE)
REQ = get_frame(0x2099, (0xE0, 0xE3, 0xE7, 0xE8, 0xEA, 0xEB, 0xE2))
RX = bytearray(256)
RX[:len(REQ)] = REQ
N_REQ = len(REQ)


def build(date):
    minute = caltime.to_minute(*date)
    assert 0 < minute < TICKS_MASK  # minutes since 2000 stay small ints to year 4041
    clock = VirtualClock(ticks_start=TICKS_MASK - 1_800_000)  # wraps half an hour in
    clock.set_wall(minute, 0)
    pg = ScriptedPowerGood(1)
    hal = HostHal(clock, SimulatedHousehold(clock, seed=date[0]), power_good=pg,
                  uplink=FakeUplink(), radio=MemoryModule(MASTER), relay=FakeRelay(),
                  broute_key=MASTER)
    meter = build_meter(hal, Config(), key=b"k" * 32)
    meter.boot()
    for _ in range(90):  # lazily built state, the first captures
        meter.step()
        meter.serve()
        clock.advance(1000)
    assert meter.echonet is not None and meter.lastgasp is not None and meter.limiter is not None
    assert meter.echonet.handle(RX, N_REQ, meter.now) > 0  # warm: the reply path once
    return meter, clock, pg


def locked_hour(meter, clock):
    """3600 metering seconds and a Get every 7 s under heap_lock; returns (bits, gets)."""
    svc = meter.echonet
    bits = gets = 0
    micropython.heap_lock()
    try:
        for t in range(3600):
            bits |= meter.step()
            meter.power_poll()
            if t % 7 == 0:
                if svc.handle(RX, N_REQ, meter.now) > 0 and svc.tx.buf[10] == GET_RES:
                    gets += 1
            clock.advance(1000)
    finally:
        micropython.heap_unlock()
    return bits, gets


def outage(meter, clock, pg):
    """A Last Gasp outage: the locked phases, the alarm poll's allocation (bytes)."""
    lg = meter.lastgasp
    assert lg.state == UP
    pg.set(0)
    polls = 0
    micropython.heap_lock()
    try:
        assert meter.power_poll() == FAST  # the edge
        for _ in range(3):  # still debouncing (debounce_ms 20)
            clock.advance(5)
            assert meter.power_poll() == FAST
            polls += 1
        assert lg.state == PENDING
    finally:
        micropython.heap_unlock()
    clock.advance(5)
    a0 = gc.mem_alloc()
    assert meter.power_poll() == FAST  # debounce over: freeze, persist, the sealed alarm
    alarm_bytes = gc.mem_alloc() - a0
    assert lg.state == HOLDING, lg.state
    while meter.power_poll() != SLEEP:  # the repeats
        clock.advance(5)
    assert lg.state == DOWN
    micropython.heap_lock()
    try:
        for _ in range(200):  # radios off: every poll tells the shell to sleep, at once
            clock.advance(50)
            assert meter.power_poll() == SLEEP
            polls += 1
    finally:
        micropython.heap_unlock()
    clock.advance(60_000)  # a minute without mains
    pg.set(1)
    while meter.power_poll() != IDLE:  # mains back for restore_ms: the notice
        clock.advance(5)
    assert lg.state == UP and not meter.metering.frozen
    return alarm_bytes, polls


first_alarm = None
for date in DATES:
    meter, clock, pg = build(date)
    bits, gets = locked_hour(meter, clock)
    assert bits & MINUTE and bits & FIVE and bits & HALF_HOUR, (date, bits)
    assert gets == 515, (date, gets)  # every Get answered with Get_Res
    alarm_bytes, polls = outage(meter, clock, pg)
    if first_alarm is None:
        first_alarm = alarm_bytes
    assert alarm_bytes == first_alarm, (date, alarm_bytes, first_alarm)
    bits, gets = locked_hour(meter, clock)  # after the outage: the same, still no long int
    assert bits & MINUTE and gets == 515, (date, bits, gets)
    assert meter.lastgasp.failures == 1 and len(meter.uplink.sent) >= 1
    print("%04d-%02d-%02d %02d:%02d to %04d-%02d-%02d %02d:%02d: 7200 locked seconds, 1030 Gets, "
          "%d locked outage polls, alarm poll %d B"
          % (date + caltime.ymdhm(clock.wall_minute()) + (polls, alarm_bytes)))
    meter = clock = pg = None
    gc.collect()
print("PASS")
