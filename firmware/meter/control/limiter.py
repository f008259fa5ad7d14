# Current limiter: contract and reserved caps, over-current trip, automatic re-close, lock-out.
#
# Evaluated once per second by tick() with the latest currents (mA) of the two lines of a
# single-phase 3-wire supply (a 2-wire supply passes NO_VALUE for the second). The app
# passes the RAW current of the latest metrology sample, even one that the metering
# plausibility check rejected (an overload above the meter's rating must still trip), and
# NO_VALUE (-1) when the front end has been silent for more than 5 s. A negative current on
# a line means "unknown" for that line; the larger known one is compared. With both lines
# unknown the limiter neither trips nor counts over-time, and an over run in progress
# restarts (silence is never evidence of an overload). Currents are clamped to MAX_MA
# (100 kA) so that any raw value, however absurd, stays a small int and fits the event log
# and the drill report.
#
# What "current" is depends on the front end. With BL0942 it is the measured RMS current of
# the one line it senses. With an S0 pulse front end it is an ESTIMATE: power / nominal
# voltage (meter.metering.frontends.s0: power factor taken as 1, power clamped to max_power_w). On
# a single-phase 3-wire (100/200 V) supply that estimate is P / V(line-neutral), i.e. the
# SUM of the two line currents: a 200 V load or a load spread over both lines reads up to
# twice the larger line current (trips early against a per-line contract), a load with a
# power factor below 1 reads low, and nothing above max_power_w / nominal voltage is seen.
# A faithful per-line limit on a 3-wire supply needs a front end measuring both lines.
#
# Every evaluation:
#   1. the reservation table advances to the wall time (meter.control.reservations);
#   2. active limit = contract limit, lowered by the lowest active confirmed non-drill
#      reservation; with an invalid wall clock: the contract limit, `fallback` set and a
#      LIMIT_CHANGE(a: contract, b: LIMIT_FALLBACK) event on entering the fallback;
#      every change of the active limit logs LIMIT_CHANGE(a: A, b: reservation id, 0 =
#      contract);
#   3. the breaker's feedback is checked (meter.control.breaker: BREAKER_FAULT + alarm);
#   4. the breaker state machine:
#        CLOSED --current > limit for min_over_ms--> OPEN (re-close pending), or LOCKED
#                 once max_recloses automatic re-closes have been used
#        OPEN   --reclose_ms elapsed--> CLOSED (count += 1)
#        LOCKED --local or remote reset--> CLOSED (count = 0); a reset also ends OPEN early
#               (a remote reset closes at once; DLMS Disconnect control's "ready for
#               reconnection" arming, where only the customer closes, is not modelled)
#      The count returns to 0 at an evaluation with a known current under the limit,
#      reclose_reset_ms after the last close. The trip rule: "over" means current > active
#      limit * 1000 mA at an evaluation; the breaker opens at the evaluation where the run
#      of consecutive over evaluations has lasted min_over_ms (so with min_over_ms = 0, at
#      the first one). Every open and close is logged: BREAKER_OPEN(a: reason, b: current
#      mA), BREAKER_CLOSE(a: reason, b: 0);
#   5. the drill shadow (meter.control.drill) with the drill caps; it never moves the relay.
# A cancelled or ended reservation stops capping at the first tick after the change, so
# its limit lifts within 1 s (one tick). tick() allocates nothing, trips included: state is
# packed into preallocated blobs; only the store's save() (called on a state change, not
# in steady state) may allocate.
#
# Monotonic ms stamps wrap at 2**30 (meter.ticks): every stamp kept here is a masked ticks
# value, compared only through elapsed_ms(). Each one is re-examined every tick, and every
# interval measured is far below the 2**29 ms (6.2 days) that elapsed_ms() can span (a drill
# on demand lasts at most the table's maximum duration, <= 4 days).
#
# Persistent state blob (to_bytes, 6 bytes): version u8, contract A u8, state u8,
# re-close count u8, flags u8 (bit0 fallback, informative: re-derived at boot), reserved u8.
# Boot: from_bytes(), table.from_bytes(), then start(): the relay is driven to the restored
# state (logged with R_BOOT when it moves) and reservations whose end passed are ended.

from micropython import const
import struct

from meter.ticks import add_ms, elapsed_ms
from meter.control.drill import Drill
from meter.events import BREAKER_OPEN, BREAKER_CLOSE, LIMIT_CHANGE, CONFIG_CHANGE
from meter.storage.persist import KIND_LIMITER, NullStore
from meter.control import status

S_CLOSED = const(0)
S_OPEN = const(1)  # tripped, automatic re-close pending
S_LOCKED = const(2)  # tripped with every re-close used: waits for a reset
STATE_NAMES = ("closed", "open", "locked")

# BREAKER_OPEN / BREAKER_CLOSE reason codes (event argument a)
R_OVERCURRENT = const(1)  # open: over the active limit for min_over_ms, will re-close
R_LOCKOUT = const(2)  # open: over the limit with every re-close used, stays open
R_RECLOSE = const(3)  # close: automatic re-close after reclose_ms
R_LOCAL_RESET = const(4)  # close: local reset (button)
R_REMOTE_RESET = const(5)  # close: remote reset command
R_BOOT = const(6)  # open/close: relay driven to the restored state at boot
REASON_NAMES = ("", "overcurrent", "lockout", "reclose", "local_reset", "remote_reset",
                "boot")

LIMIT_FALLBACK = const(-1)  # LIMIT_CHANGE b: contract limit because the clock is invalid
SETTING_CONTRACT = const(71)  # CONFIG_CHANGE a: contract limit (DLMS Limiter, class 71)

MIN_OVER_MS = const(3000)
RECLOSE_MS = const(10_000)
MAX_RECLOSES = const(3)
RECLOSE_RESET_MS = const(600_000)
NO_VALUE = const(-1)  # current unknown (meter.metering.samples.NO_VALUE)
MAX_MA = const(100_000_000)  # currents are clamped here (100 kA: beyond any real one)

_VERSION = const(1)
_BLOB_FMT = ">BBBBBB"
BLOB_LEN = const(6)


class Limiter:
    def __init__(self, table, breaker, events, store=None, contract=0,
                 min_over_ms=MIN_OVER_MS, reclose_ms=RECLOSE_MS, max_recloses=MAX_RECLOSES,
                 reclose_reset_ms=RECLOSE_RESET_MS):
        self.table = table
        self.allowed = table.allowed
        if contract == 0:
            contract = self.allowed[-1]
        if contract not in self.allowed:
            raise ValueError("contract limit not allowed")
        if min_over_ms < 0 or reclose_ms < 0 or not 0 <= max_recloses <= 255:
            raise ValueError("limiter timing")
        self.breaker = breaker
        self.events = events
        self.store = store or NullStore()
        self.min_over_ms = min_over_ms
        self.reclose_ms = reclose_ms
        self.max_recloses = max_recloses
        self.reclose_reset_ms = reclose_reset_ms
        self.contract = contract  # A
        self.active_a = contract  # A, what the trip rule compares against
        self.active_id = 0  # reservation id that set active_a, 0 = contract
        self.fallback = False  # clock invalid: contract limit forced
        self.state = S_CLOSED
        self.recloses = 0  # automatic re-closes since the last reset / quiet period
        self.over = False  # the last evaluation was over the active limit
        self.over_ms = 0  # monotonic ms of the first evaluation of the current over run
        self.opened_ms = 0
        self.closed_ms = 0
        self.trips = 0  # trips since boot (diagnostics)
        self.demand_a = 0  # drill on demand: cap A (0 = none) ...
        self.demand_end_ms = 0  # ... until this monotonic ms (masked ticks stamp)
        self.drill = Drill(min_over_ms, reclose_ms, max_recloses, self.store)
        self._blob = bytearray(BLOB_LEN)

    # -- the tick ------------------------------------------------------------------------

    def tick(self, now_ms, minute, second, valid, i_ma, i2_ma=NO_VALUE):
        """One evaluation (call once per second). Allocation-free."""
        self._limits(now_ms, minute, second, valid)
        ev_min = minute if valid else -1
        self.breaker.check(now_ms, ev_min, second)
        cur = i_ma if i_ma > i2_ma else i2_ma  # negative: both lines unknown
        if cur > MAX_MA:
            cur = MAX_MA
        st = self.state
        if st == S_CLOSED:
            if cur < 0:
                self.over = False  # unknown current: no trip, no over-time, run restarts
            elif cur > self.active_a * 1000:
                if not self.over:
                    self.over = True
                    self.over_ms = now_ms
                if elapsed_ms(now_ms, self.over_ms) >= self.min_over_ms:
                    self._trip(now_ms, ev_min, second, cur)
            else:
                self.over = False
                if self.recloses:
                    el = elapsed_ms(now_ms, self.closed_ms)
                    if el < 0 or el >= self.reclose_reset_ms:  # < 0: over 2**29 ms ago
                        self.recloses = 0
                        self.save()
        elif st == S_OPEN:
            if elapsed_ms(now_ms, self.opened_ms) >= self.reclose_ms:
                self.recloses += 1
                self._close(now_ms, ev_min, second, R_RECLOSE)
        self._drill(now_ms, ev_min, second, cur)

    def _limits(self, now_ms, minute, second, valid):
        t = self.table
        t.evaluate(now_ms, minute, second, valid)
        a = self.contract
        rid = 0
        if valid:
            self.fallback = False
            if t.limit_a and t.limit_a < a:
                a = t.limit_a
                rid = t.limit_id
        elif not self.fallback:
            self.fallback = True
            self.active_a = a
            self.active_id = 0
            self.events.log(LIMIT_CHANGE, -1, second, a, LIMIT_FALLBACK)
            return
        if a != self.active_a or rid != self.active_id:
            self.active_a = a
            self.active_id = rid
            self.events.log(LIMIT_CHANGE, minute if valid else -1, second, a, rid)

    def _drill(self, now_ms, ev_min, second, cur):
        d = self.table.drill_a
        src = self.table.drill_id
        if self.demand_a:
            if elapsed_ms(now_ms, self.demand_end_ms) >= 0:
                self.demand_a = 0
            elif d == 0 or self.demand_a < d:
                d = self.demand_a
                src = 0
        self.drill.tick(now_ms, ev_min, second, cur, self.active_a, d, src)

    def _trip(self, now_ms, ev_min, second, cur):
        self.over = False
        self.trips += 1
        self.opened_ms = now_ms
        if self.recloses >= self.max_recloses:
            self.state = S_LOCKED
            reason = R_LOCKOUT
        else:
            self.state = S_OPEN
            reason = R_OVERCURRENT
        self.breaker.command(False, now_ms)
        self.events.log(BREAKER_OPEN, ev_min, second, reason, cur)
        self.save()

    def _close(self, now_ms, ev_min, second, reason):
        self.state = S_CLOSED
        self.over = False
        self.closed_ms = now_ms
        self.breaker.command(True, now_ms)
        self.events.log(BREAKER_CLOSE, ev_min, second, reason, 0)
        self.save()

    # -- operations ----------------------------------------------------------------------

    def start(self, now_ms, minute, second, valid):
        """At boot, after the restores: evaluate the table (ends passed during the outage
        are applied) and drive the relay to the restored state."""
        self.table.rebase(now_ms, minute, valid)
        self._limits(now_ms, minute, second, valid)
        ev_min = minute if valid else -1
        closed = self.state == S_CLOSED
        self.opened_ms = now_ms
        self.closed_ms = now_ms
        self.over = False
        if self.breaker.command(closed, now_ms):
            self.events.log(BREAKER_CLOSE if closed else BREAKER_OPEN, ev_min, second,
                            R_BOOT, 0)

    def reset(self, remote, now_ms, minute, second, valid):
        """Local (button) or remote reset: close an open or locked breaker now and clear
        the re-close count. E_STATE when the breaker is already closed."""
        if self.state == S_CLOSED:
            return status.E_STATE
        self.recloses = 0
        self._close(now_ms, minute if valid else -1, second,
                    R_REMOTE_RESET if remote else R_LOCAL_RESET)
        return status.OK

    def set_contract(self, limit, minute, second, valid):
        """New contract limit; the active limit follows at the next tick."""
        if limit not in self.allowed:
            return status.E_LIMIT
        self.contract = limit
        self.events.log(CONFIG_CHANGE, minute if valid else -1, second, SETTING_CONTRACT,
                        limit)
        self.save()
        return status.OK

    def drill_now(self, limit, duration_s, now_ms):
        """Start (or replace) a drill on demand with cap `limit` for duration_s seconds."""
        if limit not in self.allowed:
            return status.E_LIMIT
        if not 0 < duration_s <= self.table.max_duration_min * 60:
            return status.E_DURATION
        self.demand_a = limit
        self.demand_end_ms = add_ms(now_ms, duration_s * 1000)
        return status.OK

    # -- persistence ---------------------------------------------------------------------

    def _pack(self):
        struct.pack_into(_BLOB_FMT, self._blob, 0, _VERSION, self.contract, self.state,
                         self.recloses, 1 if self.fallback else 0, 0)
        return self._blob

    def save(self):
        self.store.save(KIND_LIMITER, self._pack())

    def to_bytes(self):
        return bytes(self._pack())

    def from_bytes(self, blob):
        """Restore at boot (before start()). Invalid blobs raise ValueError, change nothing."""
        if len(blob) != BLOB_LEN:
            raise ValueError("limiter blob")
        ver, contract, st, recloses, flags, _ = struct.unpack(_BLOB_FMT, blob)
        if ver != _VERSION or contract not in self.allowed or st > S_LOCKED or \
                recloses > self.max_recloses:
            raise ValueError("limiter blob fields")
        self.contract = contract
        self.active_a = contract
        self.active_id = 0
        self.state = st
        self.recloses = recloses
