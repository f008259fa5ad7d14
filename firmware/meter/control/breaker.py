# Breaker: drives the HAL relay and watches its feedback contact for a stuck or failed relay.
#
# The breaker only moves when told by its owner (the limiter), which logs the reason; this
# module logs the one thing it detects itself: a mismatch between the commanded and the
# sensed state once the relay has settled (BREAKER_FAULT, a: commanded 1/0, b: sensed 1/0).
# The fault is logged once per occurrence (rising edge); `alarm` latches for the uplink
# until ack_alarm(). check(now) and command(closed, now) take meter.clock.Now; check() is
# allocation-free.
#
# Settling: for settle_ms after a command (and after the first check() at boot) a mismatch
# is the relay still moving and is not judged. The first check() that sees settle_ms
# elapsed latches `settled`; from then on any mismatch is a fault at once, however long
# after the command it appears (a contact that drops out days later). The latch matters
# because ms stamps wrap (meter.ticks): 2**29 ms (6.2 days) after a command the signed
# difference turns negative and would read as "just commanded" again. check() runs every
# second, so the latch is set long before that.

from micropython import const

from meter.events import BREAKER_FAULT
from meter.ticks import elapsed_ms

SETTLE_MS = const(200)  # a relay operates in 10..30 ms; its feedback is trusted after this


class Breaker:
    def __init__(self, relay, events, settle_ms=SETTLE_MS):
        self.relay = relay
        self.events = events
        self.settle_ms = settle_ms
        self.cmd_ms = 0  # monotonic ms of the last command (or of the first check)
        self.started = False  # check() has run once (dates the boot settle period)
        self.settled = False  # settle_ms has passed since the last command
        self.fault = False  # commanded and sensed states differ (after settling)
        self.alarm = False  # latched fault indication for the uplink

    def closed(self):
        """The commanded state (what the firmware asked for)."""
        return self.relay.commanded()

    def command(self, closed, now):
        """Move the relay. Returns True when the command changed the commanded state."""
        if self.relay.commanded() == closed:
            return False
        self.relay.command(closed)
        self.cmd_ms = now.ms
        self.started = True
        self.settled = False
        return True

    def check(self, now):
        """Compare feedback with the command; True while a fault is present."""
        if not self.started:
            self.started = True
            self.cmd_ms = now.ms
        if not self.settled:
            el = elapsed_ms(now.ms, self.cmd_ms)
            # negative: more than 2**29 ms unseen, certainly settled
            self.settled = el < 0 or el >= self.settle_ms
        cmd = self.relay.commanded()
        sensed = self.relay.sensed()
        if cmd == sensed:
            self.fault = False
            return False
        if self.fault or not self.settled:
            return self.fault
        self.fault = True
        self.alarm = True
        self.events.stamp(BREAKER_FAULT, now, 1 if cmd else 0, 1 if sensed else 0)
        return True

    def ack_alarm(self):
        self.alarm = False
