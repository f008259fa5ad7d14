# The firmware's bench console under the MicroPython unix port, served on a pseudo-terminal.
#
# A shell like the board's: a meter built by meter.assembly.build_meter on the host HAL (a
# virtual clock running CONSOLE_SPEED times real time, a constant household load behind a
# relay with a feedback contact, power-good, a recording uplink, a journal on a simulated
# NOR flash, an in-memory B-route module) with the CONSOLE setting on, its console port the
# master side of a pty whose fd the test passed (CONSOLE_FD, non-blocking). The loop runs the
# board shell's cadence in virtual time: 20 ms slices (power task, console task, B-route),
# a metering step every 1000 ms. The host tool talks to the slave side through pyserial.
# On SIGINT (KeyboardInterrupt) it prints one STATS line: metering steps, the longest step
# and console poll (us, real time), and how far the loop ever fell behind real time (ms).

import os
import time

from meter.assembly import build_meter
from meter.hal import BenchConsole
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from hosthal.loads import ConstantLoad
from hosthal.pins import ScriptedPowerGood, TimedRelay
from hosthal.radio import MASTER, MemoryModule
from hosthal.uplink import FakeUplink

SLICE_MS = 20


class Config:
    METER_ID = b"MPYCON01"
    UNIT = 0x04  # 0.1 Wh counts
    CONSOLE = True
    CONSOLE_BENCH_S = 900
    LASTGASP = {}


class FdPort:
    """meter.hal.Uart over a non-blocking fd: readinto()/write() return 0 when they would
    block (the unix port's FileIO answers None then)."""

    def __init__(self, fd):
        self.f = open(fd, "r+b")

    def readinto(self, buf):
        try:
            return self.f.readinto(buf) or 0
        except OSError:  # EIO: no client has the slave open
            return 0

    def write(self, buf):
        try:
            return self.f.write(buf) or 0
        except OSError:
            return 0

    def any(self):
        return 0


def env_int(name, default):
    v = os.getenv(name)
    return int(v) if v else default


def main():
    speed = env_int("CONSOLE_SPEED", 10)
    key = bytes.fromhex(os.getenv("CONSOLE_KEY"))
    clock = VirtualClock(wall_s=env_int("CONSOLE_START_S", 9_000 * 86_400 + 8 * 3600))
    relay = TimedRelay(clock)
    port = FdPort(env_int("CONSOLE_FD", 3))
    hal = HostHal(clock, ConstantLoad(env_int("CONSOLE_WATTS", 900)),
                  power_good=ScriptedPowerGood(1), uplink=FakeUplink(), relay=relay,
                  flash=NorFlash(64), radio=MemoryModule(), broute_key=MASTER,
                  console=BenchConsole(port, ScriptedPowerGood(env_int("CONSOLE_BENCH_PIN", 0))))
    meter = build_meter(hal, Config(), key=key)
    meter.boot()
    print("READY", meter.meter_id.decode(), "speed", speed)
    t0 = time.ticks_ms()
    virtual = 0  # virtual ms run
    acc = 0
    steps = 0
    poll_us_max = 0
    lag_max = 0
    try:
        while True:
            due = time.ticks_diff(time.ticks_ms(), t0) * speed
            lag = (due - virtual) // speed
            if lag > lag_max and steps > 2:
                lag_max = lag
            while virtual < due:
                meter.power_poll()
                t = time.ticks_us()
                meter.console_poll()
                us = time.ticks_diff(time.ticks_us(), t)
                if us > poll_us_max:
                    poll_us_max = us
                meter.serve()
                clock.advance(SLICE_MS)
                virtual += SLICE_MS
                acc += SLICE_MS
                if acc >= 1000:
                    acc -= 1000
                    t = time.ticks_us()
                    meter.step()
                    meter.note_step_us(time.ticks_diff(time.ticks_us(), t))
                    meter.idle()
                    steps += 1
            meter.console_poll()
            time.sleep_ms(2)
    except KeyboardInterrupt:
        pass
    print("STATS steps=%d virtual_s=%d step_us_max=%d poll_us_max=%d lag_ms_max=%d" % (
        steps, virtual // 1000, meter.step_us_max, poll_us_max, lag_max))


main()
