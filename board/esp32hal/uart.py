# machine.UART behind the HAL's Uart contract: non-blocking, readinto() returns 0 (not None)
# when nothing is waiting, and a receive buffer that outlasts the longest time nobody reads.
#
# The MicroPython task can go BLOCK_MS without reading a UART: a 4 KB sector erase blocks up
# to 400 ms (background compaction; REFERENCE), a garbage collection or a B-route burst adds
# a little. The IDF driver's ring buffer (rxbuf, in the system heap, not the MicroPython
# heap) must hold what arrives meanwhile: baud / 10 bytes per second (8N1) x BLOCK_MS, plus
# _MARGIN_PCT, rounded up to 256 bytes:
#   Wi-SUN at 115,200 baud: 11,520 B/s x 0.4 s = 4,608 B -> 5,888 B
#   BL0942 at 4,800 baud:      480 B/s x 0.4 s =   192 B -> 256 B (it answers only when asked)
# The driver's ISR moves the 128-byte hardware FIFO into that buffer; it must keep running
# while the flash is busy, i.e. sit in IRAM: CONFIG_UART_ISR_IN_IRAM=y in the board's
# sdkconfig (else the FIFO overflows after ~11 ms at 115,200 baud, whatever rxbuf is).
#
# The bench console's UART (factory._console) also gets a transmit ring buffer, CONSOLE_TXBUF:
# without one the IDF driver's write blocks until the bytes are in the 128-byte FIFO, i.e.
# for their time on the line. The console hands at most console.WRITE_PER_POLL (128) bytes
# to write() per 20 ms poll (6.4 KB/s, under the 11.5 KB/s of 115,200 baud), so the ring
# never fills and write() returns at once.

from micropython import const

from machine import UART

from meter.hal import Uart

BLOCK_MS = const(400)  # longest time the shell may not read (worst-case sector erase)
_MARGIN_PCT = const(25)
_MIN_RXBUF = const(256)  # above the 128-byte FIFO, as the IDF driver requires
CONSOLE_TXBUF = const(1024)


def rxbuf_for(baudrate, block_ms=BLOCK_MS):
    """Receive buffer bytes for `baudrate` (8N1) to outlast block_ms without a read."""
    n = baudrate // 10 * block_ms // 1000
    n += n * _MARGIN_PCT // 100
    n = (n + 255) // 256 * 256
    return n if n > _MIN_RXBUF else _MIN_RXBUF


class EspUart(Uart):
    def __init__(self, uart_id, baudrate, tx, rx, rxbuf=None, txbuf=0):
        if rxbuf is None:
            rxbuf = rxbuf_for(baudrate)
        self.rxbuf = rxbuf
        if txbuf:
            self._u = UART(uart_id, baudrate=baudrate, bits=8, parity=None, stop=1, tx=tx,
                           rx=rx, rxbuf=rxbuf, txbuf=txbuf, timeout=0)
        else:
            self._u = UART(uart_id, baudrate=baudrate, bits=8, parity=None, stop=1, tx=tx,
                           rx=rx, rxbuf=rxbuf, timeout=0)

    def write(self, buf):
        return self._u.write(buf) or 0

    def readinto(self, buf):
        return self._u.readinto(buf) or 0

    def any(self):
        return self._u.any()
