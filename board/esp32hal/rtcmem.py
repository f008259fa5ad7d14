# RTC slow memory: flag slots and the retained memory, kept across soft reset, WDT reset, panic
# and deep sleep, lost when the chip loses power (together with the RTC's time, which is why
# the clock's validity flag lives here and not in a file).
#
# Layout of machine.RTC().memory() (2 KB user memory on the ESP32 port):
#   0   b"MTR1"
#   4   SLOTS bytes, one per flag (get()/put())
#   20  RETAINED_SIZE bytes: meter.hal.RetainedMemory (RtcRetained, the registers' running
#       copy, meter.storage.retained), valid once the memory is at least RETAINED_END long
# Every writer keeps the whole layout: put() rewrites the memory it read, RtcRetained writes
# its image with the slots it holds (put() updates them too). memory(buf) copies buf into
# RTC memory and allocates nothing; the read (memory()) allocates and is used at boot only.

from micropython import const
import machine

from meter.hal import RetainedMemory

SLOTS = const(16)
CLOCK_VALID = const(0)  # 1 while the RTC holds a time set by command or a time source
_MAGIC = b"MTR1"
_LEN = const(20)  # len(_MAGIC) + SLOTS
RETAINED_SIZE = const(256)
RETAINED_END = const(276)  # _LEN + RETAINED_SIZE

_retained = None  # the RtcRetained made by the factory (its image holds the slots too)


def _load(n=_LEN):
    raw = machine.RTC().memory()
    buf = bytearray(max(n, len(raw)))
    if len(raw) >= _LEN and raw[:4] == _MAGIC:
        buf[:len(raw)] = raw
    else:
        buf[:4] = _MAGIC
    return buf


def get(slot):
    """The byte in slot (0 after power-on)."""
    if not 0 <= slot < SLOTS:
        raise ValueError("E_RTCMEM_SLOT")
    return _load()[4 + slot]


def put(slot, value):
    if not 0 <= slot < SLOTS:
        raise ValueError("E_RTCMEM_SLOT")
    buf = _load()
    buf[4 + slot] = value & 0xFF
    if _retained is not None:
        _retained.image[4 + slot] = value & 0xFF
    machine.RTC().memory(buf)


class RtcRetained(RetainedMemory):
    """meter.hal.RetainedMemory in RTC slow memory (one per board: build it once)."""

    SIZE = RETAINED_SIZE

    def __init__(self):
        global _retained
        self._rtc = machine.RTC()
        raw = self._rtc.memory()
        self.image = _load(RETAINED_END)[:RETAINED_END]
        self._valid = len(raw) >= RETAINED_END and raw[:4] == _MAGIC
        self._tail = memoryview(self.image)[_LEN:RETAINED_END]
        _retained = self

    def read(self, buf):
        if not self._valid:
            return False
        buf[:] = self._tail
        return True

    def write(self, buf):
        self._tail[:] = buf
        self._rtc.memory(self.image)
        self._valid = True
