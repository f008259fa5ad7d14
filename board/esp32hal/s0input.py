# S0 pulse inputs for meter.metering.frontends.s0.S0PulseInput.
#
# PcntCounter (counter mode): a PCNT unit through machine.Counter (MicroPython >= 1.26, ESP32
# and S3; the C3 has no PCNT). count() returns a 16-bit count that wraps 65535 -> 0, kept
# from Counter.value(0) (counts since the previous read: small ints, no drift). The PCNT
# glitch filter stops at ~12.8 us, so the S0 line needs an RC debounce on the board.
# EdgeRing (edge mode): Pin.irq on both edges stores (ticks_ms, level) in preallocated
# arrays; drain(fn) hands them to the front end's software debounce in arrival order.
# The handler runs scheduled and only writes integers; a full ring drops the edge and
# counts it in `overruns`.

from array import array

from machine import Pin
from micropython import const
import time

_FILTER_NS = const(12_000)


class PcntCounter:
    def __init__(self, pin, unit=0, falling=True, pull_up=True):
        from machine import Counter

        p = Pin(pin, Pin.IN, Pin.PULL_UP if pull_up else None)
        edge = Counter.FALLING if falling else Counter.RISING
        self._c = Counter(unit, p, edge=edge, filter_ns=_FILTER_NS)
        self._n = 0

    def count(self):
        self._n = (self._n + self._c.value(0)) & 0xFFFF
        return self._n


class EdgeRing:
    def __init__(self, pin, pull_up=True, size=32):
        self._pin = Pin(pin, Pin.IN, Pin.PULL_UP if pull_up else None)
        self._size = size
        self._t = array("i", [0] * size)
        self._lv = bytearray(size)
        self._head = 0  # written by the handler only
        self._tail = 0  # written by drain() only
        self.overruns = 0
        self._pin.irq(handler=self._edge, trigger=Pin.IRQ_RISING | Pin.IRQ_FALLING)

    def _edge(self, pin):
        h = self._head
        nxt = h + 1 if h + 1 < self._size else 0
        if nxt == self._tail:
            self.overruns += 1
            return
        self._t[h] = time.ticks_ms()
        self._lv[h] = pin.value()
        self._head = nxt

    def drain(self, fn):
        """Call fn(t_ms, level) for each buffered edge, oldest first. Returns the count."""
        n = 0
        while self._tail != self._head:
            i = self._tail
            fn(self._t[i], self._lv[i])
            self._tail = i + 1 if i + 1 < self._size else 0
            n += 1
        return n
