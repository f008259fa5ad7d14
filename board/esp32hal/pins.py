# Digital I/O of the meter: the power-good comparator input and the relay with feedback.
#
# On ESP32 Pin.irq handlers run scheduled (soft): ports/esp32/machine_pin.c's ISR calls
# mp_sched_schedule and Pin.irq takes no `hard` argument. The edge handler only counts and
# calls the core's handler, which by contract sets flags only.

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
    """A relay driven by one output, held by the pad through every reset that keeps the
    chip powered; feedback is an input that reads feedback_level while the contacts are
    closed (None: no feedback contact, sensed() echoes the command). feedback_pull_up: use
    the internal pull-up (GPIO 34-39 of the ESP32 have none).

    Hold (MicroPython ESP32: Pin.init(..., hold=True) = gpio_hold_en): a held pad keeps its
    level and configuration through WDT reset, panic, machine.reset(), soft reset and light
    sleep, whatever the registers say; only hold=False/True re-applies the registers (init
    disables the hold, applies, re-enables it). A power-on, brown-out or EN-pin reset drops
    the hold and the pad floats to the board's external pull (board_config RELAY_PULL),
    which makes the de-energised state the one an unpowered meter is in anyway.

    Construction drives nothing new: Pin(pin, Pin.IN) enables the input buffer only (on a
    held pad not even that: registers change, the pad keeps its latched state), value()
    reads what the pad shows (the held output level, or the external pull after power-on),
    and the output is re-applied at that same level with hold=True. So a reset with the
    contact closed leaves it closed, and the limiter's start at boot (after the restore)
    changes it only when the restored state differs, with a logged reason."""

    def __init__(self, pin, feedback=None, closed_level=1, feedback_level=0,
                 feedback_pull_up=True):
        self._on = closed_level
        out = Pin(pin, Pin.IN)  # read before anything drives: mode IN, pulls unchanged
        level = out.value()
        out.init(Pin.OUT, value=level, hold=True)  # value set before mode, then re-held
        self._out = out
        pull = Pin.PULL_UP if feedback_pull_up else None
        self._fb = None if feedback is None else Pin(feedback, Pin.IN, pull)
        self._fb_level = feedback_level
        self._cmd = level == closed_level
        self.operations = 0

    def command(self, closed):
        if closed != self._cmd:
            self.operations += 1
        # the level goes into the register first; hold=True releases the latch, which applies
        # it, and latches again: one edge at most, then held through any reset
        self._out.init(value=self._on if closed else 1 - self._on, hold=True)
        self._cmd = closed

    def commanded(self):
        return self._cmd

    def sensed(self):
        if self._fb is None:
            return self._cmd
        return self._fb.value() == self._fb_level
