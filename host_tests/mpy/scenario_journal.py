# scenario-heap: 200k (the simulated 48 KB flash array lives in the heap too)
# Journal and store under the MicroPython unix port: commit cost (page programs, erases,
# microseconds), Last Gasp commit, compaction step, a power-cut sample, restore.
#
# The flash is a small partition (12 sectors, smaller rings and 2 days of half-hour blocks)
# so that the simulated flash fits the bounded heap; the record set is the product's (the
# storage sub-assembly's keep map) and the commit path is the same as with the default
# partition.
# The microseconds include the simulated flash's byte loop (NorFlash.program is Python),
# so they overstate the CPU cost of the journal itself on a board.

import gc
from hosthal.flash import NorFlash, PowerCut

SECTORS = 12
IMAGE = "var/mpy-scenario-journal.bin"  # the saved flash image of the power-cut sample
# The flash first, while the heap is unfragmented; the saved image goes to a file so that
# one flash-sized buffer is enough.
dev = NorFlash(SECTORS)
gc.collect()

import time  # noqa: E402
from meter.clock import Now  # noqa: E402
from meter.mac import Hmac  # noqa: E402
from meter.events import EventLog  # noqa: E402
from meter.metering.intervals import IntervalCapture, FiveMinuteRing, HalfHourHistory  # noqa: E402
from meter.metering.samples import Metering, Sample  # noqa: E402
from meter.metering.registers import EnergyRegisters, FWD  # noqa: E402
from meter.storage.assembly import build_storage  # noqa: E402
from meter.storage.records import AUDIT_KEYS, REC_AUDIT, REC_LIMITER  # noqa: E402
from meter.storage.store import LIMITER_KEYS  # noqa: E402

KEY = b"m" * 32
DAY0 = 9_000 * 1440
HALF_BLOCKS = 4  # 2 days of half-hour blocks on flash


class Meter:
    def __init__(self, dev):
        self.regs = EnergyRegisters()
        self.cap = IntervalCapture(self.regs, five=FiveMinuteRing(24),
                                   half=HalfHourHistory(days=1))
        self.metering = Metering(self.regs, self.cap)
        self.events = EventLog(16)
        self.store = build_storage(dev, Hmac(KEY), self.regs, self.cap, self.events,
                                   HALF_BLOCKS)
        self.journal = self.store.journal
        self.report = self.store.restore()
        self.now = Now()

    def tick(self, t, s):
        """Metering and store at wall second t (monotonic ms = t * 1000)."""
        now = self.now.at(t * 1000, t // 60, t % 60, True)
        bits = self.metering.tick(s, now)
        return bits, now


m = Meter(dev)
assert m.report.ok() and m.report.records == 0
# the product's record set, not a subset: the control parts' records are kept too
assert m.journal.kept(REC_LIMITER) == LIMITER_KEYS and m.journal.kept(REC_AUDIT) == AUDIT_KEYS
s = Sample()
s.dt_ms = 1000
s.e_fwd = 1500
s.q_lag = 300
s.v_dv = 1010
s.p_w = 1500

n_commits = 0
us_total = 0
us_max = 0
progs_max = 0
progs_total = 0
commit_erases = 0
compact_us_max = 0
compact_erases = 0
t0 = DAY0 * 60
SECONDS = 4 * 3600
for t in range(t0, t0 + SECONDS):
    bits, now = m.tick(t, s)
    p0 = dev.programs
    e0 = dev.erases
    a = time.ticks_us()
    seq = m.store.on_tick(now, bits)
    us = time.ticks_diff(time.ticks_us(), a)
    if seq >= 0:
        n_commits += 1
        us_total += us
        us_max = max(us_max, us)
        progs_total += dev.programs - p0
        progs_max = max(progs_max, dev.programs - p0)
        commit_erases += dev.erases - e0
    e0 = dev.erases
    a = time.ticks_us()
    m.store.compact_step()
    us = time.ticks_diff(time.ticks_us(), a)
    if dev.erases > e0:
        compact_erases += dev.erases - e0
        compact_us_max = max(compact_us_max, us)
    assert dev.erases - e0 <= 1

assert n_commits == SECONDS // 60 and commit_erases == 0 and compact_erases > SECTORS
print("minute commits: %d, page programs per commit: mean %d.%02d max %d, erases in commits: %d"
      % (n_commits, progs_total // n_commits, progs_total * 100 // n_commits % 100, progs_max,
         commit_erases))
print("commit time (us, incl. simulated flash): mean %d max %d"
      % (us_total // n_commits, us_max))
print("compaction: %d erases over %d minutes, slowest step %d us (1 erase)"
      % (compact_erases, SECONDS // 60, compact_us_max))

# The per-tick path (no commit due) and an idle compaction step allocate nothing.
import micropython  # noqa: E402
now = m.now
m.store.on_tick(now.at(1000, 0, 1, True), 1)  # a boundary at ms 1000: commit, start the timer
m.store.compact_step()
n_free = 0
micropython.heap_lock()
try:
    for ms in range(2000, 60_000, 1000):
        assert m.store.on_tick(now.at(ms, 0, ms // 1000, True), 0) == -1
        n_free += m.store.compact_step()
finally:
    micropython.heap_unlock()
assert n_free == 0
print("per-tick store path and idle compaction step: no allocation (heap_lock)")

# Last Gasp: frozen registers, commit into the reserve, no erase, nothing lost.
m.metering.frozen = True
for t in range(t0 + SECONDS, t0 + SECONDS + 37):
    m.tick(t, s)
p0 = dev.programs
e0 = dev.erases
a = time.ticks_us()
m.store.commit_now()
us = time.ticks_diff(time.ticks_us(), a)
print("last gasp commit: %d page programs, %d erases, %d us"
      % (dev.programs - p0, dev.erases - e0, us))
assert dev.erases == e0
want = m.regs.total_joules(FWD)
hw = m.cap.high_water
gc.collect()

# reboot (new objects on the same flash): nothing lost, chain intact, history from flash
m = None
gc.collect()
b = Meter(dev)
assert b.report.chain_ok() and b.report.corrupt == 0
assert b.regs.total_joules(FWD) == want and b.cap.high_water == hw
assert b.store.history(hw - hw % 30) != -1
m = b
b = None
gc.collect()

# power-cut sample: one minute commit cut at spread byte counts
for t in range(t0 + SECONDS + 60, t0 + SECONDS + 120):
    bits, now = m.tick(t, s)
    m.store.on_tick(now, bits)
m.store.commit_minute()
committed = m.regs.total_joules(FWD)
m = None
try:
    import os
    os.mkdir("var")
except OSError:
    pass
with open(IMAGE, "wb") as f:
    f.write(dev.mem)
d = dev
gc.collect()
t = t0 + SECONDS + 120
cuts = 0
for cut in range(0, 600, 23):
    with open(IMAGE, "rb") as f:
        f.readinto(d.mem)
    mm = Meter(d)
    _, now = mm.tick(t, s)
    after = mm.regs.total_joules(FWD)
    d.cut_after(cut)
    try:
        mm.store.on_tick(now, 1)
        mm.store.compact_step()
    except PowerCut:
        pass
    d.disarm()
    mm = None
    gc.collect()
    r = Meter(d)
    got = r.regs.total_joules(FWD)
    assert r.report.chain_ok(), cut
    assert got == committed or got == after, (cut, got, committed, after)
    r.store.commit_minute()  # runs on
    cuts += 1
    r = None
    gc.collect()
print("power-cut sample: %d cut points survived" % cuts)
os.remove(IMAGE)
print("PASS")
