# RTC slow memory: flag slots and the retained memory, validated at boot, cleared at power-on.
#
# machine.RTC().memory() (2 KB user memory on the ESP32 port) survives soft reset, WDT reset,
# panic and deep sleep. It is NOT initialised at power-on, and a brown-out (reported as
# PWRON_RESET, see resetcause.py) may leave the old contents readable: stale bytes that look
# valid. So load() runs once at boot, before anything reads a slot: on a power-on/brown-out
# reset, or when the magic or the header CRC does not match, the whole block is cleared (flags
# 0, retained copy absent) and written back. Only a reset that keeps RTC memory keeps them.
#
# Layout (RETAINED_END bytes, one RAM image `_image` mirrors it; every write stores it whole):
#   0   b"MTR2"
#   4   SLOTS bytes, one per flag (get()/put())
#   20  u16 CRC-16/CCITT-FALSE of bytes 0..19 (the header)
#   22  2 bytes padding (0)
#   24  RETAINED_SIZE bytes: meter.hal.RetainedMemory (RtcRetained, the registers' running
#       copy, meter.storage.retained), which carries its own sequence numbers and CRC-16 per
#       block: the header CRC does not cover it, so the per-second write() stays one copy
# memory(buf) copies buf into RTC memory and allocates nothing; the read (memory()) allocates
# and runs in load() only.

from micropython import const
import machine

from meter.hal import RetainedMemory

SLOTS = const(16)
CLOCK_VALID = const(0)  # 1 while the RTC holds a time set by command or a time source
CRASHES = const(1)  # crash-loop counter (bootguard.CrashCounter): resets not asked for
_MAGIC = b"MTR2"
_LEN = const(20)  # len(_MAGIC) + SLOTS: the bytes the header CRC covers
_HDR = const(24)  # header with CRC and padding
RETAINED_SIZE = const(256)
RETAINED_END = const(280)  # _HDR + RETAINED_SIZE

_image = None  # bytearray(RETAINED_END): the layout as last written
_kept = False  # the retained area holds a copy written since the last clear


def crc16(buf, n):
    """CRC-16/CCITT-FALSE of buf[0:n] (bitwise: the header is 20 bytes, written rarely)."""
    c = 0xFFFF
    for i in range(n):
        c ^= buf[i] << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
    return c


def _seal(img):
    c = crc16(img, _LEN)
    img[_LEN] = c & 0xFF
    img[_LEN + 1] = c >> 8


def load(power_on=False):
    """Read RTC memory at boot (once, before any slot is read). power_on: the reset cause was
    power-on or brown-out (resetcause.RESET_POWER_ON), when RTC memory cannot be trusted
    whatever it reads. Returns True when the contents were kept, False when cleared."""
    global _image, _kept
    rtc = machine.RTC()
    raw = rtc.memory()
    img = bytearray(RETAINED_END)
    ok = (not power_on and len(raw) >= _HDR and raw[:4] == _MAGIC
          and crc16(raw, _LEN) == raw[_LEN] | raw[_LEN + 1] << 8)
    if ok:
        n = min(len(raw), RETAINED_END)
        img[:n] = raw[:n]
        _kept = len(raw) >= RETAINED_END
    else:
        img[:4] = _MAGIC
        _seal(img)
        _kept = False
        rtc.memory(img)
    _image = img
    return ok


def _img():
    if _image is None:
        load()
    return _image


def get(slot):
    """The byte in slot (0 after power-on, brown-out or a damaged header)."""
    if not 0 <= slot < SLOTS:
        raise ValueError("E_RTCMEM_SLOT")
    return _img()[4 + slot]


def put(slot, value):
    if not 0 <= slot < SLOTS:
        raise ValueError("E_RTCMEM_SLOT")
    img = _img()
    img[4 + slot] = value & 0xFF
    _seal(img)
    machine.RTC().memory(img)


class RtcRetained(RetainedMemory):
    """meter.hal.RetainedMemory in RTC slow memory (one per board: build it once)."""

    SIZE = RETAINED_SIZE

    def __init__(self):
        self._rtc = machine.RTC()
        self.image = _img()
        self._tail = memoryview(self.image)[_HDR:RETAINED_END]

    def read(self, buf):
        if not _kept:
            return False
        buf[:] = self._tail
        return True

    def write(self, buf):
        global _kept
        self._tail[:] = buf
        self._rtc.memory(self.image)
        _kept = True
