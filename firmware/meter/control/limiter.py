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
#   4. the trip rule (meter.control.trip.TripRule, its states on one screen there) with
#      the active limit: over-current run of min_over_ms -> OPEN (re-close pending) or
#      LOCKED once max_recloses automatic re-closes are used; OPEN re-closes after
#      reclose_ms (count += 1); the count returns to 0 at an evaluation with a known
#      current under the limit reclose_reset_ms after the last close. The limiter acts on
#      what the rule reports: it moves the breaker, logs BREAKER_OPEN(a: reason, b: current
#      mA) / BREAKER_CLOSE(a: reason, b: 0) and saves. A local or remote reset closes an
#      OPEN or LOCKED breaker at once and clears the count (a remote reset closes at once;
#      DLMS Disconnect control's "ready for reconnection" arming, where only the customer
#      closes, is not modelled);
#   5. the drill shadow (meter.control.drill) with the drill caps: it drives a TripRule
#      of its own with the same timing and never moves the relay.
# A cancelled or ended reservation stops capping at the first tick after the change, so
# its limit lifts within 1 s (one tick). tick() allocates nothing, trips included: state is
# packed into preallocated blobs; only the save handles' save() (called on a state change,
# not in steady state) may allocate.
#
# Every entry point takes `now` (meter.clock.Now: ms, minute, second, validity, ev_minute).
# Monotonic ms stamps wrap at 2**30 (meter.ticks): every stamp kept here is a masked ticks
# value, compared only through elapsed_ms(). Each one is re-examined every tick, and every
# interval measured is far below the 2**29 ms (6.2 days) that elapsed_ms() can span (a drill
# on demand lasts at most the table's maximum duration, <= 4 days).
#
# Persistent state blob (to_bytes, 6 bytes): version u8, contract A u8, state u8,
# re-close count u8, flags u8 (bit0 fallback, informative: re-derived at boot), reserved u8.
# Boot: meter.control.assembly.restore_control() (from_bytes(), table.from_bytes() ...), then
# start(now): the relay is driven to the restored state (logged with R_BOOT when it moves)
# and reservations whose end passed are ended.

from micropython import const
import struct

from meter.errors import SettingError
from meter.ticks import add_ms, elapsed_ms
from meter.control.drill import Drill
from meter.control.trip import (TripRule, CLOSED, LOCKED, TRIP, LOCKOUT, RECLOSE,
                                CLEARED)
from meter.events import BREAKER_OPEN, BREAKER_CLOSE, LIMIT_CHANGE, CONFIG_CHANGE
from meter.storage.persist import NULL_SAVER
from meter.control import status

S_CLOSED = const(0)  # = trip.CLOSED
S_OPEN = const(1)  # = trip.OPEN: tripped, automatic re-close pending
S_LOCKED = const(2)  # = trip.LOCKED: tripped with every re-close used: waits for a reset
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
    def __init__(self, table, breaker, events, saver=None, contract=0,
                 min_over_ms=MIN_OVER_MS, reclose_ms=RECLOSE_MS, max_recloses=MAX_RECLOSES,
                 reclose_reset_ms=RECLOSE_RESET_MS, drill_saver=None):
        """saver: save-only handle of KIND_LIMITER; drill_saver: of KIND_DRILL (the drill
        report). Raises SettingError E_CONTRACT_LIMIT or E_LIMITER_TIMING."""
        self.table = table
        self.allowed = table.allowed
        if contract == 0:
            contract = self.allowed[-1]
        if contract not in self.allowed:
            raise SettingError("E_CONTRACT_LIMIT")
        if min_over_ms < 0 or reclose_ms < 0 or reclose_reset_ms < 0 or \
                not 0 <= max_recloses <= 255:
            raise SettingError("E_LIMITER_TIMING")
        self.breaker = breaker
        self.events = events
        self.saver = saver or NULL_SAVER
        self.min_over_ms = min_over_ms
        self.reclose_ms = reclose_ms
        self.max_recloses = max_recloses
        self.reclose_reset_ms = reclose_reset_ms
        self.rule = TripRule(min_over_ms, reclose_ms, max_recloses, reclose_reset_ms)
        self.contract = contract  # A
        self.active_a = contract  # A, what the trip rule compares against
        self.active_id = 0  # reservation id that set active_a, 0 = contract
        self.fallback = False  # clock invalid: contract limit forced
        self.trips = 0  # trips since boot (diagnostics)
        self.demand_a = 0  # drill on demand: cap A (0 = none) ...
        self.demand_end_ms = 0  # ... until this monotonic ms (masked ticks stamp)
        self.drill = Drill(min_over_ms, reclose_ms, max_recloses, drill_saver)
        self._blob = bytearray(BLOB_LEN)

    @property
    def state(self):
        """Breaker state of the trip rule: S_CLOSED, S_OPEN or S_LOCKED."""
        return self.rule.state

    @property
    def recloses(self):
        """Automatic re-closes since the last reset or quiet period."""
        return self.rule.recloses

    # -- the tick ------------------------------------------------------------------------

    def tick(self, now, i_ma, i2_ma=NO_VALUE):
        """One evaluation at meter.clock.Now `now` (call once per second) with the raw
        currents of the two lines (mA, negative: unknown). Allocation-free."""
        self._limits(now)
        self.breaker.check(now)
        cur = i_ma if i_ma > i2_ma else i2_ma  # negative: both lines unknown
        if cur > MAX_MA:
            cur = MAX_MA
        r = self.rule.evaluate(now, cur, self.active_a)
        if r == TRIP or r == LOCKOUT:
            self.trips += 1
            self.breaker.command(False, now)
            self.events.stamp(BREAKER_OPEN, now, R_LOCKOUT if r == LOCKOUT else R_OVERCURRENT,
                              cur)
            self.save()
        elif r == RECLOSE:
            self._closed(now, R_RECLOSE)
        elif r == CLEARED:
            self.save()
        self._drill(now, cur)

    def _limits(self, now):
        t = self.table
        t.evaluate(now)
        a = self.contract
        rid = 0
        if now.valid:
            self.fallback = False
            if t.limit_a and t.limit_a < a:
                a = t.limit_a
                rid = t.limit_id
        elif not self.fallback:
            self.fallback = True
            self.active_a = a
            self.active_id = 0
            self.events.stamp(LIMIT_CHANGE, now, a, LIMIT_FALLBACK)
            return
        if a != self.active_a or rid != self.active_id:
            self.active_a = a
            self.active_id = rid
            self.events.stamp(LIMIT_CHANGE, now, a, rid)

    def _drill(self, now, cur):
        d = self.table.drill_a
        src = self.table.drill_id
        if self.demand_a:
            if elapsed_ms(now.ms, self.demand_end_ms) >= 0:
                self.demand_a = 0
            elif d == 0 or self.demand_a < d:
                d = self.demand_a
                src = 0
        self.drill.tick(now, cur, self.active_a, d, src)

    def _closed(self, now, reason):
        """The rule has closed: move the relay, log, save."""
        self.breaker.command(True, now)
        self.events.stamp(BREAKER_CLOSE, now, reason, 0)
        self.save()

    # -- operations ----------------------------------------------------------------------

    def start(self, now):
        """At boot, after the restores: evaluate the table (ends passed during the outage
        are applied) and drive the relay to the restored state."""
        self.table.rebase(now)
        self._limits(now)
        closed = self.rule.state == CLOSED
        self.rule.restart(now)
        if self.breaker.command(closed, now):
            self.events.stamp(BREAKER_CLOSE if closed else BREAKER_OPEN, now, R_BOOT, 0)

    def reset(self, remote, now):
        """Local (button) or remote reset: close an open or locked breaker now and clear
        the re-close count. E_STATE when the breaker is already closed."""
        if self.rule.state == CLOSED:
            return status.E_STATE
        self.rule.close(now)
        self._closed(now, R_REMOTE_RESET if remote else R_LOCAL_RESET)
        return status.OK

    def set_contract(self, limit, now):
        """New contract limit; the active limit follows at the next tick."""
        if limit not in self.allowed:
            return status.E_LIMIT
        self.contract = limit
        self.events.stamp(CONFIG_CHANGE, now, SETTING_CONTRACT, limit)
        self.save()
        return status.OK

    def drill_now(self, limit, duration_s, now):
        """Start (or replace) a drill on demand with cap `limit` for duration_s seconds."""
        if limit not in self.allowed:
            return status.E_LIMIT
        if not 0 < duration_s <= self.table.max_duration_min * 60:
            return status.E_DURATION
        self.demand_a = limit
        self.demand_end_ms = add_ms(now.ms, duration_s * 1000)
        return status.OK

    # -- persistence ---------------------------------------------------------------------

    def _pack(self):
        struct.pack_into(_BLOB_FMT, self._blob, 0, _VERSION, self.contract, self.rule.state,
                         self.rule.recloses, 1 if self.fallback else 0, 0)
        return self._blob

    def save(self):
        self.saver.save(self._pack())

    def to_bytes(self):
        return bytes(self._pack())

    def from_bytes(self, blob):
        """Restore at boot (before start()). Invalid blobs raise SettingError
        (E_LIMITER_RECORD: length or version, E_LIMITER_FIELDS: a field out of range) and
        change nothing."""
        if len(blob) != BLOB_LEN:
            raise SettingError("E_LIMITER_RECORD")
        ver, contract, st, recloses, flags, _ = struct.unpack(_BLOB_FMT, blob)
        if ver != _VERSION:
            raise SettingError("E_LIMITER_RECORD")
        if contract not in self.allowed or st > LOCKED or recloses > self.max_recloses:
            raise SettingError("E_LIMITER_FIELDS")
        self.contract = contract
        self.active_a = contract
        self.active_id = 0
        self.rule.state = st
        self.rule.recloses = recloses
