# The bench console's idle poll allocates nothing under the MicroPython unix port (proven with
# micropython.heap_lock()): nothing received, nothing waiting to be sent, with bench mode
# off and with it on (its timeout timer armed), while the meter steps as on the board.

import micropython

from meter.assembly import build_meter
from meter.hal import BenchConsole
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.loads import ConstantLoad
from hosthal.pins import FakeRelay, ScriptedPowerGood
from hosthal.uplink import FakeUplink


class Config:
    METER_ID = b"MPYHEAP1"
    CONSOLE = True
    LASTGASP = {}


class QuietPort:
    """A serial line nobody types on: readinto() returns 0 (EspUart's answer)."""

    def __init__(self):
        self.reads = 0
        self.tx = bytearray()

    def readinto(self, buf):
        self.reads += 1
        return 0

    def write(self, buf):
        self.tx.extend(buf)
        return len(buf)

    def any(self):
        return 0


def run(bench_pin):
    clock = VirtualClock(wall_s=9_000 * 86_400 + 6 * 3600)
    port = QuietPort()
    hal = HostHal(clock, ConstantLoad(1500), power_good=ScriptedPowerGood(1),
                  uplink=FakeUplink(), relay=FakeRelay(),
                  console=BenchConsole(port, ScriptedPowerGood(bench_pin)))
    meter = build_meter(hal, Config(), key=b"k" * 32)
    meter.boot()
    assert meter.console is not None and meter.console.bench == (2 if bench_pin else 0)
    for _ in range(3):
        meter.step()
        meter.console_poll()
        clock.advance(1000)
    n = 0
    micropython.heap_lock()
    try:
        for i in range(3000):  # 60 s of 20 ms console polls
            n += meter.console_poll()
            clock.advance(20)
            if i % 50 == 49:
                meter.step()
    finally:
        micropython.heap_unlock()
    assert n == 0 and port.reads >= 3000, (n, port.reads)
    assert meter.console.bench == (2 if bench_pin else 0)
    # the metering step through the wrapper with a load injected, then handing banked
    # energy (an injected failure's) back to the registers: allocation-free as well
    ld = meter.console.load
    ld.start(1000, meter.now.ms)
    ld.bank[0] = 50_000
    ld._owed = True
    j0 = meter.regs.total_joules(0)
    micropython.heap_lock()
    try:
        for _ in range(5):
            meter.step()
            clock.advance(1000)
    finally:
        micropython.heap_unlock()
    ld.stop()
    assert ld.injected_j >= 4000 and ld.bank[0] < 50_000, (ld.injected_j, ld.bank)
    assert meter.regs.total_joules(0) - j0 >= 5 * 1500 + 4000, meter.regs.total_joules(0)
    return port


run(0)
run(1)
print("PASS")
