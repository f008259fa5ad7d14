# scenario-heap: 900k (the simulated 256 KB flash array lives in the heap, built from a copy)
# The A-route of the product meter on the MicroPython unix port against a real Mosquitto
# (host_tests/test_aroute_unix.py starts it, its port in MQTT_PORT; without it: SKIP): the
# meter (journal, relay, key, Last Gasp) with hal.link = the board's TcpLink comes up,
# publishes its birth, backfills three offline hours, pushes; then the A-route's idle poll
# (session up, nothing due) runs under heap_lock, and every metering second keeps its
# allocation-free step; then every A-route command runs on the port's own struct and bytes.
# Prints the A-route's RAM (code, objects, during backfill, idle), the heap one poll takes
# and the longest serve() during the backfill.
# scenario-runner: test_aroute_unix.py (it starts the broker and runs this file)

import gc
import micropython
import os
import time

port = os.getenv("MQTT_PORT")
if not port:
    print("SKIP no broker: MQTT_PORT unset (test_aroute_unix.py starts one)")
    raise SystemExit

from hosthal.flash import NorFlash  # noqa: E402

flash = NorFlash(sectors=64)  # first, while the heap is unfragmented

from esp32hal.tcplink import TcpLink  # noqa: E402
from hosthal.board import HostHal  # noqa: E402
from hosthal.clock import VirtualClock  # noqa: E402
from hosthal.pins import FakeRelay, ScriptedPowerGood  # noqa: E402
from meter.metering.frontends.simulated import SimulatedHousehold  # noqa: E402
from meter.assembly import build_meter  # noqa: E402


class Config:
    METER_ID = b"MPYAR001"
    AROUTE_BACKOFF_MS = (1_000, 8_000, 0)


clock = VirtualClock(wall_s=9_000 * 86_400 + 6 * 3600)
hal = HostHal(clock, SimulatedHousehold(clock, seed=5), power_good=ScriptedPowerGood(1),
              relay=FakeRelay(), flash=flash, key=b"scenario-aroute-idle-key-0123456")
plain = build_meter(hal, Config())  # the meter's own modules loaded once
del plain
gc.collect()
free0 = gc.mem_free()
plain = build_meter(hal, Config())  # the same meter without a link: no A-route
assert plain.aroute is None
gc.collect()
without = free0 - gc.mem_free()
del plain
gc.collect()
free0 = gc.mem_free()
import meter.aroute.assembly  # noqa: E402,F401  (the A-route's code: mqtt, session, service...)
import meter.outage.wire  # noqa: E402,F401
gc.collect()
code = free0 - gc.mem_free()
free0 = gc.mem_free()
hal.link = TcpLink("127.0.0.1", int(port))
meter = build_meter(hal, Config())
gc.collect()
built = free0 - gc.mem_free() - without  # the A-route's objects (buffers, tables, topics)
a = meter.aroute
assert a is not None and meter.uplink is a
meter.boot()
gc.collect()
base = free0 - gc.mem_free()
link_open = a.session.state  # WAIT: nothing opened before the first serve()


def settle(limit_ms=3000):
    c = a.client
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < limit_ms:
        meter.serve()
        if not (c.inflight or len(c.outgoing()) or c.waiting() or a.session.state in (1, 2)):
            return
        time.sleep_ms(1)


longest = [0]


def second():
    meter.step()
    t = time.ticks_us()
    meter.serve()
    d = time.ticks_diff(time.ticks_us(), t)
    if d > longest[0]:
        longest[0] = d
    settle()
    meter.idle()
    clock.advance(1000)


# three hours offline (the link is there but the meter never polled it), then up
a.session.close()
for _ in range(3 * 3600):
    meter.step()
    meter.idle()
    clock.advance(1000)
a.session.resume(clock.ticks_ms())
peak = 0
t0 = time.ticks_ms()
while not a.session.up:
    second()
    assert time.ticks_diff(time.ticks_ms(), t0) < 10_000, a.session.last_error
longest[0] = 0
for _ in range(120):  # the backfill (3 h of 1/5/30-minute values, events)
    second()
    gc.collect()
    used = free0 - gc.mem_free()
    if used > peak:
        peak = used
assert a.backfill_sent >= 3, a.backfill_sent
backfill_us = longest[0]
assert all(a.box.cursor[s] >= a.head[s] for s in range(4)), a.box.cursor  # backfill done
# up to a quiet moment: 10 s after a minute boundary, mid push period
while not (clock.wall_second() == 10 and clock.wall_minute() % 30 == 10):
    second()
settle()
gc.collect()
idle = free0 - gc.mem_free()
n = a.published
micropython.heap_lock()
try:
    for _ in range(200):  # the idle poll: session up, nothing due
        meter.serve()
    for _ in range(20):  # metering seconds (no boundary): step and serve
        meter.step()
        meter.serve()
        # a keep-alive PINGREQ may fall in these seconds: give the broker real time for
        # its PINGRESP (the virtual clock would otherwise run out the ping timeout in a
        # few real ms on a loaded machine); the ping path is allocation-free too
        t0 = time.ticks_ms()
        while a.client.waiting() and time.ticks_diff(time.ticks_ms(), t0) < 3000:
            meter.serve()
        clock.advance(1000)
finally:
    micropython.heap_unlock()
assert a.published == n and a.session.up
settle()
gc.collect()
before = gc.mem_alloc()
for _ in range(100):
    meter.serve()
per_poll = (gc.mem_alloc() - before) // 100  # the mean of 100 idle polls (the lock: 0)
# the A-route commands on the port's own struct/bytes (executed as the envelope would)
now = meter.now.read(clock)
hw = meter.capture.high_water
checks = (
    (0x20, (), 0), (0x21, (5, 0, hw - 60, hw), 0), (0x21, (1, 1, 0, 10), 0),
    (0x21, (7, 1, 0, 10), 17), (0x22, (0, 10), 0), (0x23, (5, 1, 5, 60, 3, 30, 1), 0),
    (0x23, (5, 1, 7, 60, 3, 30, 1), 17), (0x24, (now.minute, 30, 0), 0),
    (0x24, (now.minute + 600, 0, 0), 13), (0x25, (bytes(16),), 20), (0x26, (0xFFD,), 0),
    (0x27, (0x2,), 0), (0x28, (), 0), (0x29, (b"\xc0\x00\x02\x09", 4000), 20),
)
for cmd, args, want in checks:
    if cmd == 0x21 or cmd == 0x22:
        a.a_stream = -1  # one range read at a time: the previous answer is not awaited here
    arg, st, data = a.command(cmd, args, meter.now.read(clock))
    assert st == want, (cmd, st, want)
print("aroute RAM: code %d B (.mpy loaded), objects %d B; after boot: during backfill +%d B, "
      "idle +%d B; one idle poll allocates %d B; longest serve() in backfill %d us"
      % (code, built, peak - base, idle - base, per_poll, backfill_us))
a.session.close()
print("PASS")
