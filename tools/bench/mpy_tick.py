# bench-heap: 900k (160k for the firmware + the simulated 256 KB flash array, kept in the heap)
# Benchmark under the MicroPython unix port: heap and time per metering tick and minute rollover.
# Run by tools/bench.py (firmware as .mpy). Prints "figure: name value unit".
#
# Two meters: the metering core alone (registers, capture, limiter; target 0 bytes for the
# tick and the rollover), and the full meter on a flash journal, where the rollover also
# commits the minute (HMAC seals allocate hashlib objects: reported, not hidden).

import gc
import time

from meter.assembly import build_meter
from meter.metering.frontends.simulated import SimulatedHousehold
from meter.metering.intervals import MINUTE
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from hosthal.pins import FakeRelay


def figure(name, value, unit):
    print("figure:", name, value, unit)


def measure(meter, clock, seconds):
    steady_bytes = steady_n = roll_bytes = roll_n = steady_us = roll_us = 0
    gc.collect()
    gc.disable()
    for _ in range(seconds):
        before = gc.mem_alloc()
        t = time.ticks_us()
        bits = meter.step()
        dt = time.ticks_diff(time.ticks_us(), t)
        used = gc.mem_alloc() - before
        if bits & MINUTE:
            roll_bytes += used
            roll_n += 1
            roll_us += dt
        else:
            steady_bytes += used
            steady_n += 1
            steady_us += dt
        clock.advance(1000)
        if roll_n and roll_n % 5 == 0:
            gc.enable()
            gc.collect()
            gc.disable()
    gc.enable()
    return (steady_bytes // steady_n, roll_bytes // max(roll_n, 1), steady_us // steady_n,
            roll_us // max(roll_n, 1))


def build(flash):
    clock = VirtualClock(wall_s=9_000 * 86_400 + 7 * 3600)  # 07:00, a morning load
    hal = HostHal(clock, SimulatedHousehold(clock, seed=7), relay=FakeRelay(), flash=flash)
    meter = build_meter(hal, None, key=b"bench-key-0123456789abcdef012345" if flash else None)
    meter.boot()
    for _ in range(120):  # warm up: first captures, lazily built state
        meter.step()
        clock.advance(1000)
    return meter, clock


meter, clock = build(None)
tick_b, roll_b, tick_us, roll_us = measure(meter, clock, 1800)
figure("heap_bytes_per_tick", tick_b, "B")
figure("heap_bytes_per_minute_rollover", roll_b, "B")
figure("us_per_tick", tick_us, "us")
figure("us_per_minute_rollover", roll_us, "us")

flash = NorFlash(sectors=64)
meter, clock = build(flash)
p0, e0 = flash.programs, flash.erases
tick_b, roll_b, tick_us, roll_us = measure(meter, clock, 1800)
figure("journal_heap_bytes_per_tick", tick_b, "B")
figure("journal_heap_bytes_per_minute_commit", roll_b, "B")
figure("journal_us_per_minute_commit", roll_us, "us")
figure("journal_page_programs_per_minute", (flash.programs - p0) * 60 // 1800, "")
gc.collect()
figure("heap_in_use_full_meter_incl_loaded_bytecode", gc.mem_alloc() - flash.size, "B")
