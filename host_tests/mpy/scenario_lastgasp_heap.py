# The Last Gasp machine on its platform under the MicroPython unix port: polls with mains
# present, while debouncing and once the radios are off allocate nothing (heap_lock), and the
# poll that runs the sequence up to the alarm allocates no more than it did before the
# machine became sans-IO (the HMAC seal is what allocates). Prints the figure, then PASS.

import gc
import micropython

from meter.clock import Now
from meter.events import EventLog
from meter.mac import Hmac
from meter.metering.intervals import IntervalCapture
from meter.metering.registers import EnergyRegisters
from meter.metering.samples import Metering
from meter.outage.assembly import build_outage
from meter.outage.lastgasp import DOWN, FAST, HOLDING, IDLE, PENDING, SLEEP, UP

# The old LastGasp (commit 658361a: flags, a platform with sleep()) measured with this same
# harness: bytes allocated by the edge-to-alarm poll, mean of RUNS outages.
BEFORE_B = 672
RUNS = 20


class Store:
    """Takes every commit and state save without allocating (the journal is measured by the
    meter's own benchmark, tools/bench/mpy_lastgasp.py)."""

    def __init__(self):
        self.commits = 0
        self.saves = 0

    def commit_now(self):
        self.commits += 1

    def save_lastgasp(self, payload):
        self.saves += 1

    def lastgasp_state(self):
        return None


class Uplink:
    """Takes every message without copying it."""

    def __init__(self):
        self.sent = 0

    def connected(self):
        return True

    def send(self, topic, payload):
        self.sent += 1
        return True


regs = EnergyRegisters(0x02, 1)
metering = Metering(regs, IntervalCapture(regs))
store = Store()
up = Uplink()
lg = build_outage(b"MPY00001", Hmac(b"k" * 32), EventLog(64), regs, metering, store, up, None,
                  4000, {"debounce_ms": 20, "restore_ms": 200})
now = Now()
t = 0
minute = 9_000 * 1440 + 8 * 60
total = 0
for run in range(RUNS):
    minute += 11  # outside the rate limit's window: every outage sends its alarm
    micropython.heap_lock()
    try:
        for _ in range(1000):  # mains present: the 1 s cadence, nothing allocated
            assert lg.poll(now.at(t, minute, 0, True), 1) == IDLE
            t += 5
        assert lg.poll(now.at(t, minute, 1, True), 0) == FAST  # the edge
        t += 10
        assert lg.poll(now.at(t, minute, 1, True), 0) == FAST  # still debouncing
        assert lg.state == PENDING
    finally:
        micropython.heap_unlock()
    t += 10
    now.at(t, minute, 1, True)
    sent = up.sent
    gc.collect()
    a0 = gc.mem_alloc()
    action = lg.poll(now, 0)  # debounce over: freeze, commit, persist, alarm handed over
    total += gc.mem_alloc() - a0
    assert action == FAST and lg.state == HOLDING and up.sent == sent + 1
    while lg.poll(now.at(t, minute, 2, True), 0) != SLEEP:  # the repeats
        t += 5
    assert lg.state == DOWN and not lg.platform.radios
    micropython.heap_lock()
    try:
        for _ in range(100):  # radios off: every poll tells the shell to sleep, at once
            assert lg.poll(now.at(t, minute, 5, True), 0) == SLEEP
            t += 5
    finally:
        micropython.heap_unlock()
    while lg.poll(now.at(t, minute, 9, True), 1) != IDLE:  # mains back for restore_ms
        t += 5
    assert lg.state == UP and not metering.frozen and lg.platform.background

assert lg.failures == RUNS and lg.suppressed == 0 and store.commits == RUNS
mean = total // RUNS
print("figure: lastgasp_machine_edge_to_alarm_heap_bytes", mean, "B (before:", BEFORE_B, "B)")
assert mean <= BEFORE_B, mean
print("PASS")
