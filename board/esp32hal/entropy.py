# Nonces for the board (hal.random): a hash DRBG seeded from the hardware RNG and ADC noise.
#
# Why not os.urandom alone: on the ESP32 family os.urandom is esp_random(), the hardware RNG,
# which is truly random only while the RF subsystem (Wi-Fi or Bluetooth) runs or the SAR-ADC
# entropy source of bootloader_random_enable() is on (ESP-IDF "Random Number Generation").
# Neither holds on a board whose B-route is Wi-SUN (a UART module) or Ethernet, nor on the
# Wi-Fi board before the radio is up: its output is then pseudo-random. So:
#   seed  = SHA-256(os.urandom(32) | ADC LSB noise (_ADC_READS reads of a floating ADC1 pin,
#           board_config ENTROPY_ADC_PIN) | ticks_us jitter between the reads | chip id)
#   each call: out = SHA-256(key | counter | os.urandom(16)) blocks, then the key is replaced
#           by SHA-256(key | 0xFF | counter) (a captured state does not reveal past nonces)
# Every call mixes fresh os.urandom bytes, so once the RF is on the output is at least as
# good as the hardware RNG; before, it rests on the boot seed (the ADC noise: a few LSBs of
# thermal noise per read). Calls are rare (module challenges): they may allocate.

from micropython import const
import hashlib
import os
import time

_ADC_READS = const(256)


def _adc_noise(pin):
    """Low bytes of _ADC_READS raw ADC reads and the ticks_us between them (b"" without a
    pin or an ADC)."""
    if pin is None:
        return b""
    try:
        from machine import ADC, Pin

        adc = ADC(Pin(pin))
        buf = bytearray(2 * _ADC_READS)
        for i in range(_ADC_READS):
            buf[2 * i] = adc.read_u16() & 0xFF
            buf[2 * i + 1] = time.ticks_us() & 0xFF
        return bytes(buf)
    except (ImportError, OSError, ValueError):
        return b""


class Drbg:
    """callable(n) -> n random bytes (meter.hal.Board.random)."""

    def __init__(self, adc_pin=None, extra=b""):
        h = hashlib.sha256(os.urandom(32))
        h.update(_adc_noise(adc_pin))
        h.update(extra)
        self._key = h.digest()
        self._ctr = 0  # < 2**24, wraps (4 bytes used)

    def _block(self, tag):
        self._ctr = (self._ctr + 1) & 0xFFFFFF
        h = hashlib.sha256(self._key)
        h.update(bytes((tag, self._ctr >> 16, (self._ctr >> 8) & 0xFF, self._ctr & 0xFF)))
        return h

    def __call__(self, n):
        out = bytearray()
        while len(out) < n:
            h = self._block(0)
            h.update(os.urandom(16))
            out.extend(h.digest())
        self._key = self._block(0xFF).digest()
        return bytes(out[:n])
