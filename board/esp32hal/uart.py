# machine.UART behind the HAL's Uart contract: non-blocking, readinto() returns 0 (not None)
# when nothing is waiting.

from machine import UART

from meter.hal import Uart


class EspUart(Uart):
    def __init__(self, uart_id, baudrate, tx, rx, rxbuf=256):
        self._u = UART(uart_id, baudrate=baudrate, bits=8, parity=None, stop=1, tx=tx, rx=rx,
                       rxbuf=rxbuf, timeout=0)

    def write(self, buf):
        return self._u.write(buf) or 0

    def readinto(self, buf):
        return self._u.readinto(buf) or 0

    def any(self):
        return self._u.any()
