# Trip rule: the over-current / re-close / lock-out machine that the limiter and the drill drive.
#
# One evaluation per second: evaluate(now, current mA, limit A) advances the machine and
# returns what happened. The machine only decides; its owner acts: the limiter moves the
# breaker, logs and saves; the drill records what it would have done.
#
#   CLOSED --over the limit for min_over_ms--> OPEN    result TRIP
#   CLOSED --the same, recloses >= max_recloses--> LOCKED  result LOCKOUT
#   OPEN   --reclose_ms after the trip--> CLOSED (recloses += 1)   result RECLOSE
#   LOCKED --close() (a reset by the owner)--> CLOSED (recloses = 0)
#   CLOSED, over the limit, the run not yet min_over_ms long         result OVER
#   CLOSED, known current under the limit, recloses > 0 and reclose_reset_ms after the
#          last close (never with reclose_reset_ms = NEVER)  -> recloses = 0  result CLEARED
#   anything else                                                    result NOTHING
#
# "Over" means current > limit * 1000 mA at an evaluation. A run is the consecutive over
# evaluations while CLOSED; the trip comes at the evaluation where the run has lasted
# min_over_ms (with min_over_ms = 0, at the first one). Unknown current (negative: both
# lines silent) is never evidence of an overload: no trip, no over-time, no CLEARED, and a
# run in progress restarts. OPEN re-closes on time whatever the current; LOCKED waits.
#
# ms stamps are masked ticks values (meter.ticks) compared only through elapsed_ms(); a
# negative elapsed time since the last close means more than 2**29 ms and counts as quiet.
# evaluate() allocates nothing.

from micropython import const

from meter.ticks import elapsed_ms

# states (the limiter's persisted state byte uses the same numbers)
CLOSED = const(0)
OPEN = const(1)  # tripped, automatic re-close pending
LOCKED = const(2)  # tripped with every re-close used: waits for close()

# results of evaluate()
NOTHING = const(0)
TRIP = const(1)
LOCKOUT = const(2)
RECLOSE = const(3)
OVER = const(4)
CLEARED = const(5)

NEVER = const(-1)  # reclose_reset_ms: the re-close count never returns to 0 by itself


class TripRule:
    def __init__(self, min_over_ms, reclose_ms, max_recloses, reclose_reset_ms=NEVER):
        self.min_over_ms = min_over_ms
        self.reclose_ms = reclose_ms
        self.max_recloses = max_recloses
        self.reclose_reset_ms = reclose_reset_ms
        self.state = CLOSED
        self.recloses = 0  # automatic re-closes since the last close() / quiet period
        self.over = False  # an over run is in progress (CLOSED only)
        self.over_ms = 0  # monotonic ms of the first evaluation of the over run
        self.opened_ms = 0  # monotonic ms of the last trip
        self.closed_ms = 0  # monotonic ms of the last close

    def evaluate(self, now, cur_ma, limit_a):
        """One evaluation at meter.clock.Now `now` with current cur_ma (negative: unknown)
        against limit_a; returns NOTHING, OVER, TRIP, LOCKOUT, RECLOSE or CLEARED."""
        ms = now.ms
        st = self.state
        if st == CLOSED:
            if cur_ma < 0:
                self.over = False
                return NOTHING
            if cur_ma > limit_a * 1000:
                if not self.over:
                    self.over = True
                    self.over_ms = ms
                if elapsed_ms(ms, self.over_ms) < self.min_over_ms:
                    return OVER
                self.over = False
                self.opened_ms = ms
                if self.recloses >= self.max_recloses:
                    self.state = LOCKED
                    return LOCKOUT
                self.state = OPEN
                return TRIP
            self.over = False
            if self.recloses and self.reclose_reset_ms >= 0:
                el = elapsed_ms(ms, self.closed_ms)
                if el < 0 or el >= self.reclose_reset_ms:
                    self.recloses = 0
                    return CLEARED
            return NOTHING
        if st == OPEN and elapsed_ms(ms, self.opened_ms) >= self.reclose_ms:
            self.recloses += 1
            self._closed(ms)
            return RECLOSE
        return NOTHING

    def close(self, now):
        """A reset: CLOSED now with the re-close count cleared (from OPEN or LOCKED)."""
        self.recloses = 0
        self._closed(now.ms)

    def restart(self, now):
        """At boot: the timers restart at now (an OPEN rule re-closes reclose_ms later);
        state and count (restored) are kept."""
        self.over = False
        self.opened_ms = now.ms
        self.closed_ms = now.ms

    def clear(self):
        """CLOSED with no run and no re-close used (a new drill session)."""
        self.state = CLOSED
        self.over = False
        self.recloses = 0

    def _closed(self, ms):
        self.state = CLOSED
        self.over = False
        self.closed_ms = ms
