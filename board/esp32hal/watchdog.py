# machine.WDT wrapper: once started it cannot be stopped; feed() at least every timeout_ms.

from machine import WDT


class Watchdog:
    def __init__(self, timeout_ms):
        if timeout_ms < 1000:
            raise ValueError("E_WDT_TIMEOUT")
        self.timeout_ms = timeout_ms
        self._wdt = WDT(timeout=timeout_ms)

    def feed(self):
        self._wdt.feed()
