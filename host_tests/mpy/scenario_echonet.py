# ECHONET Lite service under the MicroPython unix port: Gets of E0/E7/E8/D0/EE/E2 checked
# against the core, bad frames dropped, then the benchmark figures: frames handled per
# second and bytes allocated per Get (gc.mem_alloc deltas, and heap_lock() proof).

import gc
import micropython
import time

from meter import caltime
from meter.broute.echonet import codec
from meter.clock import Now
from meter.broute.echonet.meter_object import SmartMeter
from meter.broute.echonet.node import Identity, NodeProfile
from meter.broute.echonet.service import Service
from meter.metering.intervals import IntervalCapture
from meter.metering.samples import Metering, Sample
from meter.metering.registers import EnergyRegisters, FWD

regs = EnergyRegisters(unit=0x02, coefficient=1)
cap = IntervalCapture(regs)
met = Metering(regs, cap)
gc.collect()
heap0 = gc.mem_alloc()
ident = Identity(serial=b"MPY000000001")
meter = SmartMeter(regs, met, cap, ident)
node = NodeProfile(ident, (meter,))
svc = Service(node, (meter,), flood_limit=1 << 29)
gc.collect()
print("heap held by the ECHONET stack (identity, objects, service buffers): %d bytes"
      % (gc.mem_alloc() - heap0))

s = Sample()
s.dt_ms = 1000
s.e_fwd = 1500
s.p_w = 1500
s.i_ma = 15_049
s.v_dv = 1010
base = caltime.to_minute(2026, 11, 28, 10, 0)
minute = base
second = 0
for t in range(7200):
    second += 1
    if second == 60:
        second = 0
        minute += 1
    met.tick(s, Now(0, minute, second, True))
assert caltime.ymdhm(minute) == (2026, 11, 28, 12, 0)
NOW = Now(0, minute, second, True)  # the instant every request below is handled at


def frame(esv, epcs, edts=None, tid=1):
    out = bytearray(b"\x10\x81")
    out.append(tid >> 8)
    out.append(tid & 0xFF)
    out.extend(b"\x05\xff\x01\x02\x88\x01")
    out.append(esv)
    out.append(len(epcs))
    for i in range(len(epcs)):
        edt = edts[i] if edts else b""
        out.append(epcs[i])
        out.append(len(edt))
        out.extend(edt)
    return out


rx = svc.rx
tx = svc.tx.buf


def handle(req):
    n = len(req)
    for i in range(n):
        rx[i] = req[i]
    return svc.handle(rx, n, NOW)


def u32(b, o):
    return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]


# --- correctness under the port ---------------------------------------------------------
n = handle(frame(0x62, [0xE0, 0xE7, 0xE8, 0xD0]))
f = codec.Frame()
assert codec.parse(tx, n, f, n) == codec.OK and f.esv == 0x72 and f.opc == 4
assert u32(tx, f.at[0]) == regs.count[FWD] == 7200 * 1500 // 36_000
assert u32(tx, f.at[1]) == 1500
assert tx[f.at[2]] == 0 and tx[f.at[2] + 1] == 150 and tx[f.at[2] + 2] == 0x7F
d0 = f.at[3]
assert (tx[d0] << 8 | tx[d0 + 1], tx[d0 + 2], tx[d0 + 3], tx[d0 + 4], tx[d0 + 5]) == (
    2026, 11, 28, 12, 0)

ef = bytes((0x07, 0xEA, 11, 28, 11, 59, 10))
n = handle(frame(0x61, [0xEF], [ef]))
assert tx[10] == 0x71
n = handle(frame(0x62, [0xEE]))
assert codec.parse(tx, n, f, n) == codec.OK and f.pdc[0] == 87
slot = cap.ring.slot(base + 119)
assert u32(tx, f.at[0] + 7) == cap.ring.fwd[slot]

n = handle(frame(0x62, [0xE2]))
assert codec.parse(tx, n, f, n) == codec.OK and f.pdc[0] == 194

# an oversized Get: every property listed, values while they fit, the rest PDC 0;
# the injected fault and validity sources (closures, as the composition wires them) read
BIG = [0xE2, 0xE4, 0xEA, 0xEB, 0xEC, 0xEE, 0xD0, 0x88, 0xE0, 0xE3] * 3
standing = [False]
meter.fault = lambda: standing[0]
meter.registers_valid = lambda: True
n = handle(frame(0x62, BIG))
assert codec.parse(tx, n, f, n) == codec.OK and f.esv == 0x52 and f.opc == len(BIG)
assert bytes(f.epc[:f.opc]) == bytes(BIG) and n <= len(tx)
assert f.pdc[0] == 194 and f.pdc[len(BIG) - 1] == 0

assert handle(b"\x10\x82" + frame(0x62, [0xE0])[2:]) == 0
assert handle(frame(0x62, [0xE0])[:13]) == 0
assert svc.errors[codec.E_EHD] == 1 and svc.errors[codec.E_TRUNCATED] == 1

# --- benchmark --------------------------------------------------------------------------
GET_E0 = frame(0x62, [0xE0])
GET_MIX = frame(0x62, [0xE0, 0xE7, 0xE8, 0xD0])
GET_EE = frame(0x62, [0xEE])
GET_E2 = frame(0x62, [0xE2])
GET_BIG = frame(0x62, BIG)


def load(req):
    for i in range(len(req)):
        rx[i] = req[i]
    return len(req)


def alloc_per_get(req, rounds=50):
    n = load(req)
    svc.handle(rx, n, NOW)
    gc.collect()
    a = gc.mem_alloc()
    for _ in range(rounds):
        svc.handle(rx, n, NOW)
    return (gc.mem_alloc() - a) // rounds


def heap_locked(req):
    n = load(req)
    micropython.heap_lock()
    try:
        svc.handle(rx, n, NOW)
        ok = True
    except MemoryError:
        ok = False
    micropython.heap_unlock()
    return ok


def rate(req, count=2000):
    n = load(req)
    t0 = time.ticks_us()
    for _ in range(count):
        svc.handle(rx, n, NOW)
    dt = time.ticks_diff(time.ticks_us(), t0)
    return count * 1_000_000 // dt


for name, req in (("Get E0", GET_E0), ("Get E0+E7+E8+D0", GET_MIX), ("Get EE (10 min)", GET_EE),
                  ("Get E2 (48 values)", GET_E2), ("Get 30 props (SNA)", GET_BIG)):
    per = alloc_per_get(req)
    locked = heap_locked(req)
    print("%-20s %6d frames/s  %3d bytes allocated per Get  heap_lock %s"
          % (name, rate(req, 500 if req in (GET_E2, GET_BIG) else 2000), per,
             "ok" if locked else "FAILED"))
    assert per == 0 and locked, name
print("PASS")
