"""Small ints for the meter's life: at dates after 2034 (seconds since 2000 pass 2**30 on
2034-01-10) and up to 2099-12-31, every integer the tick, the minute rollover (with its
journal commit), the Last Gasp poll and a B-route read compute is a small int of a 31-bit
port, -2**30 <= v < 2**30 (a long int there allocates, and fails under heap_lock).

The 64-bit ports cannot show this (their small ints are 63-bit), so the check runs under
CPython: a sys.settrace hook over the firmware's frames (firmware/meter, the host clock
the scenarios run on, the ESP32 clock) inspects every int local after each line and every
return value, and the attributes (ints, arrays, int lists and tuples) of the meter's parts
after each entry-point call. The checker tests itself first: it must catch a planted
`now.minute * 60` at 2050 and not at 2024, and it must have seen minutes (> 2**24) in the
paths it watched, so it cannot pass by watching nothing."""

import array
import os
import sys
import types

import pytest

from paths import BOARD, FIRMWARE
from rigs import KEY, MeterRig
from hosthal.radio import MASTER, MemoryModule
from echonet_frames import request

from meter import caltime

LIMIT = 1 << 30
WATCHED = (os.path.join(FIRMWARE, "meter") + os.sep,
           os.path.join(BOARD, "hosthal", "clock.py"),
           os.path.join(BOARD, "esp32hal", "clock.py"))

# Values that are not arithmetic on time and do not depend on the date: CRC-32 values of
# flash records (u32 by definition; a bounded, date-independent cost on the commit path,
# which allocates its HMAC objects anyway). (file tail, function, local name)
NOT_TIME = {
    ("storage/journal.py", "crc32", None),
    ("storage/journal.py", "_write", "crc"),
}


def _exempt(path, func, name):
    tail = path.replace(os.sep, "/").split("/meter/", 1)[-1]
    for t, f, n in NOT_TIME:
        if tail.endswith(t) and f in (None, func) and n in (None, name):
            return True
    return False


def _big(v):
    return type(v) is int and not -LIMIT <= v < LIMIT


class IntWatch:
    """sys.settrace checker: violations are (where, name, value); `seen` counts the int
    values inspected, `largest` the largest magnitude among the small ones."""

    def __init__(self):
        self.violations = []
        self.seen = 0
        self.largest = 0

    def _note(self, where, name, v):
        if type(v) is not int:
            return
        self.seen += 1
        if _big(v):
            self.violations.append((where, name, v))
        elif abs(v) > self.largest:
            self.largest = abs(v)

    def _frame(self, frame, event, arg):
        path = frame.f_code.co_filename
        func = frame.f_code.co_name
        where = "%s:%d %s" % (os.path.relpath(path, os.path.dirname(FIRMWARE)),
                              frame.f_lineno, func)
        for name, v in frame.f_locals.items():
            if not _exempt(path, func, name):
                self._note(where, name, v)
        if event == "return" and not _exempt(path, func, None):
            self._note(where, "<return>", arg)
            if type(arg) is tuple:
                for v in arg:
                    self._note(where, "<return item>", v)

    def _local(self, frame, event, arg):
        if event in ("line", "return"):
            self._frame(frame, event, arg)
        return self._local

    def _global(self, frame, event, arg):
        if frame.f_code.co_filename.startswith(WATCHED):
            return self._local
        return None

    def run(self, fn, *args):
        sys.settrace(self._global)
        try:
            return fn(*args)
        finally:
            sys.settrace(None)

    def attributes(self, label, objs):
        """Every int reachable as an attribute of the objects (and of the firmware objects
        they hold), and the items of their arrays, lists and tuples of ints."""
        seen = set()
        todo = [(label, o) for o in objs]
        while todo:
            where, o = todo.pop()
            if id(o) in seen:
                continue
            seen.add(id(o))
            for name, v in getattr(o, "__dict__", {}).items():
                at = "%s.%s" % (where, name)
                if isinstance(v, (array.array, list, tuple)):
                    for x in v:
                        if isinstance(x, (array.array, list, tuple)):
                            for y in x:
                                self._note(at, "[][]", y)
                        else:
                            self._note(at, "[]", x)
                            if type(x).__module__.startswith(("meter", "hosthal")):
                                todo.append((at + "[]", x))
                elif type(v).__module__.startswith(("meter", "hosthal", "esp32hal")):
                    todo.append((at, v))
                else:
                    self._note(at, "", v)


# -- the scenario: a full meter (journal, control, Last Gasp, B-route) at a given date -----

def wall_s(y, mo, d, hh, mm, ss):
    return caltime.to_minute(y, mo, d, hh, mm) * 60 + ss


def meter_at(start_s):
    from hosthal.flash import NorFlash
    from hosthal.pins import FakeRelay
    from meter.assembly import build_meter

    rig = MeterRig(start_s=start_s, flash=NorFlash(sectors=64), relay=FakeRelay(True))
    radio = MemoryModule()
    rig.hal.radio = radio
    rig.hal.broute_key = MASTER
    rig.meter = build_meter(rig.hal, rig.config, key=KEY)
    rig.meter.boot()
    rig._t0 = rig.clock.ticks_ms()
    for _ in range(3):  # the module is authenticated and announced
        rig.meter.serve()
        rig.seconds(1)
    return rig, radio


# (EPC, EDT): E0/E3 cumulative, E7 instantaneous, EA/EB the fixed-time values with their
# date, E2 the half-hour history of the day set by E5, 97/98 the clock, D3 the coefficient
GETS = (0xE0, 0xE3, 0xE7, 0xE8, 0xEA, 0xEB, 0xE2, 0xE4, 0x97, 0x98, 0xD3, 0xE1, 0xD7)


def parts(m):
    return [m, m.now, m.clock, m.regs, m.capture, m.events, m.store, m.journal, m.limiter,
            m.lastgasp, m.broute, m.echonet]


def scenario(watch, start_s, plant=None):
    """Tick, minute rollovers (a commit each), a B-route read, an outage with the Last Gasp
    poll at ms pace and the restoration, all under the checker; the parts' attributes are
    checked after each call."""
    rig, radio = meter_at(start_s)
    m = rig.meter
    if plant is not None:
        plant(m)
    objs = parts(m)
    for _ in range(20):  # crosses the minute (and the 5- and 30-minute boundaries)
        watch.run(m.step)
        watch.run(m.idle)
        watch.attributes("meter", objs)
        rig.clock.advance(1000)
    radio.inbox.append(request(0x62, [0xE5, 0xE1], tid=7))
    watch.run(m.serve)
    for tid, epc in enumerate(GETS):
        radio.inbox.append(request(0x62, [epc], tid=10 + tid))
    radio.inbox.append(request(0x61, [(0xE5, b"\x00")], tid=40))  # SetC day 0
    for _ in range(4):
        watch.run(m.serve)
        watch.attributes("meter", objs)
    assert len(radio.sent) >= len(GETS), radio.sent
    rig.mains(False)
    for _ in range(300):  # 1.5 s of the fast power path: debounce, freeze, commit, alarm
        watch.run(m.power_poll)
        rig.clock.advance(5)
        if rig.clock.ticks_ms() % 1000 == 0:
            watch.run(m.step)
    watch.attributes("meter", objs)
    assert rig.uplink.sent, "the Last Gasp alarm went out"
    rig.mains(True)
    for _ in range(100):
        watch.run(m.power_poll)
        rig.clock.advance(5)
    for _ in range(3):
        watch.run(m.step)
        watch.run(m.serve)
        rig.clock.advance(1000)
    watch.attributes("meter", objs)
    return rig


DATES = {
    "2034-01-10": wall_s(2034, 1, 10, 13, 59, 50),  # seconds since 2000 passed 2**30 at 13:37
    "2050-06-15": wall_s(2050, 6, 15, 12, 29, 50),
    "2099-12-31": wall_s(2099, 12, 31, 23, 59, 50),  # into 2100-01-01 00:00
}


def planted_read(meter):
    """Wrap the meter's Now.read with code compiled as if it were firmware that computes
    seconds since 2000 (minute * 60): the checker must see it."""
    src = ("def read(clock, _orig):\n"
           "    now = _orig(clock)\n"
           "    seconds = now.minute * 60 + now.second\n"
           "    return now\n")
    code = compile(src, os.path.join(FIRMWARE, "meter", "clock.py"), "exec")
    ns = {}
    exec(code, ns)
    orig = meter.now.read
    meter.now.read = lambda clock: ns["read"](clock, orig)


def test_the_checker_catches_a_planted_minute_times_60_after_2034_and_not_before():
    late = IntWatch()
    scenario(late, DATES["2050-06-15"], plant=planted_read)
    assert any(name == "seconds" for _, name, _ in late.violations), late.violations[:5]
    early = IntWatch()
    scenario(early, wall_s(2024, 8, 22, 12, 29, 50), plant=planted_read)
    assert early.violations == []
    assert early.seen > 10_000 and early.largest > 1 << 23  # it saw minutes since 2000


@pytest.mark.parametrize("date", sorted(DATES))
def test_every_int_of_the_tick_rollover_lastgasp_and_broute_paths_is_small(date):
    watch = IntWatch()
    rig = scenario(watch, DATES[date])
    assert rig.meter.capture.high_water > 0
    assert watch.seen > 10_000 and watch.largest > 1 << 24, (watch.seen, watch.largest)
    assert watch.violations == [], "\n".join("%s %s=%r" % v for v in watch.violations[:20])


# -- the board's clock (esp32hal.clock.EspClock) against a fake RTC ------------------------

class FakeRtc:
    """machine.RTC of the ESP32 port: datetime() -> (y, mo, d, weekday, h, mi, s, us)."""

    def __init__(self, when):
        self.t = when  # (y, mo, d, h, mi, s)
        self.set_to = None

    def datetime(self, t=None):
        if t is not None:
            self.set_to = t
            self.t = (t[0], t[1], t[2], t[4], t[5], t[6])
            return None
        y, mo, d, h, mi, s = self.t
        return (y, mo, d, 0, h, mi, s, 0)

    def memory(self, data=None):
        return b""


def fake_board(monkeypatch, rtc, ticks):
    machine = types.ModuleType("machine")
    machine.RTC = lambda: rtc
    utime = types.ModuleType("time")
    utime.ticks_ms = lambda: ticks[0]
    utime.ticks_diff = lambda a, b: ((a - b + (1 << 29)) & ((1 << 30) - 1)) - (1 << 29)
    rtcmem = types.ModuleType("esp32hal.rtcmem")
    rtcmem.CLOCK_VALID = 0
    rtcmem.get = lambda slot: 1
    rtcmem.put = lambda slot, v: None
    pkg = types.ModuleType("esp32hal")
    pkg.__path__ = [os.path.join(BOARD, "esp32hal")]
    pkg.rtcmem = rtcmem
    for name, mod in (("machine", machine), ("esp32hal", pkg), ("esp32hal.rtcmem", rtcmem),
                      ("esp32hal.clock", None)):
        monkeypatch.delitem(sys.modules, name, raising=False)
        if mod is not None:
            monkeypatch.setitem(sys.modules, name, mod)
    real_time = sys.modules["time"]
    monkeypatch.setitem(sys.modules, "time", utime)
    try:
        from esp32hal.clock import EspClock
    finally:
        sys.modules["time"] = real_time
    import esp32hal.clock as mod
    monkeypatch.setattr(mod, "time", utime)
    return EspClock


@pytest.mark.parametrize("when", [(2034, 1, 10, 13, 59, 58), (2099, 12, 31, 23, 59, 58)])
def test_the_board_clock_reads_and_sets_the_rtc_in_small_ints(monkeypatch, when):
    rtc = FakeRtc(when)
    ticks = [(1 << 30) - 1500]  # ticks_ms() wraps during the reads
    EspClock = fake_board(monkeypatch, rtc, ticks)
    watch = IntWatch()
    clock = watch.run(EspClock)
    minute = caltime.to_minute(*when[:5])
    reads = []
    for _ in range(4):
        m = watch.run(clock.wall_minute)
        reads.append((m, clock.wall_second()))
        ticks[0] = (ticks[0] + 1000) & ((1 << 30) - 1)
    assert reads == [(minute, 58), (minute, 59), (minute + 1, 0), (minute + 1, 1)]
    watch.run(clock.set_wall, minute + 10, 30)
    y, mo, d, wd, h, mi, s, _ = rtc.set_to
    assert caltime.to_minute(y, mo, d, h, mi) == minute + 10 and s == 30
    days = caltime.days_from_civil(y, mo, d)
    assert wd == (days + 5) % 7  # RTC weekday, Monday 0: 2000-01-01 was a Saturday
    assert watch.run(clock.wall_minute) == minute + 10 and clock.wall_second() == 30
    ticks[0] = (ticks[0] + 3_600_000) & ((1 << 30) - 1)  # an hour on: the RTC is re-read
    rtc.t = (rtc.t[0], rtc.t[1], rtc.t[2], rtc.t[3], rtc.t[4], rtc.t[5])
    watch.run(clock.wall_minute)
    assert watch.seen > 50 and watch.violations == [], watch.violations[:10]


def test_a_planted_seconds_since_2000_in_the_board_clock_is_caught():
    """The old EspClock.wall_minute (time.time() - epoch, then // 60) at 2034-01-10 14:00."""
    src = ("def wall_minute(t):\n"
           "    s = t - 0\n"
           "    return s // 60\n")
    ns = {}
    exec(compile(src, os.path.join(BOARD, "esp32hal", "clock.py"), "exec"), ns)
    watch = IntWatch()
    watch.run(ns["wall_minute"], wall_s(2034, 1, 10, 14, 0, 0))
    assert {n for _, n, _ in watch.violations} == {"t", "s"}


def test_the_crc_exemption_is_narrow():
    """Only CRC values are exempt: any other value in the journal is still checked."""
    journal = os.path.join(FIRMWARE, "meter", "storage", "journal.py")
    assert _exempt(journal, "_write", "crc") and _exempt(journal, "crc32", None)
    assert not _exempt(journal, "_write", "key") and not _exempt(journal, "_parse", "crc")
    assert not _exempt(os.path.join(FIRMWARE, "meter", "storage", "store.py"), "_commit",
                       "crc")
