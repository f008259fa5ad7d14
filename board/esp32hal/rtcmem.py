# Small flag slots in RTC memory: kept across soft reset, WDT reset and deep sleep, lost
# when the chip loses power (together with the RTC's time, which is why the clock's
# validity flag lives here and not in a file).
#
# Layout: b"MTR1" then SLOTS bytes, one per flag. Other users of RTC().memory() on the
# board must keep this layout (read-modify-write through get()/put()).

from micropython import const
import machine

SLOTS = const(16)
CLOCK_VALID = const(0)  # 1 while the RTC holds a time set by command or a time source
_MAGIC = b"MTR1"
_LEN = const(20)  # len(_MAGIC) + SLOTS


def _load():
    raw = machine.RTC().memory()
    buf = bytearray(_LEN)
    if len(raw) >= _LEN and raw[:4] == _MAGIC:
        buf[:] = raw[:_LEN]
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
    machine.RTC().memory(buf)
