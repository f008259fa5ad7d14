# Digital I/O of the meter: the power-good comparator input and the relay with feedback.
#
# On ESP32 Pin.irq handlers run scheduled (soft), whatever `hard` says; the edge handler
# only counts and calls the core's handler, which by contract sets flags only.

from machine import Pin

from meter.hal import PowerGood, Relay


class PowerGoodPin(PowerGood):
    """good_level: the pin level while mains is present. pull: None or Pin.PULL_UP."""

    def __init__(self, pin, good_level=1, pull=None):
        self._pin = Pin(pin, Pin.IN, pull)
        self._good = good_level
        self._handler = None
        self.edges = 0

    def value(self):
        return 1 if self._pin.value() == self._good else 0

    def irq(self, handler):
        self._handler = handler
        self._pin.irq(handler=self._edge, trigger=Pin.IRQ_RISING | Pin.IRQ_FALLING)

    def _edge(self, pin):
        self.edges += 1
        h = self._handler
        if h is not None:
            h(self)


class RelayPins(Relay):
    """A relay driven by one output; feedback is an input that reads feedback_level while
    the contacts are closed (None: no feedback contact, sensed() echoes the command).
    feedback_pull_up: use the internal pull-up (GPIO 34-39 of the ESP32 have none).
    The output is not driven at construction: it keeps the level it has (held through
    deep sleep by gpio_deep_sleep_hold), and the limiter drives it at boot, with a logged
    reason, once the journal has been restored."""

    def __init__(self, pin, feedback=None, closed_level=1, feedback_level=0,
                 feedback_pull_up=True):
        self._on = closed_level
        self._out = Pin(pin, Pin.OUT)  # no value=: the current output level is kept
        pull = Pin.PULL_UP if feedback_pull_up else None
        self._fb = None if feedback is None else Pin(feedback, Pin.IN, pull)
        self._fb_level = feedback_level
        self._cmd = self._out.value() == closed_level
        self.operations = 0

    def command(self, closed):
        if closed != self._cmd:
            self.operations += 1
        self._out.value(self._on if closed else 1 - self._on)
        self._cmd = closed

    def commanded(self):
        return self._cmd

    def sensed(self):
        if self._fb is None:
            return self._cmd
        return self._fb.value() == self._fb_level
