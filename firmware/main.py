# Board entry point: build the board's HAL and the meter, then run it as asyncio tasks.
#
# This is the shell: the only firmware file that owns time and asyncio. Three tasks:
#   metering   once a second on a drift-free deadline: step(), feed the watchdog, idle()
#              (compaction), and a garbage collection every GC_EVERY_S seconds so the
#              commit and Last Gasp paths (a few KB of hashlib objects) never trigger one;
#   power      woken by the power-good edge (ThreadSafeFlag set from the pin IRQ); polls the
#              Last Gasp machine every FAST_MS while it asks for FAST, and light-sleeps the
#              board in naps (hal.sleep) while it says SLEEP, polling after each nap;
#   B-route    serve() every SERVE_MS while a radio module slot exists.

import asyncio
import gc
import time

import board_config
from esp32hal.factory import build_hal
from meter.assembly import build_meter
from meter.outage.lastgasp import FAST, FAST_MS, SLEEP

TICK_MS = 1000
SERVE_MS = 20  # B-route polling period
GC_EVERY_S = 10  # seconds between explicit garbage collections


def run():
    hal = build_hal(board_config)
    meter = build_meter(hal, board_config)
    meter.boot(hal.reset_kind)
    wake = asyncio.ThreadSafeFlag()
    if hal.power_good is not None:
        hal.power_good.irq(lambda pin: wake.set())

    async def metering_task():
        deadline = time.ticks_add(time.ticks_ms(), TICK_MS)
        n = 0
        while True:
            meter.step()
            if hal.wdt is not None:
                hal.wdt.feed()
            meter.idle()
            n += 1
            if n >= GC_EVERY_S:
                n = 0
                gc.collect()
            wait = time.ticks_diff(deadline, time.ticks_ms())
            if wait > 0:
                await asyncio.sleep_ms(wait)
            deadline = time.ticks_add(deadline, TICK_MS)

    async def power_task():
        while True:
            await wake.wait()
            act = meter.power_poll()
            while act == FAST or act == SLEEP:
                if act == SLEEP:
                    hal.sleep()  # one light-sleep nap while mains is off
                    await asyncio.sleep_ms(0)
                else:
                    await asyncio.sleep_ms(FAST_MS)
                act = meter.power_poll()

    async def broute_task():
        while True:
            meter.serve()
            await asyncio.sleep_ms(SERVE_MS)

    async def main():
        asyncio.create_task(power_task())
        if meter.broute is not None:
            asyncio.create_task(broute_task())
        await metering_task()

    asyncio.run(main())


run()
