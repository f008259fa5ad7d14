# Scripted digital I/O: the power-good input and a relay with a feedback contact.

from meter.hal import PowerGood, Relay


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
