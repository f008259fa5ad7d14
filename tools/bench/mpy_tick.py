# Benchmark under the MicroPython unix port: heap and time per metering tick and minute rollover.
# Run by tools/bench.py (MICROPYPATH=firmware:host_tests). Prints "figure: name value unit".

import gc
import time

from meter.app import Meter
from meter.frontends.simulated import SimulatedHousehold
from meter.intervals import MINUTE
from simhal.board import HostHal
from simhal.clock import VirtualClock


def figure(name, value, unit):
    print("figure:", name, value, unit)


clock = VirtualClock(wall_s=9_000 * 86_400 + 7 * 3600)  # 07:00, a morning load
meter = Meter(HostHal(clock, SimulatedHousehold(clock, seed=7)))
meter.start()
for _ in range(120):  # warm up: first captures, lazily built state
    meter.step()
    clock.advance(1000)

# steady-state seconds (no minute boundary) and minute rollovers measured separately
gc.collect()
gc.disable()
steady_bytes = 0
steady_n = 0
roll_bytes = 0
roll_n = 0
steady_us = 0
for _ in range(1800):
    before = gc.mem_alloc()
    t = time.ticks_us()
    bits = meter.step()
    dt = time.ticks_diff(time.ticks_us(), t)
    used = gc.mem_alloc() - before
    if bits >= 0 and bits & MINUTE:
        roll_bytes += used
        roll_n += 1
    else:
        steady_bytes += used
        steady_n += 1
        steady_us += dt
    clock.advance(1000)
gc.enable()

figure("heap_bytes_per_tick", steady_bytes // steady_n, "B")
figure("heap_bytes_per_minute_rollover", roll_bytes // max(roll_n, 1), "B")
figure("us_per_tick", steady_us // steady_n, "us")
gc.collect()
figure("heap_in_use_after_run", gc.mem_alloc(), "B")
