# Reservation table: scheduled current caps (DLMS Limiter emergency profiles) that fire only
# after the head-end has read them back and confirmed them, and that always end on time.
#
# A reservation is (id, start, end, limit A, flags) in wall minutes since 2000-01-01 local
# standard time; its window is [start, end): active while start <= minute < end.
#
#   CREATED --confirm(digest)--> CONFIRMED --start--> ACTIVE --end--> ENDED
#      |  start passed unconfirmed: EXPIRED   |  end passed unseen (outage): ENDED
#      +------ cancel ------+------ cancel ---+---- cancel ----> CANCELLED
#
# Rules (README "Remote current control" repeats them):
#   * Confirmation quotes the 8-byte digest of the record as read back (digest()); only a
#     CREATED reservation before its start can be confirmed. Unconfirmed ones never fire.
#   * Immutable: there is no modify operation; end (and everything else) is fixed at
#     creation. A change is cancel + create. A reservation cannot extend itself.
#   * Bounds: start in the future (>= the next minute), end > start, end - start <=
#     max_duration_min (default 24 h, at most HARD_MAX_DURATION_MIN). Limit in the allowed
#     set. Ids 1..65535, unique in the table (a dead entry with the same id is replaced).
#   * Overlaps are allowed; while several are active the LOWEST limit wins (a cap never
#     loosens another cap), and the limiter never goes above the contract limit.
#   * Cancel works before start and during the window; the limit lifts at the next
#     evaluate(), which the limiter runs every tick: within 1 s of the cancel.
#   * Fail-safe end: an ACTIVE reservation ends when the wall minute reaches end, when the
#     wall clock moves back before its start, or when its window length has elapsed on the
#     monotonic clock since activation (guards against a wall clock set backwards), whichever
#     is first. After a restore, an end that passed during the outage is applied at the
#     first evaluate(). While the wall clock is invalid nothing starts and the limiter
#     ignores the table (contract fallback); the monotonic guard still ends reservations.
#   * Drill reservations (FLAG_DRILL) follow the same lifecycle but never cap the real
#     limit; the limiter evaluates them in its drill shadow.
# Every operation takes `now` (meter.clock.Now) and stamps its RESERVATION events with
# now.ev_minute. evaluate() allocates nothing; create/confirm/cancel/list may allocate
# (command path).

from micropython import const
from array import array
import hashlib
import struct

from meter.errors import SettingError
from meter.ticks import add_ms, elapsed_ms
from meter.events import RESERVATION
from meter.storage.persist import NULL_SAVER
from meter.control import status

SLOTS = const(8)
FREE = const(0)
CREATED = const(1)
CONFIRMED = const(2)
ACTIVE = const(3)
ENDED = const(4)
CANCELLED = const(5)
EXPIRED = const(6)
STATE_NAMES = ("free", "created", "confirmed", "active", "ended", "cancelled", "expired")

FLAG_DRILL = const(1)
MAX_DURATION_MIN = const(1440)
HARD_MAX_DURATION_MIN = const(5760)  # 4 days: keeps the ms guard below 2**29
ALLOWED_LIMITS = (10, 15, 20, 30, 40, 50, 60)  # A; a board definition passes its own

DIGEST_LEN = const(8)
# A record as read back: id u16, start i32, end i32, limit u8, flags u8, state u8, digest 8
RECORD_FMT = ">HiiBBB"
RECORD_LEN = const(21)
_FIELDS_LEN = const(13)  # RECORD_FMT bytes: the digest follows at this offset
_R_STATE = const(5)  # index of the state in an unpacked RECORD_FMT row
_R_ID = const(0)  # index of the id
_DIGEST_TAG = b"RSV1"
_BLOB_VERSION = const(1)
BLOB_LEN = const(1 + SLOTS * _FIELDS_LEN)  # version, then each slot's 13 field bytes
_MS_PER_MIN = const(60_000)


def digest(rid, start, end, limit, flags):
    """8-byte digest of a reservation's content (what a confirmation must quote)."""
    h = hashlib.sha256(_DIGEST_TAG)
    h.update(struct.pack(">HiiBB", rid, start, end, limit, flags))
    return h.digest()[:DIGEST_LEN]


class ReservationTable:
    def __init__(self, events, saver=None, allowed=ALLOWED_LIMITS,
                 max_duration_min=MAX_DURATION_MIN):
        """saver: save-only handle of KIND_RESERVATIONS. Raises SettingError
        E_RESERVATION_DURATION for a maximum duration outside 1..HARD_MAX_DURATION_MIN."""
        if not 0 < max_duration_min <= HARD_MAX_DURATION_MIN:
            raise SettingError("E_RESERVATION_DURATION")
        self.events = events
        self.saver = saver or NULL_SAVER
        self.allowed = tuple(allowed)
        self.max_duration_min = max_duration_min
        self.rid = array("i", [0] * SLOTS)
        self.start = array("i", [0] * SLOTS)
        self.end = array("i", [0] * SLOTS)
        self.limit = array("i", [0] * SLOTS)
        self.flags = array("i", [0] * SLOTS)
        self.state = array("i", [FREE] * SLOTS)
        self.act_ms = array("i", [0] * SLOTS)  # monotonic ms of activation (guard)
        self.digests = bytearray(SLOTS * DIGEST_LEN)
        self._blob = bytearray(BLOB_LEN)
        # Results of the last evaluate(): the lowest active real / drill cap (0 = none)
        # and the id that set it.
        self.limit_a = 0
        self.limit_id = 0
        self.drill_a = 0
        self.drill_id = 0

    # -- queries -------------------------------------------------------------------------

    def find(self, rid):
        """Slot of reservation rid, or -1."""
        for i in range(SLOTS):
            if self.state[i] != FREE and self.rid[i] == rid:
                return i
        return -1

    def live(self, i):
        s = self.state[i]
        return s == CREATED or s == CONFIRMED or s == ACTIVE

    def slot_digest(self, i):
        return bytes(self.digests[i * DIGEST_LEN:(i + 1) * DIGEST_LEN])

    def record_into(self, i, buf, off):
        """Pack slot i as a read-back record (RECORD_LEN bytes) into buf at off."""
        struct.pack_into(RECORD_FMT, buf, off, self.rid[i], self.start[i], self.end[i],
                         self.limit[i], self.flags[i], self.state[i])
        d = i * DIGEST_LEN
        buf[off + _FIELDS_LEN:off + RECORD_LEN] = self.digests[d:d + DIGEST_LEN]

    def record(self, rid):
        """Read-back record of reservation rid, or None."""
        i = self.find(rid)
        if i < 0:
            return None
        buf = bytearray(RECORD_LEN)
        self.record_into(i, buf, 0)
        return bytes(buf)

    def listing(self):
        """Read-back records of every non-free slot, in slot order."""
        used = [i for i in range(SLOTS) if self.state[i] != FREE]
        buf = bytearray(RECORD_LEN * len(used))
        for k, i in enumerate(used):
            self.record_into(i, buf, k * RECORD_LEN)
        return bytes(buf)

    # -- operations (command path) -------------------------------------------------------

    def check_create(self, rid, start, end, limit, flags, now):
        """Status of a create at `now` with these arguments, and the slot it would use
        (or -1)."""
        if not now.valid:
            return status.E_CLOCK, -1
        minute = now.minute
        if not 0 < rid <= 0xFFFF or flags & ~FLAG_DRILL:
            return status.E_RANGE, -1
        if limit not in self.allowed:
            return status.E_LIMIT, -1
        if start <= minute:
            return status.E_START_PAST, -1
        if end <= start or end - start > self.max_duration_min:
            return status.E_DURATION, -1
        i = self.find(rid)
        if i >= 0:
            if self.live(i):
                return status.E_DUPLICATE_ID, -1
            return status.OK, i
        for i in range(SLOTS):
            if self.state[i] == FREE:
                return status.OK, i
        best = -1  # reuse the dead entry that ended first
        for i in range(SLOTS):
            if not self.live(i) and (best < 0 or self.end[i] < self.end[best]):
                best = i
        if best < 0:
            return status.E_FULL, -1
        return status.OK, best

    def create(self, rid, start, end, limit, flags, now):
        st, i = self.check_create(rid, start, end, limit, flags, now)
        if st != status.OK:
            return st
        self.rid[i] = rid
        self.start[i] = start
        self.end[i] = end
        self.limit[i] = limit
        self.flags[i] = flags
        self.state[i] = CREATED
        self.act_ms[i] = 0
        self.digests[i * DIGEST_LEN:(i + 1) * DIGEST_LEN] = digest(rid, start, end, limit,
                                                                   flags)
        self._changed(i, now)
        self.save()
        return status.OK

    def confirm(self, rid, quoted, now):
        if not now.valid:
            return status.E_CLOCK
        i = self.find(rid)
        if i < 0:
            return status.E_UNKNOWN_ID
        if self.state[i] != CREATED:
            return status.E_STATE
        if now.minute >= self.start[i]:
            return status.E_TOO_LATE
        d = i * DIGEST_LEN
        if len(quoted) != DIGEST_LEN or bytes(quoted) != bytes(self.digests[d:d + DIGEST_LEN]):
            return status.E_DIGEST
        self.state[i] = CONFIRMED
        self._changed(i, now)
        self.save()
        return status.OK

    def cancel(self, rid, now):
        """Cancel before the start or during the window (works with an invalid clock)."""
        i = self.find(rid)
        if i < 0:
            return status.E_UNKNOWN_ID
        if not self.live(i):
            return status.E_STATE
        self.state[i] = CANCELLED
        self._changed(i, now)
        self.save()
        return status.OK

    # -- the tick ------------------------------------------------------------------------

    def evaluate(self, now):
        """Advance states to the wall minute of `now` and compute limit_a/limit_id (real
        caps) and drill_a/drill_id (drill caps), 0 when none is active. Allocation-free."""
        now_ms = now.ms
        minute = now.minute
        valid = now.valid
        changed = False
        lim = 0
        lim_id = 0
        dlim = 0
        did = 0
        state = self.state
        for i in range(SLOTS):
            s = state[i]
            if s == FREE or s == ENDED or s == CANCELLED or s == EXPIRED:
                continue
            if valid:
                if s == CREATED and minute >= self.start[i]:
                    s = EXPIRED
                elif s == CONFIRMED and minute >= self.start[i]:
                    if minute >= self.end[i]:
                        s = ENDED
                    else:
                        s = ACTIVE
                        self.act_ms[i] = now_ms
                elif s == ACTIVE and (minute >= self.end[i] or minute < self.start[i]):
                    s = ENDED
            if s == ACTIVE and elapsed_ms(now_ms, self.act_ms[i]) >= (
                    self.end[i] - self.start[i]) * _MS_PER_MIN:
                s = ENDED
            if s != state[i]:
                state[i] = s
                changed = True
                self._changed(i, now)
            if s == ACTIVE and valid:
                a = self.limit[i]
                if self.flags[i] & FLAG_DRILL:
                    if dlim == 0 or a < dlim:
                        dlim = a
                        did = self.rid[i]
                elif lim == 0 or a < lim:
                    lim = a
                    lim_id = self.rid[i]
        self.limit_a = lim
        self.limit_id = lim_id
        self.drill_a = dlim
        self.drill_id = did
        if changed:
            self.save()

    def rebase(self, now):
        """After a restore: date the guard of ACTIVE reservations from their wall start
        (or from now when the clock is invalid), so the guard ends them on time."""
        minute = now.minute
        for i in range(SLOTS):
            if self.state[i] == ACTIVE:
                ago = 0
                if now.valid and minute > self.start[i]:
                    ago = (minute - self.start[i]) * _MS_PER_MIN
                    if ago > HARD_MAX_DURATION_MIN * _MS_PER_MIN:
                        ago = HARD_MAX_DURATION_MIN * _MS_PER_MIN
                self.act_ms[i] = add_ms(now.ms, -ago)

    def _changed(self, i, now):
        self.events.stamp(RESERVATION, now, self.rid[i], self.state[i])

    # -- persistence ---------------------------------------------------------------------

    def _pack(self):
        b = self._blob
        b[0] = _BLOB_VERSION
        for i in range(SLOTS):
            struct.pack_into(RECORD_FMT, b, 1 + i * _FIELDS_LEN, self.rid[i], self.start[i],
                             self.end[i], self.limit[i], self.flags[i], self.state[i])
        return b

    def save(self):
        self.saver.save(self._pack())

    def to_bytes(self):
        return bytes(self._pack())

    def from_bytes(self, blob):
        """Restore the table from a to_bytes() blob. A blob that is not a valid table raises
        SettingError (E_RESERVATION_RECORD: length or version, E_RESERVATION_SLOT: a slot's
        fields out of range, E_RESERVATION_DUPLICATE: one id in two live slots) and changes
        nothing."""
        if len(blob) != BLOB_LEN or blob[0] != _BLOB_VERSION:
            raise SettingError("E_RESERVATION_RECORD")
        rows = []
        for i in range(SLOTS):
            r = struct.unpack_from(RECORD_FMT, blob, 1 + i * _FIELDS_LEN)
            rid, start, end, limit, flags, st = r
            if st > EXPIRED or (st != FREE and (
                    rid == 0 or limit not in self.allowed or flags & ~FLAG_DRILL
                    or end <= start or end - start > HARD_MAX_DURATION_MIN)):
                raise SettingError("E_RESERVATION_SLOT")
            if st != FREE and any(q[_R_STATE] != FREE and q[_R_ID] == rid for q in rows):
                raise SettingError("E_RESERVATION_DUPLICATE")
            rows.append(r)
        for i in range(SLOTS):
            rid, start, end, limit, flags, st = rows[i]
            self.rid[i] = rid
            self.start[i] = start
            self.end[i] = end
            self.limit[i] = limit
            self.flags[i] = flags
            self.state[i] = st
            self.act_ms[i] = 0
            d = digest(rid, start, end, limit, flags) if st != FREE else bytes(DIGEST_LEN)
            self.digests[i * DIGEST_LEN:(i + 1) * DIGEST_LEN] = d
