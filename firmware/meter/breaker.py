# Breaker: drives the HAL relay and watches its feedback contact for a stuck or failed relay.
#
# The breaker only moves when told by its owner (the limiter), which logs the reason; this
# module logs the one thing it detects itself: a mismatch between the commanded and the
# sensed state that persists for settle_ms after the last command (BREAKER_FAULT, a:
# commanded 1/0, b: sensed 1/0). The fault is logged once per occurrence (rising edge);
# `alarm` latches for the uplink until ack_alarm(). check() is allocation-free.
#
# Monotonic ms are compared with elapsed_ms(), which is correct across a wrap of the
# ticks_ms counter (period 2**30 on ESP32) for intervals shorter than 2**29 ms (6.2 days).

from micropython import const

from meter.events import BREAKER_FAULT

_TICKS_MASK = const(0x3FFFFFFF)
_TICKS_HALF = const(0x20000000)
SETTLE_MS = const(200)  # a relay operates in 10..30 ms; its feedback is trusted after this


def elapsed_ms(now, then):
    """now - then in ms for monotonic stamps that may wrap at 2**30 (signed result)."""
    d = (now - then) & _TICKS_MASK
    if d >= _TICKS_HALF:
        d -= _TICKS_MASK + 1
    return d


class Breaker:
    def __init__(self, relay, events, settle_ms=SETTLE_MS):
        self.relay = relay
        self.events = events
        self.settle_ms = settle_ms
        self.cmd_ms = 0  # monotonic ms of the last command
        self.fault = False  # commanded and sensed states differ (after settling)
        self.alarm = False  # latched fault indication for the uplink

    def closed(self):
        """The commanded state (what the firmware asked for)."""
        return self.relay.commanded()

    def command(self, closed, now_ms):
        """Move the relay. Returns True when the command changed the commanded state."""
        if self.relay.commanded() == closed:
            return False
        self.relay.command(closed)
        self.cmd_ms = now_ms
        return True

    def check(self, now_ms, minute, second):
        """Compare feedback with the command; True while a fault is present."""
        cmd = self.relay.commanded()
        sensed = self.relay.sensed()
        if cmd == sensed:
            self.fault = False
            return False
        if self.fault or elapsed_ms(now_ms, self.cmd_ms) < self.settle_ms:
            return self.fault
        self.fault = True
        self.alarm = True
        self.events.log(BREAKER_FAULT, minute, second, 1 if cmd else 0, 1 if sensed else 0)
        return True

    def ack_alarm(self):
        self.alarm = False
