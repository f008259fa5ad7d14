# The retained copy of the registers (Store.retain(), every metering second) allocates nothing
# under the MicroPython unix port: proven with micropython.heap_lock().
# scenario-heap: 200k (the simulated 40 KB flash array lives in the heap, with the .mpy code)

import gc
import micropython

from hosthal.flash import NorFlash

flash = NorFlash(10)  # first, while the heap is empty (40 KB in one block)
gc.collect()

from meter.events import EventLog  # noqa: E402
from meter.metering.intervals import FiveMinuteRing, HalfHourHistory  # noqa: E402
from meter.metering.intervals import IntervalCapture  # noqa: E402
from meter.metering.registers import EnergyRegisters  # noqa: E402
from meter.clock import Now  # noqa: E402
from meter.mac import Hmac  # noqa: E402
from meter.metering.registers import FWD  # noqa: E402
from meter.storage import retained as R  # noqa: E402
from meter.storage.assembly import build_storage  # noqa: E402
from hosthal.retained import RamRetained  # noqa: E402


def store_on(flash, mem):
    regs = EnergyRegisters()
    cap = IntervalCapture(regs, five=FiveMinuteRing(24), half=HalfHourHistory(1))
    s = build_storage(flash, Hmac(b"k" * 32), regs, cap, EventLog(16), half_blocks=4,
                      retained=mem)
    s.restore(Now())
    return s, regs


mem = RamRetained()
store, regs = store_on(flash, mem)
regs.add(FWD, 1500)
store.commit_minute()
store.retain()
writes = mem.writes
micropython.heap_lock()
try:
    for _ in range(2000):
        regs.add(FWD, 1500)
        store.retain()
finally:
    micropython.heap_unlock()
assert mem.writes - writes == 2000
total = regs.total_joules(FWD)
store = regs = None
gc.collect()
again, regs2 = store_on(flash, mem)  # a crash: RAM gone, flash and retained memory kept
assert again.retained_state == R.USED, again.retained_state
assert regs2.total_joules(FWD) == total
print("PASS")
