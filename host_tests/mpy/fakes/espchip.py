# The simulated ESP32 behind the fake machine, esp32, network and time modules: silicon state
# that outlives a reset, and the world wired to the pins. Host-test code, never frozen.
#
# What each reset keeps, as the ESP32 does it (MicroPython 1.26-1.29 on ESP-IDF 5):
#   kind        reset_cause()    RTC time   RTC memory      pad hold   GPIO regs  WDT    flash
#   power_on    PWRON_RESET      2000-01-01 lost (len 0)    released   reset      off    kept
#   en_pin      PWRON_RESET      2000-01-01 lost            released   reset      off    kept
#   brownout    PWRON_RESET      2000-01-01 KEPT, stale     released   reset      off    kept
#   wdt         WDT_RESET        kept       kept            kept       reset      off    kept
#   hard        HARD_RESET       kept       kept            kept       reset      off    kept
#     (machine.reset() and a panic: ESP_RST_SW / ESP_RST_PANIC)
#   deepsleep   DEEPSLEEP_RESET  kept       kept            kept       reset      off    kept
#   soft        SOFT_RESET       kept       kept            kept       KEPT       RUNS   kept
# RTC user memory is RTC_NOINIT: after a brown-out it is not initialised (the harsh reading
# of issue 10 finding 9: a validity flag written before the dip still reads 1). A chip reset
# turns every pad that is not held back into an unconnected input (output register 0); a
# held pad keeps its level until hold is released. A soft reset leaves the GPIO matrix
# alone but removes the pin IRQ handlers; the task watchdog keeps running across it.
#
# The reset itself is control flow: reset(kind) updates this state and raises Reset (a
# BaseException, so no `except Exception` in the firmware swallows it); the harness
# (boardsim) catches it and boots the firmware again in the same process with fresh modules.
# Time is virtual: ms since this boot (ticks) and the RTC in ms since 2000 advance only in
# advance(ms) (and time.sleep*, machine.lightsleep); a missed watchdog feed resets there.

import sys

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_CAUSE = {"power_on": PWRON_RESET, "en_pin": PWRON_RESET, "brownout": PWRON_RESET,
          "wdt": WDT_RESET, "hard": HARD_RESET, "panic": HARD_RESET,
          "deepsleep": DEEPSLEEP_RESET, "soft": SOFT_RESET}
_LOSES_RTC = ("power_on", "en_pin", "brownout")  # RTC domain reset: time, holds
_LOSES_RTC_MEM = ("power_on", "en_pin")

# GPIOs per chip: (valid, input-only, PCNT units, UART ids)
CHIPS = {
    "esp32": (tuple(range(0, 20)) + (21, 22, 23, 25, 26, 27) + tuple(range(32, 40)),
              (34, 35, 36, 37, 38, 39), 8, (0, 1, 2)),
    "esp32s3": (tuple(range(0, 22)) + tuple(range(26, 49)), (), 4, (0, 1, 2)),
    "esp32c3": (tuple(range(0, 22)), (), 0, (0, 1)),
}
RTC_MEM_MAX = 2048


class Reset(BaseException):
    """The chip reset (args[0]: the kind). Nothing of the running program survives it."""


class Pad:
    """One GPIO pad: live configuration, the latched copy while held, the IRQ and the
    electrical level last seen (for edges)."""

    def __init__(self, num):
        self.num = num
        self.clear()
        self.hold = False
        self.held = None  # (mode, out, pull) latched by hold
        self.level = None
        self.gen = 0  # bumped at every reset: IRQs scheduled before it never run

    def clear(self):
        """The state after a chip reset: input, output disabled, register 0, no pull."""
        self.mode = None  # None (reset state, input), "in", "out", "od"
        self.out = 0
        self.pull = None  # None, "up", "down"
        self.handler = None
        self.trigger = 0
        self.obj = None  # the Pin object the IRQ handler is called with


# ---- the chip ------------------------------------------------------------------------------
chip = "esp32"
epoch_1970 = False  # time.time() epoch of the port build (ESP32 port: 2000)
boots = 0  # boots since the process started (a generation stamp for objects)
cause = PWRON_RESET
ms = 0  # ms since this boot
# ticks_ms() = tick_base + ms. The unix port's C asyncio (_asyncio.TaskQueue) stamps a task
# pushed without a time with the host's real ticks; tick_base keeps the virtual ticks a
# fixed 2**28 ms ahead of those, so such a task is always due at once (as it is on the
# board) whatever the virtual time, for up to 2**28 ms (74 h) of virtual time per boot.
tick_base = 0
rtc_ms = 0  # RTC time: ms since 2000-01-01 00:00
rtc_mem = b""
pads = {}
wdt_timeout = None  # ms, while the watchdog runs
wdt_fed = 0
counters = {}  # PCNT unit -> machine.Counter
uarts = {}  # UART id -> machine.UART of this boot
lightsleeps = []  # ms asked of each machine.lightsleep()
resets = []  # (kind, ms at reset) of every reset so far

# ---- the world wired to the chip ---------------------------------------------------------
inputs = {}  # pin -> level or a function() -> level (what drives an input pad)
ext_pull = {}  # pin -> the level an external resistor gives the pad while nothing drives it
watched = {}  # pin -> [(boot, ms, level)] every change of the pad's level
timeline = []  # [(at_ms, fn)] world events, run by advance() when their time comes


def valid(num, output=False):
    ok, inonly, _, _ = CHIPS[chip]
    if num not in ok:
        raise ValueError("invalid pin")
    if output and num in inonly:
        raise ValueError("pin can only be input")


def pad(num):
    p = pads.get(num)
    if p is None:
        p = pads[num] = Pad(num)
        p.level = level(num)
    return p


def level(num):
    """The pad's electrical level now: 0, 1 or None (floating)."""
    p = pads.get(num)
    mode, out, pull = (None, 0, None) if p is None else (
        p.held if p.hold else (p.mode, p.out, p.pull))
    if mode == "out" or (mode == "od" and out == 0):
        return out
    src = inputs.get(num)
    if src is not None:
        return src() if callable(src) else src
    if num in ext_pull:
        return ext_pull[num]
    if pull == "up":
        return 1
    if pull == "down":
        return 0
    return None


def settle():
    """Re-evaluate every pad after a change: log watched levels, fire IRQs and counters."""
    for num in list(pads):
        p = pads[num]
        new = level(num)
        old = p.level
        if new == old:
            continue
        p.level = new
        if num in watched:
            watched[num].append((boots, ms, new))
        if old is None or new is None:
            continue
        rising = new > old
        for c in counters.values():
            c._edge(num, rising)
        if p.handler is not None and p.trigger & (1 if rising else 2):
            _schedule(p)


def _schedule(p):
    # ESP32: every Pin.irq handler is scheduled (mp_sched_schedule from the ISR), hard or
    # not; a full queue drops the edge silently
    import micropython

    gen = p.gen

    def run(_):
        if p.gen == gen and p.handler is not None and p.obj is not None:
            p.handler(p.obj)
    try:
        micropython.schedule(run, None)
    except RuntimeError:
        pass


def drive(num, value):
    """The world drives an input (a level or a function of the other pads)."""
    inputs[num] = value
    pad(num)
    settle()


def watch(num):
    watched.setdefault(num, [])
    pad(num)


def at(when_ms, fn):
    timeline.append((when_ms, fn))
    timeline.sort(key=lambda e: e[0])


def advance(dt):
    """Let dt ms of virtual time pass (world events on the way, a missed feed resets)."""
    global ms, rtc_ms
    end = ms + dt
    while True:
        nxt = end
        if timeline and timeline[0][0] < nxt:
            nxt = timeline[0][0]
        if wdt_timeout is not None and wdt_fed + wdt_timeout < nxt:
            step = wdt_fed + wdt_timeout - ms
            ms += step
            rtc_ms += step
            reset("wdt")
        if nxt > ms:
            rtc_ms += nxt - ms
            ms = nxt
        if timeline and timeline[0][0] <= ms:
            timeline.pop(0)[1]()
            settle()
            continue
        if ms >= end:
            return


class Idle(BaseException):
    """The board waits for ever: no timer, no world event, no running watchdog."""


class Stop(BaseException):
    """A scenario ends the running program to look at it (stop_at())."""


def stop_at(when_ms):
    def stop():
        raise Stop(when_ms)
    at(when_ms, stop)


def idle(timeout):
    """The main task sleeps for timeout ms (-1: for ever) or until the next world event,
    whichever comes first (an edge may wake it). A wait for ever with nothing to come
    raises Idle; a running watchdog resets the chip first."""
    if timeout < 0:
        if timeline:
            timeout = max(timeline[0][0] - ms, 0)
        elif wdt_timeout is not None:
            timeout = wdt_fed + wdt_timeout - ms + 1
        else:
            raise Idle(ms)
    elif timeline and timeline[0][0] < ms + timeout:
        timeout = max(timeline[0][0] - ms, 0)
    advance(timeout)


def reset(kind):
    """Reset the chip the way `kind` does (see the table above) and end the running program
    by raising Reset(kind)."""
    global cause, ms, rtc_ms, rtc_mem, wdt_timeout, boots
    if kind not in _CAUSE:
        raise ValueError("unknown reset kind " + kind)
    resets.append((kind, ms))
    cause = _CAUSE[kind]
    if kind != "soft":
        ms = 0
        wdt_timeout = None
        counters.clear()
    if kind in _LOSES_RTC:
        rtc_ms = 0
    if kind in _LOSES_RTC_MEM:
        rtc_mem = b""
    for p in pads.values():
        p.gen += 1  # IRQs of the old program never run
        p.handler = None
        p.obj = None
        if kind in _LOSES_RTC:
            p.hold = False
            p.held = None
        if kind != "soft":
            p.clear()
    uarts.clear()
    timeline.clear()  # stop points and world events belonged to the program that ended
    boots += 1
    settle()
    raise Reset(kind)


def power_on(name="esp32"):
    """A chip fresh from the factory powered for the first time (flash contents as given)."""
    global chip, cause, ms, rtc_ms, rtc_mem, wdt_timeout, tick_base
    import utime  # the port's own time module (this one's `time` is the fake)

    tick_base = utime.ticks_ms() + (1 << 28)
    chip = name
    cause = PWRON_RESET
    ms = rtc_ms = 0
    rtc_mem = b""
    wdt_timeout = None
    pads.clear()
    counters.clear()
    uarts.clear()


def feed():
    global wdt_fed
    wdt_fed = ms


def start_wdt(timeout):
    global wdt_timeout, wdt_fed
    wdt_timeout = timeout
    wdt_fed = ms


def set_rtc_mem(data):
    global rtc_mem
    rtc_mem = bytes(data)


def purge(keep):
    """Forget every module imported since `keep` was taken (RAM is gone after a reset)."""
    for name in list(sys.modules):
        if name not in keep:
            del sys.modules[name]
