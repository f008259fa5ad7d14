# The A-route outbox: the series rings and the event log ARE the outbox; this keeps one
# acknowledged-up-to cursor per stream over them, and what else the A-route persists.
#
# Streams (index = push report index): S_HALF 30-minute values, S_FIVE 5-minute values,
# S_MINUTE 1-minute values (interval numbers k: the interval ending at wall minute
# k * step), S_EVENTS the event log (seqs). cursor[s] is the first item NOT yet
# acknowledged by the broker; everything from it to the newest is still to send.
#   next_item(s)   the item after the newest: high-water // step + 1 (events: log.seq)
#   oldest(s)      the oldest item still held: the oldest boundary in the ring (1-minute:
#                  60 entries; 5-minute: 24 h; 30-minute: the RAM ring or the first of the
#                  journal's half-hour blocks, the long history); events: the oldest log
#                  entry; next_item(s) when nothing is held
#   clamp(s)       a cursor behind the retention jumps to the oldest held item (the gap
#                  is counted in lost[s]; the head-end sees it as missing); one ahead of
#                  the newest (a forced clock correction moved the capture back) comes back
# Values of boundaries that were not captured are sent as -1 (every column), as are those
# no longer held by the time a message is built.
#
# Persisted (REC_OUTBOX key 0 through the store's KIND_OUTBOX save handle; big-endian):
#   u8 version 1 | u32 boot count | u32 cursor x 4 (S_HALF, S_FIVE, S_MINUTE, S_EVENTS)
#   | u32 alarm register | u32 alarm-scan seq                               (29 bytes)

from micropython import const
import struct

from meter.errors import SettingError

S_HALF = const(0)
S_FIVE = const(1)
S_MINUTE = const(2)
S_EVENTS = const(3)
STREAMS = const(4)
STEPS = (30, 5, 1, 0)
COLS = (2, 5, 2, 0)
_VERSION = const(1)
RECORD_FMT = ">BIIIIIII"
RECORD_LEN = const(29)
_HALF_SPAN = const(720)  # minutes per journal half-hour block (storage.store HALF_BLOCK x 30)
MISSING = const(-1)


class Outbox:
    """capture: IntervalCapture; events: EventLog; store: meter.storage.store.Store or None
    (its half-hour blocks extend the 30-minute retention; None: RAM only)."""

    def __init__(self, capture, events, store=None):
        self.capture = capture
        self.events = events
        self.store = store
        self.rings = (capture.half, capture.five, capture.ring)
        for i in range(S_EVENTS):
            r = self.rings[i]
            if r.step != STEPS[i] or r.ncols < COLS[i]:
                raise SettingError("E_OUTBOX_SERIES")
        self.cursor = [0, 0, 0, 0]
        self.lost = [0, 0, 0, 0]  # items skipped because the retention had passed them
        self.boots = 0
        self._buf = bytearray(RECORD_LEN)

    # ---- what is held -------------------------------------------------------------------

    def next_item(self, s):
        if s == S_EVENTS:
            return self.events.seq
        hw = self.capture.high_water
        return hw // STEPS[s] + 1 if hw >= 0 else 0

    def oldest(self, s):
        """The oldest item held (== next_item(s) when nothing is held). Allocates for the
        30-minute series (the journal's key list): call it at connect and for range reads."""
        if s == S_EVENTS:
            return self.events.seq - self.events.n
        nxt = self.next_item(s)
        step = STEPS[s]
        st = self.rings[s].stamp
        lo = nxt
        for i in range(len(st)):
            m = st[i]
            if 0 <= m and m // step < lo:
                lo = m // step
        if s == S_HALF and self.store is not None:
            from meter.storage.records import REC_HALF

            keys = self.store.journal.keys(REC_HALF)
            if keys:
                first = min(keys) * (_HALF_SPAN // 30)
                # the oldest block's leading intervals before the meter's first capture are
                # not values to send (a fresh meter would backfill a block of -1s)
                hist = self.store.history
                while first < lo and hist(first * 30) == MISSING:
                    first += 1
                lo = min(lo, first)
        return lo

    def clamp(self, s):
        """Bring cursor[s] into [oldest, next]: returns True when it moved."""
        c = self.cursor[s]
        lo = self.oldest(s)
        hi = self.next_item(s)
        if c < lo:
            self.lost[s] += lo - c if c > 0 else 0
            self.cursor[s] = lo
            return True
        if c > hi:
            self.cursor[s] = hi
            return True
        return False

    def value(self, s, k, c):
        """Column c of series item k (MISSING when not captured or no longer held)."""
        step = STEPS[s]
        m = k * step
        ring = self.rings[s]
        slot = ring.slot(m)
        if slot >= 0:
            return ring.cols[c][slot]
        if s == S_HALF and self.store is not None and m <= self.capture.high_water:
            h = self.store.history(m)  # the long history on flash (allocates a tuple)
            if h != MISSING:
                return h[c]
        return MISSING

    def fill_series(self, enc, s, k0, n):
        """Pack n entries from k0 into a series message begun on enc (aroute.wire)."""
        cols = COLS[s]
        for i in range(n):
            k = k0 + i
            m = k * STEPS[s]
            ring = self.rings[s]
            slot = ring.slot(m)
            if slot >= 0:
                rc = ring.cols
                for c in range(cols):
                    enc.series_put(i, c, rc[c][slot])
            else:
                for c in range(cols):
                    enc.series_put(i, c, self.value(s, k, c) if s == S_HALF else MISSING)

    def fill_events(self, enc, seq0, n):
        log = self.events
        for i in range(n):
            slot = log.find(seq0 + i)
            if slot >= 0:
                enc.event_put(i, log.code[slot] & 0xFF, log.minute[slot], log.second[slot],
                              log.a[slot], log.b[slot])
            else:
                enc.event_put(i, 0, MISSING, 0, 0, 0)

    # ---- persistence ------------------------------------------------------------------

    def pack(self, register, seen):
        c = self.cursor
        struct.pack_into(RECORD_FMT, self._buf, 0, _VERSION, self.boots, c[0], c[1], c[2],
                         c[3], register & 0xFFFFFFFF, seen)
        return self._buf

    def load(self, blob):
        """Restore from a persisted record; returns (alarm register, alarm-scan seq).
        Raises SettingError("E_OUTBOX_RECORD") for a record of another format."""
        if blob is None or len(blob) != RECORD_LEN or blob[0] != _VERSION:
            raise SettingError("E_OUTBOX_RECORD")
        _, boots, c0, c1, c2, c3, reg, seen = struct.unpack(RECORD_FMT, blob)
        self.boots = boots
        self.cursor[0] = c0
        self.cursor[1] = c1
        self.cursor[2] = c2
        self.cursor[3] = c3
        return reg, seen
