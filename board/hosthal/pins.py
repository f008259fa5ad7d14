# Scripted digital I/O: the power-good input and relays with a feedback contact.

from meter.hal import PowerGood, Relay
from meter.ticks import elapsed_ms


class ScriptedPowerGood(PowerGood):
    def __init__(self, level=1):
        self._level = level
        self._handler = None

    def value(self):
        return self._level

    def irq(self, handler):
        self._handler = handler

    def set(self, level):
        changed = level != self._level
        self._level = level
        if changed and self._handler is not None:
            self._handler(self)


class FakeRelay(Relay):
    """A relay whose feedback follows the command unless a fault is injected:
    stuck=True keeps the sensed state where it is (welded or jammed contacts)."""

    def __init__(self, closed=True):
        self._cmd = closed
        self._sensed = closed
        self.stuck = False
        self.operations = 0

    def command(self, closed):
        if closed != self._cmd:
            self.operations += 1
        self._cmd = closed
        if not self.stuck:
            self._sensed = closed

    def commanded(self):
        return self._cmd

    def sensed(self):
        return self._sensed


class TimedRelay(Relay):
    """A relay on a clock (meter.hal.Clock): the feedback contact follows a command
    operate_ms later (a real relay moves in 10..30 ms), sampled when sensed() is read.
    stuck=True keeps the sensed state where it is (welded or jammed contacts). The host
    simulation's relay: loads downstream of it see power only while it is sensed closed
    (hosthal.downstream.Downstream)."""

    def __init__(self, clock, closed=True, operate_ms=20):
        self._clock = clock
        self._cmd = closed
        self._sensed = closed
        self._cmd_ms = 0
        self.operate_ms = operate_ms
        self.stuck = False
        self.operations = 0

    def command(self, closed):
        if closed == self._cmd:
            return
        self.operations += 1
        self._cmd = closed
        self._cmd_ms = self._clock.ticks_ms()

    def commanded(self):
        return self._cmd

    def sensed(self):
        if self._sensed != self._cmd and not self.stuck:
            if elapsed_ms(self._clock.ticks_ms(), self._cmd_ms) >= self.operate_ms:
                self._sensed = self._cmd
        return self._sensed
