# bench-heap: 200k (160k for the firmware + the simulated 48 KB flash array, kept in the heap)
# Benchmark under the MicroPython unix port: cost of a journal commit (page programs,
# erases, microseconds, heap bytes), of the Last Gasp commit and of a compaction step.
# Run by tools/bench.py. Prints "figure: name value unit". The microseconds include the
# simulated flash (NorFlash.program is a Python byte loop), not the flash's own program
# time (~0.7 ms per page on a board). The storage is built by the storage sub-assembly, so
# the journal keeps the product's record set (a small partition: smaller rings, 2 days of
# half-hour blocks).

import gc
from hosthal.flash import NorFlash

SECTORS = 12
dev = NorFlash(SECTORS)  # first, while the heap is unfragmented
gc.collect()

import time  # noqa: E402
from meter.clock import Now  # noqa: E402
from meter.events import EventLog  # noqa: E402
from meter.metering.intervals import IntervalCapture, FiveMinuteRing, HalfHourHistory  # noqa: E402
from meter.mac import Hmac  # noqa: E402
from meter.metering.samples import Metering, Sample  # noqa: E402
from meter.metering.registers import EnergyRegisters  # noqa: E402
from meter.storage.assembly import build_storage  # noqa: E402


def figure(name, value, unit):
    print("figure:", name, value, unit)


regs = EnergyRegisters()
cap = IntervalCapture(regs, five=FiveMinuteRing(24), half=HalfHourHistory(days=1))
met = Metering(regs, cap)
store = build_storage(dev, Hmac(b"b" * 32), regs, cap, EventLog(16), half_blocks=4)
store.restore()
now = Now()
s = Sample()
s.dt_ms = 1000
s.e_fwd = 1500
s.v_dv = 1010
t0 = 9_000 * 86_400
n = us = us_max = progs = heap = erases = 0
comp_n = comp_us = 0
for t in range(t0, t0 + 3 * 3600):
    now.at((t - t0) * 1000 % 1_000_000_000, t // 60, t % 60, True)
    bits = met.tick(s, now)
    p0 = dev.programs
    e0 = dev.erases
    gc.collect()
    a0 = gc.mem_alloc()
    a = time.ticks_us()
    seq = store.on_tick(now, bits)
    d = time.ticks_diff(time.ticks_us(), a)
    if seq >= 0:
        heap += gc.mem_alloc() - a0
        n += 1
        us += d
        us_max = max(us_max, d)
        progs += dev.programs - p0
        erases += dev.erases - e0
    e0 = dev.erases
    a = time.ticks_us()
    store.compact_step()
    d = time.ticks_diff(time.ticks_us(), a)
    if dev.erases > e0:
        comp_n += 1
        comp_us += d
figure("journal_commit_us_mean", us // n, "us")
figure("journal_commit_us_max", us_max, "us")
figure("journal_commit_programs_mean", "%d.%02d" % (progs // n, progs * 100 // n % 100),
       "pages")
figure("journal_commit_erases", erases, "erases")
figure("journal_commit_heap_mean", heap // n, "bytes")
figure("journal_compaction_step_us_mean", comp_us // max(comp_n, 1), "us")
met.frozen = True
p0 = dev.programs
e0 = dev.erases
a = time.ticks_us()
store.commit_now()
figure("lastgasp_commit_us", time.ticks_diff(time.ticks_us(), a), "us")
figure("lastgasp_commit_programs", dev.programs - p0, "pages")
figure("lastgasp_commit_erases", dev.erases - e0, "erases")
