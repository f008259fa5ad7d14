# Board entry point: boot decisions, the board's HAL and the meter, then supervised tasks.
#
# This is the shell: the only firmware file that owns time and asyncio. Boot, in order:
#   1. recovery: /skip_app or the board's skip pin (esp32hal.bootguard) -> return to the
#      REPL before anything else (no HAL, no watchdog; the relay pad stays as held)
#   2. reset kind, RTC memory validated, crash count (bootguard.start); SAFE_AFTER crash
#      resets in a row -> safe mode: metering and storage only (no radio, no commands)
#   3. build_hal, build_meter; a meter without durable storage (no journal partition or no
#      key) is refused with a console error unless board_config.ALLOW_RAM_ONLY is True
#      (a bench): then it runs, logs NOT_DURABLE and ECHONET 0x88 reports the fault
#   4. meter.boot, then the watchdog is started
#   A boot that raises resets the board (a counted crash) until HALT_AFTER crashes in a row,
#   then stays in the REPL.
# Three tasks, each supervised (esp32hal.supervisor: an exception is printed, logged as
# TASK_FAILED and the task restarted after RESTART_MS; a task failing more than
# MAX_RESTARTS times without a healthy period resets the board, BOARD_RESET logged):
#   metering   once a second on a drift-free deadline: step(), idle() (compaction), a
#              garbage collection every GC_EVERY_S seconds so the commit and Last Gasp paths
#              (a few KB of hashlib objects) never trigger one; it wakes the power task as a
#              heartbeat and feeds the watchdog only when every critical task checked in;
#   power      woken by the power-good edge (ThreadSafeFlag set from the pin IRQ) and by the
#              heartbeat; polls the Last Gasp machine every FAST_MS while it asks for FAST,
#              and light-sleeps the board in naps (hal.sleep) while it says SLEEP;
#   B-route    serve() every SERVE_MS while a radio module slot or an A-route link exists
#              (the MQTT session is driven from serve(): never from the metering task);
#   console    console_poll() every CONSOLE_MS while the bench console is built (the CONSOLE
#              setting, board_config.CONSOLE_UART_ID: a machine.UART of its own, never the
#              REPL's UART0/USB: sys.stdin would compete with the REPL and an open REPL is
#              full code execution); not critical (the watchdog does not wait for it), and
#              each poll does bounded work, so no client can hold the metering task.
# The metering task measures each step (ticks_us) for the console's heap/timing report.
# Ctrl-C (KeyboardInterrupt is not an Exception) stops the shell for the REPL; the watchdog
# keeps running, so create /skip_app and reset before it bites.

import asyncio
import gc
import sys
import time

import board_config
from esp32hal import bootguard

TICK_MS = 1000
SERVE_MS = 20  # B-route polling period
CONSOLE_MS = 20  # bench console polling period (a 64-byte read, two lines at most a poll)
GC_EVERY_S = 10  # seconds between explicit garbage collections
RESTART_MS = 1000  # pause before a failed task is restarted


def run():
    if bootguard.skip_requested(board_config, time.sleep_ms):
        print("boot: application skipped (%s or the skip pin): REPL free, relay held; "
              "remove %s and reset to resume" % (bootguard.SKIP_PATH, bootguard.SKIP_PATH))
        return
    import machine

    from esp32hal.factory import build_hal
    from esp32hal.supervisor import RESET, Supervisor
    from meter import events as ev
    from meter.assembly import build_meter
    from meter.outage.lastgasp import FAST, FAST_MS, SLEEP

    kind, crashes = bootguard.start()
    safe = crashes.safe_mode
    if safe:
        print("boot: SAFE MODE after %d crash resets: metering and storage only" % crashes.count)
    try:
        hal = build_hal(board_config, kind, safe)
        meter = build_meter(hal, board_config, safe_mode=safe)
    except Exception as e:  # a broken deployment: reset (counted) until safe mode, then stop
        sys.print_exception(e)
        if crashes.count < bootguard.HALT_AFTER:
            print("boot: failed, resetting (crash %d)" % (crashes.count + 1))
            machine.reset()
        print("boot: failed %d times in a row: staying in the REPL" % crashes.count)
        return
    if not meter.durable:
        print("meter: ERROR not durable (%s): registers and events would be lost at every "
              "reset" % (", ".join(hal.problems) or "no journal"))
        if not bootguard.ram_only_allowed(board_config):
            print("meter: not metering. Flash the image with its partition table and "
                  "provision /meter.key, or set ALLOW_RAM_ONLY = True in board_config "
                  "(bench only)")
            return
    meter.boot(kind)
    if safe:
        meter.note(ev.SAFE_MODE, crashes.count)

    def note(code, tid, n):
        try:
            meter.note(code, tid, n)
        except Exception as e:  # the log itself failing must not end the supervision
            sys.print_exception(e)

    sup = Supervisor(on_failure=lambda tid, n: note(ev.TASK_FAILED, tid, n),
                     on_healthy=crashes.clear)
    t_metering = sup.add("metering")
    t_power = sup.add("power")
    # one serve task for the B-route radio and the A-route link (Meter.serve drives both)
    serving = meter.broute is not None or meter.aroute is not None
    t_broute = sup.add("broute") if serving else -1
    t_console = sup.add("console", False) if meter.console is not None else -1
    wdt = hal.start_watchdog()
    wake = asyncio.ThreadSafeFlag()
    if meter.power_good is not None:  # the console's injection wrapper when it is built
        meter.power_good.irq(lambda pin: wake.set())

    async def metering_task():
        deadline = time.ticks_add(time.ticks_ms(), TICK_MS)
        n = 0
        while True:
            t = time.ticks_us()
            meter.step()
            meter.note_step_us(time.ticks_diff(time.ticks_us(), t))
            sup.check_in(t_metering)
            wake.set()  # heartbeat: the power task polls and checks in once a second
            if sup.due_feed(time.ticks_ms()) and wdt is not None:
                wdt.feed()
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
            sup.check_in(t_power)
            act = meter.power_poll()
            while act == FAST or act == SLEEP:
                if act == SLEEP:
                    hal.sleep()  # one light-sleep nap while mains is off
                    # an injected failure (the console) leaves the real pin high: no nap
                    # was taken, so pace the polls instead of spinning
                    pg = hal.power_good
                    await asyncio.sleep_ms(0 if pg is not None and not pg.value() else FAST_MS)
                else:
                    await asyncio.sleep_ms(FAST_MS)
                sup.check_in(t_power)
                act = meter.power_poll()

    async def broute_task():
        while True:
            meter.serve()
            sup.check_in(t_broute)
            await asyncio.sleep_ms(SERVE_MS)

    async def console_task():
        while True:
            meter.console_poll()
            sup.check_in(t_console)
            await asyncio.sleep_ms(CONSOLE_MS)

    async def supervised(tid, body):
        while True:
            exc = None  # a task body never returns: a return counts as a failure too
            try:
                await body()
            except Exception as e:
                exc = e
                print("shell: task", sup.names[tid], "failed:")
                sys.print_exception(e)
            if sup.failed(tid, exc, time.ticks_ms()) == RESET:
                print("shell: task", sup.names[tid], "keeps failing: resetting the board")
                note(ev.BOARD_RESET, tid, sup.failures[tid])
                try:
                    meter.power_down()  # commit what can be committed
                except Exception as e:
                    sys.print_exception(e)
                machine.reset()
            await asyncio.sleep_ms(RESTART_MS)

    async def main():
        asyncio.create_task(supervised(t_power, power_task))
        if t_broute >= 0:
            asyncio.create_task(supervised(t_broute, broute_task))
        if t_console >= 0:
            asyncio.create_task(supervised(t_console, console_task))
        await supervised(t_metering, metering_task)

    asyncio.run(main())


run()
