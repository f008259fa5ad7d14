# Fake `machine` for the MicroPython unix port: the ESP32 port's API and semantics over the
# simulated chip in espchip (host-test code; put first on MICROPYPATH by board scenarios).
#
# Pin: Pin(id, mode=None, pull=-1, *, value, drive, hold) as ports/esp32/machine_pin.c:
# Pin(id) alone configures nothing; value= is set before the mode; Pin.IN disables the
# output driver (an unheld pad then floats to its external pull); Pin.OUT is input+output
# (value() reads the pad back); without value= the output register keeps what it holds (0
# after a chip reset); while a pad is held value() and init() change only the registers,
# and an init() given hold= releases the hold (the registers reach the pad) and re-applies
# it; irq handlers are always scheduled (no `hard`). ADC: read_u16() noise. RTC: datetime()
# and memory() (RTC_MEM_MAX bytes, ValueError beyond). WDT: cannot be stopped, feed(); a
# missed feed resets. UART: rxbuf bytes buffered, readinto()/read()
# return None when nothing is waiting (timeout=0). Counter: PCNT units (MicroPython >=
# 1.26; not on the C3). _reset(kind) resets the chip (espchip.reset).

import espchip

PWRON_RESET = espchip.PWRON_RESET
HARD_RESET = espchip.HARD_RESET
WDT_RESET = espchip.WDT_RESET
DEEPSLEEP_RESET = espchip.DEEPSLEEP_RESET
SOFT_RESET = espchip.SOFT_RESET
_UNSET = object()


def reset_cause():
    return espchip.cause


def reset():
    espchip.reset("hard")


def soft_reset():
    espchip.reset("soft")


def _reset(kind):
    espchip.reset(kind)


def unique_id():
    return b"\x24\x6f\x28\xa1\xb2\xc3"


def lightsleep(time_ms=None):
    # RAM, pads and the relay output are kept; the chip wakes after time_ms
    espchip.lightsleeps.append(time_ms)
    espchip.advance(time_ms if time_ms is not None else 0)


def deepsleep(time_ms=None):
    if time_ms:
        espchip.advance(time_ms)
    espchip.reset("deepsleep")


def idle():
    pass


def freq(hz=None):
    return 160_000_000 if hz is None else None


class Pin:
    IN = 1
    OUT = 3  # GPIO_MODE_INPUT_OUTPUT
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    _MODES = {1: "in", 3: "out", 7: "od"}

    def __init__(self, id, *args, **kw):
        espchip.valid(id)
        self.id = id
        self._boot = espchip.boots
        self._pad = espchip.pad(id)
        if args or kw:  # as mp_pin_make_new: Pin(id) alone configures nothing
            self.init(*args, **kw)

    def _live(self):
        if self._boot != espchip.boots:
            raise OSError("Pin object of a program that no longer runs")
        return self._pad

    def init(self, mode=None, pull=-1, *, value=_UNSET, drive=None, hold=None):
        """machine_pin_obj_init_helper's order: value (register), mode, pull, then, when
        hold is given, hold released (the registers reach the pad) and re-enabled."""
        p = self._live()
        if value is not _UNSET:
            p.out = 1 if value else 0
        if mode is not None:
            if mode not in Pin._MODES:
                raise ValueError("invalid pin mode")
            if mode != Pin.IN:
                espchip.valid(self.id, output=True)
            p.mode = Pin._MODES[mode]
        if pull != -1:
            if pull is None:
                p.pull = None
            elif pull in (Pin.PULL_UP, Pin.PULL_DOWN):
                # GPIO 34-39 of the ESP32 have no pull resistors: the request does nothing
                if self.id not in espchip.CHIPS[espchip.chip][1]:
                    p.pull = "up" if pull == Pin.PULL_UP else "down"
            else:
                raise ValueError("invalid pull")
        if hold is not None and self.id not in espchip.CHIPS[espchip.chip][1]:
            p.hold = False  # always released first: outstanding changes reach the pad
            p.held = None
            espchip.settle()
            if hold:
                p.hold = True
                p.held = (p.mode, p.out, p.pull)
        espchip.settle()

    def value(self, v=_UNSET):
        p = self._live()
        if v is _UNSET:
            lv = espchip.level(self.id)
            return 0 if lv is None else lv  # a floating pad reads whatever: 0 here
        p.out = 1 if v else 0  # the register; the pad follows unless held
        espchip.settle()

    def __call__(self, v=_UNSET):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, *, wake=None):
        # no `hard` argument on the ESP32 port: handlers are always scheduled
        p = self._live()
        p.handler = handler
        p.trigger = trigger if handler is not None else 0
        p.obj = self


class ADC:
    """ADC(Pin): read_u16() of a floating input (noise: a counter here)."""

    ATTN_11DB = 3

    def __init__(self, pin, *, atten=None):
        self._n = 0

    def read_u16(self):
        self._n = (self._n * 1103515245 + 12345) & 0xFFFF
        return self._n


class Signal:
    def __init__(self, pin, invert=False):
        self._pin, self._inv = pin, invert

    def value(self, v=_UNSET):
        if v is _UNSET:
            return self._pin.value() ^ self._inv
        self._pin.value((1 if v else 0) ^ self._inv)


class RTC:
    def __init__(self, id=0):
        pass

    def datetime(self, dt=None):
        import time

        if dt is None:
            s = espchip.rtc_ms // 1000
            t = time.gmtime(s + (946684800 if espchip.epoch_1970 else 0))
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], (espchip.rtc_ms % 1000) * 1000)
        if len(dt) != 8:
            raise ValueError("requested length 8 but object has length %d" % len(dt))
        s = time.mktime((dt[0], dt[1], dt[2], dt[4], dt[5], dt[6], 0, 0))
        if espchip.epoch_1970:
            s -= 946684800
        espchip.rtc_ms = s * 1000 + dt[7] // 1000

    def init(self, dt):
        self.datetime(tuple(dt) + (0,) * (8 - len(dt)))

    def memory(self, data=None):
        if data is None:
            return espchip.rtc_mem
        if len(data) > espchip.RTC_MEM_MAX:
            raise ValueError("buffer too long")
        espchip.set_rtc_mem(data)


class WDT:
    """The task watchdog: starts at construction, cannot be stopped (no deinit); a second
    WDT() reconfigures the timeout."""

    def __init__(self, id=0, timeout=5000):
        if timeout <= 0:
            raise ValueError("timeout")
        self.timeout = timeout
        espchip.start_wdt(timeout)

    def feed(self):
        espchip.feed()


class UART:
    INV_TX = 1
    INV_RX = 2
    _HW_FIFO = 128

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, *, tx=None,
                 rx=None, rxbuf=256, txbuf=256, timeout=0, timeout_char=0, **kw):
        if id not in espchip.CHIPS[espchip.chip][3]:
            raise ValueError("UART(%d) does not exist" % id)
        if rxbuf <= self._HW_FIFO:
            rxbuf = self._HW_FIFO + 1  # the IDF driver needs more than the hardware FIFO
        self.id, self.baudrate, self.tx, self.rx = id, baudrate, tx, rx
        self.rxbuf, self.timeout = rxbuf, timeout
        self._rx = bytearray()
        self.sent = bytearray()  # what the board wrote (the far end reads it)
        self.overruns = 0  # bytes the far end sent while the buffer was full
        espchip.uarts[id] = self

    def _feed(self, data):
        """The far end sends data: what does not fit in rxbuf + the FIFO is lost."""
        room = self.rxbuf + self._HW_FIFO - len(self._rx)
        self._rx.extend(data[:max(room, 0)])
        self.overruns += max(len(data) - room, 0)

    def any(self):
        return len(self._rx)

    def read(self, n=-1):
        if not self._rx:
            return None
        n = len(self._rx) if n < 0 else min(n, len(self._rx))
        out = bytes(self._rx[:n])
        self._rx = self._rx[n:]
        return out

    def readinto(self, buf, n=-1):
        if not self._rx:
            return None
        n = min(len(buf) if n < 0 else n, len(self._rx))
        buf[:n] = self._rx[:n]
        self._rx = self._rx[n:]
        return n

    def write(self, buf):
        self.sent.extend(buf)
        return len(buf)

    def flush(self):
        pass


if espchip.CHIPS[espchip.chip][2]:
    class Counter:
        """PCNT unit `id` counting edges of src (MicroPython >= 1.26): value([v]) returns the
        count and optionally sets it; filter_ns at most 12787 (1023 APB cycles)."""
        RISING = 1
        FALLING = 2
        UP = 1
        DOWN = -1

        def __init__(self, id, src=None, **kw):
            if not 0 <= id < espchip.CHIPS[espchip.chip][2]:
                raise ValueError("invalid id")
            self.id = id
            self.init(src, **kw)

        def init(self, src, *, edge=1, direction=1, filter_ns=0):
            if filter_ns > 12787:
                raise ValueError("filter_ns")
            self.src, self.edge, self.direction, self.filter_ns = src, edge, direction, filter_ns
            self._n = 0
            espchip.counters[self.id] = self

        def _edge(self, num, rising):
            if self.src is not None and num == self.src.id and \
                    (rising and self.edge & 1 or not rising and self.edge & 2):
                self._n += self.direction

        def value(self, v=None):
            n = self._n
            if v is not None:
                self._n = v
            return n

        def deinit(self):
            espchip.counters.pop(self.id, None)
