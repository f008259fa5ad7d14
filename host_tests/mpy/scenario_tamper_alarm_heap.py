# The tamper alarm check Meter.step() makes every second allocates nothing under the
# MicroPython unix port (heap_lock) while no alarm is due: no finding, a finding already
# alarmed, a refused alarm waiting for its retry minute. The store is a stand-in with the
# tamper register's interface (tamper_count, tamper_last, tamper_pending()), since the
# journal's commits are not part of this proof.

import micropython

from meter.assembly import build_meter
from meter.events import TAMPER_SEAL
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.loads import ConstantLoad
from hosthal.pins import FakeRelay, ScriptedPowerGood
from hosthal.uplink import FakeUplink


class Config:
    METER_ID = b"MPY00001"
    LASTGASP = {}
    HOLDUP_BUDGET_MS = 4000


class TamperRegister:
    """The store's tamper register as Meter.step() reads it."""

    def __init__(self):
        self.tamper_count = 0
        self.tamper_last = None
        self.standing = False

    def tamper_pending(self):
        return self.standing

    def finding(self, sector, seq):
        self.tamper_count += 1
        self.tamper_last = (TAMPER_SEAL, sector, seq, 0)
        self.standing = True


clock = VirtualClock(wall_s=9_000 * 86_400 + 6 * 3600)
uplink = FakeUplink()
hal = HostHal(clock, ConstantLoad(1000), power_good=ScriptedPowerGood(1), uplink=uplink,
              relay=FakeRelay())
meter = build_meter(hal, Config(), key=b"k" * 32)
meter.boot()
reg = TamperRegister()
meter.store = reg  # only the tamper check reads it here (no journal: step skips commits)
now = meter.now.read(clock)


def check(n):
    for _ in range(n):
        clock.advance(1000)
        now.read(clock)
        meter._tamper_alarm(now)


micropython.heap_lock()
try:
    check(120)  # no finding
finally:
    micropython.heap_unlock()
assert uplink.sent == []

reg.finding(7, 1234)
check(1)  # sealed and sent (allocates: it is not the steady state)
assert len(uplink.sent) == 1 and uplink.sent[0][0] == "alarm", uplink.sent
micropython.heap_lock()
try:
    check(120)  # already alarmed
finally:
    micropython.heap_unlock()
assert len(uplink.sent) == 1

uplink.up = False
reg.finding(8, 1300)
check(1)  # refused by the uplink
micropython.heap_lock()
try:
    check(50)  # waiting for the retry minute
finally:
    micropython.heap_unlock()
uplink.up = True
check(15)
assert len(uplink.sent) == 2 and meter.alarms.lost == 1, (len(uplink.sent), meter.alarms.lost)
print("PASS")
