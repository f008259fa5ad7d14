# bench-heap: 4m (the simulated 256 KB flash lives in the heap; mount churn is counted with gc off)
# Benchmark under the MicroPython unix port: RAM per part of the meter, held and churned.
# Run by tools/bench.py (firmware as .mpy). Prints "figure: name value unit".
#
# Held: gc.mem_alloc() after a collection, before and after building each part with the
# builders of meter.assembly (every module imported first, so bytecode is not counted);
# the journal and store together (and the journal index's arrays by their sizes). Churn: bytes
# allocated by one operation with the collector off (a step, a minute commit, a compaction
# step, a mount of a populated journal, a B-route Get). The unix port is 64-bit: objects
# are up to twice their size on a 32-bit board; the ratios between parts hold.
# The host flash model allocates by itself (a slice copy per page read, a 4 KB 0xFF string
# per sector erase) where an ESP32's Partition.readblocks and erase allocate nothing: each
# churn figure of a flash operation is also given "_excl_host_flash", without that part.

import gc

from hosthal.flash import NorFlash

_host = [0]  # bytes the flash model's own read() and erase_sector() allocated


class _CountedFlash(NorFlash):
    def read(self, offset, buf):
        a = gc.mem_alloc()
        NorFlash.read(self, offset, buf)
        _host[0] += gc.mem_alloc() - a

    def erase_sector(self, sector):
        a = gc.mem_alloc()
        NorFlash.erase_sector(self, sector)
        _host[0] += gc.mem_alloc() - a


flash = _CountedFlash(sectors=64)  # first, while the heap is unfragmented
gc.collect()

from meter import assembly as asm  # noqa: E402
from meter.assembly import Core, build_meter  # noqa: E402
from meter.broute.echonet import service as _svc  # noqa: E402, F401
from meter.broute import pump as _pump  # noqa: E402, F401
from meter.control import assembly as _ctl  # noqa: E402, F401
from meter.events import EventLog  # noqa: E402
from meter.mac import Hmac  # noqa: E402
from meter.metering.intervals import IntervalCapture, HalfHourHistory  # noqa: E402
from meter.metering.registers import EnergyRegisters  # noqa: E402
from meter.metering.frontends.simulated import SimulatedHousehold  # noqa: E402
from meter.outage import assembly as _out  # noqa: E402, F401
from meter.storage.assembly import build_storage  # noqa: E402
from hosthal.board import HostHal  # noqa: E402
from hosthal.clock import VirtualClock  # noqa: E402
from hosthal.pins import FakeRelay, ScriptedPowerGood  # noqa: E402
from hosthal.uplink import FakeUplink  # noqa: E402
from hosthal.radio import MASTER, MemoryModule  # noqa: E402

KEY = b"bench-key-0123456789abcdef012345"


def figure(name, value, unit):
    print("figure:", name, value, unit)


def held():
    gc.collect()
    return gc.mem_alloc()


clock = VirtualClock(wall_s=9_000 * 86_400 + 7 * 3600)
hal = HostHal(clock, SimulatedHousehold(clock, seed=7), power_good=ScriptedPowerGood(1),
              uplink=FakeUplink(True), radio=MemoryModule(MASTER), relay=FakeRelay(True),
              flash=flash, broute_key=MASTER)
mac = Hmac(KEY)
a = held()
regs = EnergyRegisters()
b = held()
figure("ram_held_registers", b - a, "B")
cap = IntervalCapture(regs, half=HalfHourHistory(2))
c = held()
figure("ram_held_capture_rings", c - b, "B")
ev = EventLog(128)
d = held()
figure("ram_held_event_log_128", d - c, "B")
st = build_storage(flash, mac, regs, cap, ev)
e = held()
figure("ram_held_journal_and_store", e - d, "B")
jr = st.journal
arrays = 0
for a in (jr._ixkey, jr._ixslot, jr._ixseq):  # key i32, slot i16, seq i32 per kept key
    arrays += len(a) * (2 if a is jr._ixslot else 4)
figure("ram_journal_index_arrays", arrays, "B")
figure("ram_journal_index_keys", len(jr._ixkey), "keys")

core = Core(None)
g = held()
store = asm.build_storage(hal, core, mac)
h = held()
ctl = asm.build_control(hal, None, core, store, b"SIM00001", KEY)
i = held()
figure("ram_held_limiter_control", i - h, "B")
echo = asm.build_echonet(hal, None, core, store, b"SIM00001")
k = held()
figure("ram_held_echonet", k - i, "B")
br = asm.build_broute(hal, echo, core.events)
m = held()
figure("ram_held_broute", m - k, "B")
lg = asm.build_outage(hal, None, core, store, br, b"SIM00001", mac)
n = held()
figure("ram_held_lastgasp_alarms", n - m, "B")
figure("ram_held_core_store_control_echonet_broute_lastgasp", n - g, "B")

# ---- the whole meter: after boot, churn per operation ------------------------------------
base = held()
meter = build_meter(hal, None, key=KEY)
meter.boot()
figure("ram_held_meter_after_boot_blank", held() - base, "B")


last_host = [0]  # the flash model's share of the last churn() (in `used`)


def churn(fn):
    gc.collect()
    gc.disable()
    h0 = _host[0]
    a0 = gc.mem_alloc()
    r = fn()
    used = gc.mem_alloc() - a0
    last_host[0] = _host[0] - h0
    gc.enable()
    return used, r


steps = rolls = step_b = roll_b = roll_max = comp_n = comp_b = comp_max = 0
roll_x = roll_xmax = comp_x = comp_xmax = 0  # the same without the flash model's share
for _ in range(8 * 3600):  # eight hours: commits, then compaction of a populated journal
    used, bits = churn(meter.step)
    if bits & 1:  # intervals.MINUTE
        rolls += 1
        roll_b += used
        roll_max = max(roll_max, used)
        roll_x += used - last_host[0]
        roll_xmax = max(roll_xmax, used - last_host[0])
    else:
        steps += 1
        step_b += used
    e0 = meter.journal.erases
    used, _ = churn(meter.idle)
    if meter.journal.erases > e0:
        comp_n += 1
        comp_b += used
        comp_max = max(comp_max, used)
        comp_x += used - last_host[0]
        comp_xmax = max(comp_xmax, used - last_host[0])
    meter.serve()
    clock.advance(1000)
figure("ram_churn_per_step", step_b // max(steps, 1), "B")
figure("ram_churn_per_minute_commit_mean", roll_b // max(rolls, 1), "B")
figure("ram_churn_per_minute_commit_max", roll_max, "B")
figure("ram_churn_per_compaction_step_mean", comp_b // max(comp_n, 1), "B")
figure("ram_churn_per_compaction_step_max", comp_max, "B")
figure("ram_churn_per_minute_commit_mean_excl_host_flash", roll_x // max(rolls, 1), "B")
figure("ram_churn_per_minute_commit_max_excl_host_flash", roll_xmax, "B")
figure("ram_churn_per_compaction_step_mean_excl_host_flash", comp_x // max(comp_n, 1), "B")
figure("ram_churn_per_compaction_step_max_excl_host_flash", comp_xmax, "B")
frame = b"\x10\x81\x00\x01\x05\xff\x01\x02\x88\x01\x62\x03\xe0\x00\xe7\x00\xea\x00"
meter.serve()
hal.radio.inbox.append(frame)
used, _ = churn(meter.serve)
figure("ram_churn_per_broute_get_3_props", used, "B")
used, _ = churn(meter.serve)
figure("ram_churn_per_idle_serve", used, "B")
after = held() - base
figure("ram_held_meter_running", after, "B")

# ---- a reboot on the populated journal: mount churn and the first step ------------------
del meter
gc.collect()
base = held()
meter = build_meter(hal, None, key=KEY)
used, rep = churn(meter.boot)
figure("ram_churn_mount_and_boot_populated", used, "B")
figure("ram_churn_mount_and_boot_populated_excl_host_flash", used - last_host[0], "B")
figure("ram_journal_records_at_mount", rep.records, "records")  # each verified (one HMAC)
figure("ram_churn_mount_per_record_excl_host_flash", (used - last_host[0]) // rep.records,
       "B")
used, _ = churn(meter.step)
figure("ram_churn_first_step_after_boot", used, "B")
figure("ram_churn_first_step_after_boot_excl_host_flash", used - last_host[0], "B")
figure("ram_held_meter_after_boot_populated", held() - base, "B")
figure("ram_peak_estimate_held_plus_largest_operation", held() - base + max(roll_max, comp_max),
       "B")
