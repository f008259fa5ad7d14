# Metrology front ends under the MicroPython unix port: BL0942 packets whole and byte by
# byte, S0 counting with debounce and counter wrap, a simulated day, and an allocation-free
# poll() of every front end proven with micropython.heap_lock() after warm-up.

import micropython

from meter.clock import Now
from meter.metering.frontends.bl0942 import Bl0942, Bl0942Parser
from meter.metering.frontends.s0 import S0PulseInput
from meter.metering.frontends.simulated import SimulatedHousehold
from meter.metering.intervals import IntervalCapture
from meter.metering.samples import Metering, Sample, REJECTED
from meter.metering.registers import EnergyRegisters, FWD, REV
from hosthal.clock import VirtualClock

NOW = Now()  # reused: reading the clock allocates nothing


def packet(cf, watt=0, v_rms=1_604_217, i_rms=2_000_000):
    b = bytearray(23)
    b[0] = 0x55
    for i, v in ((1, i_rms), (4, v_rms), (7, i_rms), (10, watt & 0xFFFFFF), (13, cf)):
        b[i] = v & 0xFF
        b[i + 1] = (v >> 8) & 0xFF
        b[i + 2] = (v >> 16) & 0xFF
    b[16] = 20_000 & 0xFF
    b[17] = 20_000 >> 8
    b[22] = 0xFF - ((0x58 + sum(b[:22])) & 0xFF)
    return bytes(b)


# --- parser: whole, byte by byte, garbage, bad checksum -------------------------------------
stream = b"\x01\x55\x02" + packet(10) + packet(11) + b"\xee" * 5 + packet(12)
bad = bytearray(packet(13))
bad[5] ^= 0x40
stream += bytes(bad) + packet(14)
seen_whole = []
seen_bytes = []
p = Bl0942Parser(on_frame=lambda q: seen_whole.append(q.cf_cnt))
p.feed(stream)
q = Bl0942Parser(on_frame=lambda q: seen_bytes.append(q.cf_cnt))
for k in range(len(stream)):
    q.feed(stream[k:k + 1])
assert seen_whole == seen_bytes == [10, 11, 12, 14], (seen_whole, seen_bytes)
assert p.bad_checksum == q.bad_checksum == 2  # the false header at the start, packet 13
assert p.resyncs >= 3 and p.skipped > 0


# --- an allocation-free scripted UART: frames queued before the locked section -------------
class RingUart:
    def __init__(self, size=2048):
        self.buf = bytearray(size)
        self.head = 0
        self.tail = 0
        self.arrived = 0  # bytes the peer has sent so far (<= tail)
        self.writes = 0

    def feed(self, data):
        for b in data:
            self.buf[self.tail % len(self.buf)] = b
            self.tail += 1

    def any(self):
        return self.arrived - self.head

    def readinto(self, buf):
        n = 0
        while n < len(buf) and self.head < self.arrived:
            buf[n] = self.buf[self.head % len(self.buf)]
            self.head += 1
            n += 1
        return n

    def write(self, buf):
        self.writes += 1
        return len(buf)


uart = RingUart()
fe = Bl0942(uart)
s = Sample()
regs = EnergyRegisters(unit=0x04)
m = Metering(regs, IntervalCapture(regs))
fe.poll(s, 0)
uart.feed(packet(0))
uart.arrived += 23
fe.poll(s, 1000)
frames = [packet(2 * k, 841_000) for k in range(1, 41)]
for k in range(10):  # warm-up
    uart.feed(frames[k])
    uart.arrived += 23
    assert fe.poll(s, 2000 + 1000 * k)
    assert not m.tick(s, Now(0, 5000, k, True)) & REJECTED
for k in range(10, 40):
    uart.feed(frames[k])
micropython.heap_lock()
try:
    ok = 0
    for k in range(10, 40):
        uart.arrived += 23  # one reply per request
        if fe.poll(s, 2000 + 1000 * k):
            ok += 1
finally:
    micropython.heap_unlock()
assert ok == 30 and fe.timeouts == 0, (ok, fe.timeouts)
assert fe.parser.frames == 41

# --- S0: debounce, energy, 16-bit hardware counter wrap -------------------------------------
s0 = S0PulseInput(1000, min_width_ms=30, min_gap_ms=80)
s0.poll(s, 0)
for t, lv in ((100, 1), (102, 0), (104, 1), (150, 0), (3700, 1), (3740, 0), (3775, 1),
              (3810, 0)):
    s0.edge(t, lv)
assert s0.poll(s, 4000)
assert s.e_fwd == 7200 and s0.pulses == 2 and s0.bounces == 1 and s0.too_close == 1


class Counter:
    def __init__(self):
        self.v = 65_500

    def count(self):
        return self.v & 0xFFFF


c = Counter()
hw = S0PulseInput(1000, counter=c)
hw.poll(s, 0)
total = 0
for k in range(1, 101):
    c.v += 1
    assert hw.poll(s, 1000 * k)
    total += s.e_fwd
assert total == 100 * 3600 and hw.jumps == 0

# allocation-free polls: edge mode and counter mode
t = 10_000
micropython.heap_lock()
try:
    for k in range(50):
        s0.edge(t, 1)
        s0.edge(t + 40, 0)
        t += 1000
        s0.poll(s, t)
        c.v += 1
        hw.poll(s, 200_000 + 1000 * k)
finally:
    micropython.heap_unlock()
assert s0.pulses == 52 and hw.pulses == 150

# --- simulated household: one day, accepted by metering, allocation-free poll ---------------
clock = VirtualClock(wall_s=9000 * 86400)
sim = SimulatedHousehold(clock, seed=4, pv_w=4000, ev_w=3000)
regs = EnergyRegisters(unit=0x04)
m = Metering(regs, IntervalCapture(regs))
sim.poll(s, 0)
fwd = rev = 0
for k in range(86_400):
    clock.advance(1000)
    assert sim.poll(s, clock.ticks_ms())
    fwd += s.e_fwd
    rev += s.e_rev
    assert not m.tick(s, NOW.read(clock)) & REJECTED
assert regs.total_joules(FWD) == fwd and regs.total_joules(REV) == rev
assert fwd > 5 * 3_600_000 and rev > 0

micropython.heap_lock()
try:
    for k in range(600):  # ten minute boundaries included
        clock.advance(1000)
        sim.poll(s, clock.ticks_ms())
finally:
    micropython.heap_unlock()
print("PASS")
