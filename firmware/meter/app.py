# The shell: composes the core for one board and runs it once per second.
#
# Meter is the composition (registers, interval capture, metering, event log) that both the
# board's asyncio loop and the host simulation drive: step() is one metering second, idle()
# is background work between seconds. run_board() is the ESP32 entry point (main.py): it
# builds the HAL from the board definition and runs step() on a 1 s cadence with asyncio.

from micropython import const

from meter.events import EventLog, STARTUP
from meter.intervals import IntervalCapture, HalfHourHistory, MINUTE
from meter.metering import Limits, Metering, Sample, REJECTED
from meter.registers import EnergyRegisters

FIRMWARE_VERSION = const(1)  # a small int logged at start-up (major * 100 + minor)
_TICK_MS = const(1000)


class Meter:
    """One meter. hal is an object with .clock and .metrology (meter.hal contracts)."""

    def __init__(self, clock, metrology, unit=0x02, coefficient=1, limits=None,
                 history_days=2, events=128):
        self.clock = clock
        self.metrology = metrology
        self.regs = EnergyRegisters(unit, coefficient)
        self.capture = IntervalCapture(self.regs, half=HalfHourHistory(history_days))
        self.metering = Metering(self.regs, self.capture, limits or Limits())
        self.events = EventLog(events)
        self.sample = Sample()
        self.ticks = 0
        self.silent = 0  # seconds in which the front end delivered no sample

    def start(self, reset_kind=0):
        c = self.clock
        self.events.log(STARTUP, self._minute(), c.wall_second(), reset_kind, FIRMWARE_VERSION)

    def _minute(self):
        c = self.clock
        return c.wall_minute() if c.wall_valid() else -1

    def step(self):
        """One metering second. Returns the interval-capture bits (or REJECTED)."""
        c = self.clock
        s = self.sample
        minute = c.wall_minute()
        second = c.wall_second()
        valid = c.wall_valid()
        if self.metrology.poll(s, c.ticks_ms()):
            bits = self.metering.tick(s, minute, second, valid)
        else:
            self.silent += 1
            bits = self.metering.clock_tick(minute, second, valid)
        self.ticks += 1
        if bits != REJECTED and bits & MINUTE:
            self.on_minute(minute, bits)
        return bits

    def on_minute(self, minute, bits):
        """A minute boundary was processed (the journal commit hooks in here)."""

    def idle(self):
        """Background work between seconds (journal compaction hooks in here)."""


def run_board():
    """ESP32 entry point: build the board's HAL and run the meter forever."""
    import asyncio
    import time
    import board_config
    from esp32hal.factory import build_hal

    hal = build_hal(board_config)
    cfg = board_config
    meter = Meter(hal.clock, hal.metrology,
                  limits=Limits(cfg.MAX_POWER_W, cfg.MAX_CURRENT_MA))
    meter.start(hal.reset_kind)

    async def metering_task():
        deadline = time.ticks_add(time.ticks_ms(), _TICK_MS)
        while True:
            meter.step()
            if hal.wdt is not None:
                hal.wdt.feed()
            meter.idle()
            wait = time.ticks_diff(deadline, time.ticks_ms())
            if wait > 0:
                await asyncio.sleep_ms(wait)
            deadline = time.ticks_add(deadline, _TICK_MS)

    asyncio.run(metering_task())
