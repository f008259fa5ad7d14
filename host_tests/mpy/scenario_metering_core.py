# Metering core under the MicroPython unix port: exact accounting, wrap, capture rules and
# an allocation-free tick and minute rollover proven with micropython.heap_lock().

import micropython

from meter.clock import Now
from meter.metering.registers import EnergyRegisters, FWD, REV, LAG, SettingError, MODULO
from meter.metering.intervals import (IntervalCapture, SeriesRing, CAPTURED, FIVE, HALF_HOUR,
                                      GAP, MISSING)
from meter.metering.samples import Metering, Sample, REJECTED

regs = EnergyRegisters(unit=0x02, coefficient=1)  # 0.01 kWh = 10 Wh = 36 000 J per count
cap = IntervalCapture(regs)
m = Metering(regs, cap)
s = Sample()
s.dt_ms = 1000
s.v_dv = 1010
s.p_w = 1234
s.i_ma = 12_300
s.e_fwd = 1234
now = Now()  # the one clock reading, refilled in place every tick

# one simulated day at 1 s ticks, 1234 W constant: 1234 * 86400 J
base = 9_000 * 1440  # midnight, day 9000 since 2000
for t in range(86_400):
    r = m.tick(s, now.at(t * 1000, base + t // 60, t % 60, True))
    assert not r & REJECTED
assert regs.total_joules(FWD) == 1234 * 86_400, regs.total_joules(FWD)
assert regs.count[FWD] == (1234 * 86_400) // 36_000
assert cap.ring.slot(base + 1439) >= 0 and cap.ring.slot(base + 1379) < 0

# capture of a 5-minute value with voltage average
i = cap.five.slot(base + 1435)
assert i >= 0 and cap.five.volt[i] == 1010
assert cap.half.slot(base + 1410) >= 0

# a forward jump leaves the skipped minutes missing and the late boundary missing too
r = m.tick(s, now.at(0, base + 1445, 30, True))
assert r & GAP and not (r & CAPTURED)
for k in range(1440, 1446):
    assert cap.ring.slot(base + k) == MISSING

# rejection changes nothing
before = regs.count[FWD], regs.rem_dwh[FWD], regs.rem_j[FWD]
s.e_fwd = -5
assert m.tick(s, now.at(0, base + 1446, 0, True)) & REJECTED
assert (regs.count[FWD], regs.rem_dwh[FWD], regs.rem_j[FWD]) == before
s.e_fwd = 1234

# settings
for bad in ((0x05, 1), (0x02, 0), (0x02, 1_000_000), (0x0D, 100)):
    try:
        EnergyRegisters(*bad)
        raise AssertionError("accepted %r" % (bad,))
    except SettingError:
        pass

# 8-digit wrap
w = EnergyRegisters(unit=0x04, coefficient=1)  # 0.1 Wh = 360 J per count
w.restore(FWD, MODULO - 1, 0, 359)
w.add(FWD, 1)
assert w.count[FWD] == 0 and w.wraps[FWD] == 1

# heap_lock: steady tick, minute rollover, 5- and 30-minute capture allocate nothing
regs2 = EnergyRegisters()
cap2 = IntervalCapture(regs2)
m2 = Metering(regs2, cap2)
s.q_lag = 70
m2.tick(s, now.at(0, base - 1, 59, True))
bits = 0
micropython.heap_lock()
try:
    for t in range(3600):
        bits |= m2.tick(s, now.at(t * 1000, base + t // 60, t % 60, True))
        if t % 60 == 30:
            bits |= m2.clock_tick(now.at(t * 1000 + 500, base + t // 60, 30, True))
finally:
    micropython.heap_unlock()
assert bits & FIVE and bits & HALF_HOUR
assert regs2.count[LAG] >= 0 and regs2.count[REV] == 0

# the ring type on its own: record, slot, latest, energy allocate nothing either
ring = SeriesRing(5, 12, 5)
micropython.heap_lock()
try:
    for k in range(40):
        ring.record(base + 5 * k, k * 3, k, k * 2, 0, 1000 + k)
    e = ring.energy(base + 5 * 39, 15)
    last = ring.latest()
finally:
    micropython.heap_unlock()
assert e == 9 and last == base + 5 * 39 and ring.slot(base + 5 * 27) == MISSING
assert ring.volt[ring.slot(base + 5 * 39)] == 1039
print("PASS")
