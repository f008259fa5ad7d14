# scenario-heap: 900k (the simulated 256 KB flash array lives in the heap, built from a copy)
# The whole product meter on its journal (flash, retained copy, relay, key, Last Gasp): every
# metering second that is not a minute commit allocates nothing, the retained-copy write, the
# Now read and the tamper check included; the minute commit itself allocates (HMAC objects)
# and runs outside the lock.

import micropython

from hosthal.flash import NorFlash

flash = NorFlash(sectors=64)  # first, while the heap is unfragmented

from hosthal.board import HostHal  # noqa: E402
from hosthal.clock import VirtualClock  # noqa: E402
from hosthal.pins import FakeRelay, ScriptedPowerGood  # noqa: E402
from hosthal.retained import RamRetained  # noqa: E402
from hosthal.uplink import FakeUplink  # noqa: E402
from meter.assembly import build_meter  # noqa: E402
from meter.metering.frontends.simulated import SimulatedHousehold  # noqa: E402


class Config:
    METER_ID = b"MPY00002"


clock = VirtualClock(wall_s=9_000 * 86_400 + 6 * 3600)
hal = HostHal(clock, SimulatedHousehold(clock, seed=5), power_good=ScriptedPowerGood(1),
              uplink=FakeUplink(), relay=FakeRelay(), flash=flash, retained=RamRetained(),
              key=b"scenario-step-heap-journal-key!!")
meter = build_meter(hal, Config())
meter.boot()
for _ in range(130):  # first commits, lazily built state
    meter.step()
    meter.idle()
    clock.advance(1000)

locked = 0
for minute in range(5):
    while clock.wall_second() != 0:  # up to the next boundary, outside the lock
        meter.step()
        meter.idle()
        clock.advance(1000)
    meter.step()  # the minute commit (allocates: HMAC objects)
    meter.idle()
    clock.advance(1000)
    micropython.heap_lock()
    try:
        for _ in range(55):  # seconds 1..55 of the minute: no boundary, no commit
            meter.step()
            meter.power_poll()
            clock.advance(1000)
            locked += 1
    finally:
        micropython.heap_unlock()
assert locked == 275 and meter.store.retained is not None and meter.durable
assert meter.metering.samples > 400
print("PASS")
