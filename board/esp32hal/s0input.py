# S0 pulse inputs for meter.metering.frontends.s0.S0PulseInput.
#
# PcntCounter (counter mode): a PCNT unit through machine.Counter (MicroPython >= 1.26, ESP32
# and S3; the C3 has no PCNT). count() returns a 16-bit count that wraps 65535 -> 0, kept
# from Counter.value(0) (counts since the previous read: small ints, no drift). The PCNT
# glitch filter stops at ~12.8 us, so the S0 line needs an RC debounce on the board.
# EdgeRing (edge mode): Pin.irq on both edges stores (ticks_ms, level) in preallocated
# arrays; drain(fn) hands them to the front end's software debounce in arrival order.
# The handler is hard-IRQ safe (integers into preallocated arrays, no allocation, bound
# method made once) and is registered with hard=True, so on a port with hard pin IRQs
# (rp2, stm32, nrf...) the stamp is taken at the edge. The ESP32 port has none: its Pin.irq
# takes no `hard` argument (ports/esp32/machine_pin.c: handler, trigger, wake) and its ISR
# only schedules the handler, so the registration falls back to the scheduled handler and
# `hard` reads False. There the stamp is the time the scheduler ran the handler: late by the
# longest stretch the VM did not run (a 400 ms sector erase, a collection), and edges that
# fall inside one flash operation reach the handler together (the GPIO ISR is not in IRAM).
# That is why the ESP32 and S3 boards count S0 on PCNT (hardware, exact) and the edge mode
# is the C3's only (no PCNT there): its debounce must tolerate stamps late by up to
# BLOCK_MS (esp32hal.uart) or the C3's S0 needs an external counter.
# A full ring drops the edge and counts it in `overruns`.

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
        self._cb = self._edge  # bound once: a hard IRQ may not allocate one per edge
        trig = Pin.IRQ_RISING | Pin.IRQ_FALLING
        try:
            self._pin.irq(handler=self._cb, trigger=trig, hard=True)
            self.hard = True
        except TypeError:  # the ESP32 port: no hard pin IRQs, handlers always scheduled
            self._pin.irq(handler=self._cb, trigger=trig)
            self.hard = False

    def _edge(self, pin):
        t = time.ticks_ms()  # first: the closest this handler gets to the edge
        h = self._head
        nxt = h + 1 if h + 1 < self._size else 0
        if nxt == self._tail:
            self.overruns += 1
            return
        self._t[h] = t
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
