# Drill (training) mode: a shadow limiter that makes trip decisions without moving the relay.
#
# While a drill cap is active (a confirmed drill reservation in its window, or a drill on
# demand) the shadow drives the limiter's own trip rule (meter.control.trip.TripRule, with
# the limiter's timing) on the measured current: shadow limit = min(drill cap, real active
# limit), over-threshold timer (min_over_ms), "open" for the re-close delay, re-close count
# and lock-out. Unlike the limiter's, the shadow's count never returns to 0 by itself and
# nothing resets it: a locked shadow stays locked until the drill ends. Every decision it
# would have taken is recorded with the wall time, current and limit; the report is what
# the head-end reads (DRILL_REPORT). A session runs from the
# first tick with a drill cap to the first tick without one; a new session replaces the
# previous report. A negative current (unknown, see meter.control.limiter) neither counts nor
# trips and restarts an over run, as in the limiter. tick(now, ...) takes meter.clock.Now
# and stamps records with its event minute (-1 while the clock is invalid). tick()
# allocates nothing (the report is packed into a preallocated blob and handed to the save
# handle, KIND_DRILL, only when it changes).
#
# Report blob (big-endian, always REPORT_LEN = 114 bytes; records past n are zero):
#   0  u8  version (1)             1  u8  flags: bit0 running
#   2  u16 source: reservation id that started the session, 0 = drill on demand
#   4  i32 start wall minute (-1 clock invalid)   8  u8 start second
#   9  i32 end wall minute (-1 running or invalid) 13 u8 end second
#   14 u8  lowest shadow limit applied, A    15 u16 would-trip count (all trips)
#   17 u32 highest current seen, mA          21 u32 seconds over the shadow limit
#   25 u8  n records kept (the first MAX_RECORDS)
#   26 + 11k: kind u8 (1 trip, 2 trip into lock-out, 3 re-close), minute i32, second u8,
#             current mA u32, limit A u8

from micropython import const
from array import array
import struct

from meter.errors import SettingError
from meter.control.trip import TripRule, NEVER, OVER, TRIP, LOCKOUT, RECLOSE
from meter.storage.persist import NULL_SAVER

MAX_RECORDS = const(8)
REPORT_HEAD = const(26)
RECORD = const(11)
REPORT_LEN = const(REPORT_HEAD + MAX_RECORDS * RECORD)
K_TRIP = const(1)
K_LOCKOUT = const(2)
K_RECLOSE = const(3)
_VERSION = const(1)
_HEAD_FMT = ">BBHiBiBBHIIB"
_REC_FMT = ">BiBIB"
_H_RECORDS = const(11)  # index of n (records kept) in the unpacked head


class Drill:
    def __init__(self, min_over_ms, reclose_ms, max_recloses, saver=None):
        self.min_over_ms = min_over_ms
        self.reclose_ms = reclose_ms
        self.max_recloses = max_recloses
        self.saver = saver or NULL_SAVER  # save-only handle of KIND_DRILL
        self.rule = TripRule(min_over_ms, reclose_ms, max_recloses, NEVER)
        self.kind = bytearray(MAX_RECORDS)
        self.rec_min = array("i", [0] * MAX_RECORDS)
        self.rec_s = bytearray(MAX_RECORDS)
        self.rec_ma = array("i", [0] * MAX_RECORDS)
        self.rec_a = bytearray(MAX_RECORDS)
        self._blob = bytearray(REPORT_LEN)
        self.running = False
        self._clear(0, -1, 0)  # no session yet: an empty report

    def tick(self, now, current_ma, real_a, drill_a, source):
        """One evaluation at meter.clock.Now `now`. drill_a: the drill cap (0 = no drill
        active); real_a: the real active limit; source: the reservation id behind drill_a
        (0 = on demand)."""
        if drill_a == 0:
            if self.running:
                self.running = False
                self.end_min = now.ev_minute
                self.end_s = now.second
                self.save()
            return
        if not self.running:
            self._begin(now, source)
        a = drill_a if drill_a < real_a else real_a
        if self.low_a == 0 or a < self.low_a:
            self.low_a = a
        if current_ma > self.max_ma:
            self.max_ma = current_ma
        r = self.rule.evaluate(now, current_ma, a)
        if r == OVER:
            self.over_s += 1
        elif r == TRIP or r == LOCKOUT:
            self.over_s += 1
            self.trips += 1
            self._record(K_LOCKOUT if r == LOCKOUT else K_TRIP, now, current_ma, a)
        elif r == RECLOSE:
            self._record(K_RECLOSE, now, 0, a)

    def _begin(self, now, source):
        self.running = True
        self._clear(source, now.ev_minute, now.second)
        self.rule.clear()
        self.save()

    def _clear(self, source, start_min, start_s):
        """An empty report of a session from source started at (start_min, start_s)."""
        self.source = source
        self.start_min = start_min
        self.start_s = start_s
        self.end_min = -1
        self.end_s = 0
        self.low_a = 0
        self.trips = 0
        self.max_ma = 0
        self.over_s = 0
        self.n = 0
        for k in range(MAX_RECORDS):
            self.kind[k] = 0
            self.rec_min[k] = 0
            self.rec_s[k] = 0
            self.rec_ma[k] = 0
            self.rec_a[k] = 0

    def _record(self, kind, now, current_ma, a):
        k = self.n
        if k < MAX_RECORDS:
            self.kind[k] = kind
            self.rec_min[k] = now.ev_minute
            self.rec_s[k] = now.second
            self.rec_ma[k] = current_ma
            self.rec_a[k] = a
            self.n = k + 1
        self.save()

    def _pack(self):
        b = self._blob
        struct.pack_into(_HEAD_FMT, b, 0, _VERSION, 1 if self.running else 0, self.source,
                         self.start_min, self.start_s, self.end_min, self.end_s, self.low_a,
                         self.trips & 0xFFFF, self.max_ma, self.over_s, self.n)
        for k in range(MAX_RECORDS):
            struct.pack_into(_REC_FMT, b, REPORT_HEAD + k * RECORD, self.kind[k],
                             self.rec_min[k], self.rec_s[k], self.rec_ma[k], self.rec_a[k])
        return b

    def save(self):
        self.saver.save(self._pack())

    def to_bytes(self):
        return bytes(self._pack())

    def from_bytes(self, blob):
        """Restore the last report at boot. A session that was running when power failed is
        closed as interrupted (end unknown: -1). Invalid blobs raise SettingError
        (E_DRILL_RECORD: length or version, E_DRILL_COUNT: more records than it holds)."""
        if len(blob) != REPORT_LEN or blob[0] != _VERSION:
            raise SettingError("E_DRILL_RECORD")
        h = struct.unpack_from(_HEAD_FMT, blob, 0)
        if h[_H_RECORDS] > MAX_RECORDS:
            raise SettingError("E_DRILL_COUNT")
        recs = [struct.unpack_from(_REC_FMT, blob, REPORT_HEAD + k * RECORD)
                for k in range(MAX_RECORDS)]
        (_, _, self.source, self.start_min, self.start_s, self.end_min, self.end_s,
         self.low_a, self.trips, self.max_ma, self.over_s, self.n) = h
        self.running = False
        for k in range(MAX_RECORDS):
            (self.kind[k], self.rec_min[k], self.rec_s[k], self.rec_ma[k],
             self.rec_a[k]) = recs[k]
