# The whole metering second (front end poll, registers, capture, limiter, Last Gasp) allocates
# nothing under the MicroPython unix port: proven with micropython.heap_lock().

import micropython

from meter.assembly import build_meter
from meter.metering.frontends.simulated import SimulatedHousehold
from meter.metering.intervals import FIVE, HALF_HOUR, MINUTE
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.pins import FakeRelay, ScriptedPowerGood
from hosthal.uplink import FakeUplink


class Config:
    METER_ID = b"MPY00001"
    LASTGASP = {}
    HOLDUP_BUDGET_MS = 4000


clock = VirtualClock(wall_s=9_000 * 86_400 + 6 * 3600)
hal = HostHal(clock, SimulatedHousehold(clock, seed=11), power_good=ScriptedPowerGood(1),
              uplink=FakeUplink(), relay=FakeRelay())
meter = build_meter(hal, Config(), key=b"k" * 32)
meter.boot()
for _ in range(90):
    meter.step()
    clock.advance(1000)

bits = 0
micropython.heap_lock()
try:
    for _ in range(7200):  # two hours: minute rollovers, 5- and 30-minute captures
        bits |= meter.step()
        meter.power_poll()
        clock.advance(1000)
finally:
    micropython.heap_unlock()
assert bits & MINUTE and bits & FIVE and bits & HALF_HOUR, bits
assert meter.metering.samples > 7000
assert meter.limiter is not None and hal.relay.sensed()
print("PASS")
