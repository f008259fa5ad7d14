# bench-heap: 900k (160k for the firmware + the simulated 256 KB flash array, kept in the heap)
# Benchmark under the MicroPython unix port: the Last Gasp path, from the confirmed
# power-fail (debounce over) to the alarm handed to the uplink: time, flash operations and
# heap allocated. Prints "figure: name value unit".

import gc
import time

from meter.assembly import build_meter
from meter.metering.frontends.simulated import SimulatedHousehold
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from hosthal.pins import ScriptedPowerGood
from hosthal.uplink import FakeUplink


class Config:
    METER_ID = b"BENCH001"
    LASTGASP = {"debounce_ms": 20}
    HOLDUP_BUDGET_MS = 4000


def figure(name, value, unit):
    print("figure:", name, value, unit)


RUNS = 20
total_us = worst_us = programs = erases = alloc = 0
flash = NorFlash(sectors=64)  # one array, blanked for each run (no 256 KB churn)
for run in range(RUNS):
    meter = hal = None
    for sector in range(flash.sectors):
        flash.erase_sector(sector)
    gc.collect()
    clock = VirtualClock(wall_s=9_000 * 86_400 + 8 * 3600 + run * 7)
    pg = ScriptedPowerGood(1)
    up = FakeUplink()
    hal = HostHal(clock, SimulatedHousehold(clock, seed=run), power_good=pg, uplink=up,
                  flash=flash)
    meter = build_meter(hal, Config(), key=b"bench-key-0123456789abcdef012345")
    meter.boot()
    for _ in range(90 + run * 13):
        meter.step()
        meter.idle()
        clock.advance(1000)
    pg.set(0)
    meter.power_poll()  # the edge: debounce starts
    clock.advance(20)
    p0, e0 = flash.programs, flash.erases
    gc.collect()
    a0 = gc.mem_alloc()
    t0 = time.ticks_us()
    meter.power_poll()  # debounce over: freeze, commit, alarm handed to the uplink
    dt = time.ticks_diff(time.ticks_us(), t0)
    alloc += gc.mem_alloc() - a0
    assert len(up.sent) == 1, "alarm not handed over"
    programs += flash.programs - p0
    erases += flash.erases - e0
    total_us += dt
    worst_us = max(worst_us, dt)

figure("lastgasp_edge_to_alarm_us_mean", total_us // RUNS, "us")
figure("lastgasp_edge_to_alarm_us_worst", worst_us, "us")
figure("lastgasp_page_programs", programs // RUNS, "")
figure("lastgasp_sector_erases", erases, "(all runs)")
figure("lastgasp_heap_bytes", alloc // RUNS, "B")
figure("lastgasp_alarm_bytes", len(up.sent[0][1]), "B")
