# The one persistence owner: every record's payload, the keep map, restore at boot, commits.
#
# Kept (record type: payload, little-endian; offsets are the _OFF_* names below):
#   REC_REGISTERS (key 0)  u8 version | u8 unit | 2 pad | u32 coefficient
#                          | 4 x (u32 count, u32 rem_dwh, u32 rem_j, u32 wraps)   FWD REV LAG LEAD
#                          | i32 high_water | i32 last_five | i64 volt_sum | i32 volt_n
#                          | i32 missed      (IntervalCapture state: the partial interval)
#   the interval series, one row each of SERIES (one block layout for all three):
#     block of key k = i32 base minute | u32 present bits | per boundary `columns` x i32
#   REC_MINUTE  key m//10   10 one-minute boundaries: (fwd, rev)          keep 7 (>= 60 minutes)
#   REC_FIVE    key m//40   8 five-minute boundaries: (fwd, rev, lag, lead, volt 0.1 V)
#                                                                        keep 37 (>= 24 h)
#   REC_HALF    key m//720  24 half-hour boundaries (12 h): (fwd, rev)
#                          keep HALF_BLOCKS = 204 (102 days: ECHONET E2/E4 days 0..99 and the
#                          current day); served from flash by history(minute)
#   REC_EVENT   key seq//10 10 event-log entries: u32 base seq | u32 present bits
#                          | 10 x (u16 code, u8 second, u8 pad, i32 minute, i32 a, i32 b)
#                          keep 14 (>= the 128-entry EventLog)
#   REC_CLOCK   (key 0)     u8 version | u8 valid | 2 pad | i32 minute | i32 second
#                          | u32 adjustments        (the last clock setting, see clock.py)
#   REC_LASTGASP (key 0)    the Last Gasp machine's state (its own format, outage.lastgasp)
#   REC_LIMITER key 0/1/2, REC_RESERVATIONS key 0, REC_AUDIT key entry seq: blobs of the
#                          control parts (their own formats), saved through saver(kind):
#                          KIND_LIMITER (REC_LIMITER, 0), KIND_COUNTER (REC_LIMITER, 1),
#                          KIND_DRILL (REC_LIMITER, 2), KIND_RESERVATIONS
#                          (REC_RESERVATIONS, 0), KIND_AUDIT (REC_AUDIT, the big-endian u32
#                          entry seq of the blob's first 4 bytes & 0x3FFFFFFF); keep 3 keys of
#                          REC_LIMITER and AUDIT_KEYS of REC_AUDIT.
# keep_map() is the retention of exactly this record set; every journal of the product and
# of the tools is built with it (meter.storage.assembly.build_storage).
# The RAM rings (intervals.SeriesRing: 60 minutes, 288 five-minute values, a few days of
# half hours) hold every entry of the blocks still being filled, so a block is rebuilt from
# RAM at each commit and RAM stays bounded; older half-hour history is read back from
# flash. A ring smaller than one block (a test) merges its block with the one on flash.
#
# Commit policy (the app calls these):
#   on_tick(now, bits) after every metering tick: it calls commit_minute() at every
#                    minute boundary (the tick returned intervals.MINUTE) and every COMMIT_MS
#                    of monotonic time (now.ms) while no boundary is processed (clock invalid
#                    or set back behind the high-water mark), so the registers are committed
#                    at least once a minute whatever the wall clock does.
#   commit_minute()  one atomic journal group: the blocks that gained entries since the
#                    last commit, the dirty event blocks, then REC_REGISTERS. 2 page programs
#                    a minute, 3 at five-minute boundaries, 4 at half-hours (+1 when the
#                    group opens a fresh sector); never an erase.
#   commit_now()     on demand, the Last Gasp: the same group written into the slots the
#                    journal keeps erased for it (journal.LAST_GASP_SLOTS), never an erase.
#   save_lastgasp(payload)  the Last Gasp machine's state (REC_LASTGASP), reserved slots too.
#   saver(kind).save(blob)  a control part's state change (normal slots; never raises).
#   compact_step()   from the idle loop: at most one sector erase per call; stop calling it
#                    once the Last Gasp sequence has started.
# Worst-case loss:
#   * without a Last Gasp commit: the energy since the last minute commit, i.e. less than
#     one minute of energy (plus the few ms a commit takes), and the events logged in that
#     minute; boundaries already committed are never lost.
#   * with a Last Gasp commit after metering is frozen: none.
#   A commit cut by the power failure is either used whole or ignored whole at boot
#   (journal groups), so the registers restored are those of the last complete commit:
#   they never go backwards past it and never run ahead of what was measured.
# Boundaries are committed only when captured, so after a reboot an interval is never
# duplicated, overwritten or invented; the high-water mark is persisted with the registers.

from micropython import const
import struct

from meter.errors import SettingError
from meter.metering.intervals import MISSING, MINUTE, RING_MINUTES
from meter.metering.registers import COUNT
from meter.storage import journal as _j
from meter.storage.records import (
    REC_REGISTERS, REC_MINUTE, REC_FIVE, REC_HALF, REC_EVENT, REC_CLOCK, REC_LIMITER,
    REC_RESERVATIONS, REC_AUDIT, REC_LASTGASP, KIND_LIMITER, KIND_RESERVATIONS,
    KIND_COUNTER, KIND_AUDIT, KIND_DRILL, AUDIT_KEYS)
from meter.ticks import elapsed_ms

_VERSION = const(1)
COMMIT_MS = const(60_000)  # longest time between two commits while the meter runs
MINUTE_BLOCK = const(10)  # boundaries per REC_MINUTE block
FIVE_BLOCK = const(8)  # five-minute boundaries per REC_FIVE block (40 min)
HALF_BLOCK = const(24)  # half-hour boundaries per REC_HALF block (12 h)
EVENT_BLOCK = const(10)  # event-log entries per REC_EVENT block
HALF_BLOCKS = const(204)  # 102 days of half-hour history on flash
HISTORY_DAYS = const(100)  # ECHONET E2/E4 days 0..99 always on flash
LIMITER_KEYS = const(3)  # REC_LIMITER keys: limiter state, command counter, drill report

# REC_REGISTERS
_REGS_FMT = "<BB2xI"  # version, unit, coefficient at offset 0
_REG_FMT = "<IIII"  # count, rem_dwh, rem_j, wraps of one register
_OFF_REG = const(8)  # register r at _OFF_REG + _REG_LEN * r
_REG_LEN = const(16)
_CAP_FMT = "<iiqii"  # high_water, last_five, volt_sum, volt_n, missed
_OFF_CAPTURE = const(72)  # = _OFF_REG + COUNT * _REG_LEN
_REGS_LEN = const(96)  # = _OFF_CAPTURE + calcsize(_CAP_FMT)

# Series blocks (all three series) and event blocks: a header, then fixed-size entries
_BLOCK_FMT = "<iI"  # base minute (events: u32 base seq), present bits
_OFF_BITS = const(4)
_BLOCK_HDR = const(8)  # the first entry's offset
_VALUE_LEN = const(4)  # one i32 column value of a series entry
_EVENT_HDR_FMT = "<II"
_EVENT_FMT = "<HBxiii"  # code, second, pad, minute, a, b
_EVENT_LEN = const(16)

# REC_CLOCK
_CLOCK_FMT = "<BB2xiiI"  # version, valid, minute, second, adjustments

# The interval series, one row each: the only description of their flash blocks.
#   record type, step (minutes between boundaries), boundaries per block, columns per
#   entry (a prefix of intervals.COLUMNS: fwd, rev, lag, lead, volt), blocks kept:
#   _RING = the blocks covering the RAM ring plus the one being filled (keep_map counts
#   them from the ring's entries), or a count of blocks (history served from flash).
# Row i is persisted from the capture's ring i (ring, five, half).
_RING = const(0)
SERIES = (
    (REC_MINUTE, 1, MINUTE_BLOCK, 2, _RING),
    (REC_FIVE, 5, FIVE_BLOCK, 5, _RING),
    (REC_HALF, 30, HALF_BLOCK, 2, HALF_BLOCKS),
)
_S_TYPE = const(0)
_S_STEP = const(1)
_S_PER = const(2)
_S_COLS = const(3)
_S_KEEP = const(4)
_HALF = const(2)  # the row of the half-hour series (history())

# Control kinds -> (record type, key); KIND_AUDIT's key comes from the blob
_KIND_RECORD = {
    KIND_LIMITER: (REC_LIMITER, 0),
    KIND_COUNTER: (REC_LIMITER, 1),
    KIND_DRILL: (REC_LIMITER, 2),
    KIND_RESERVATIONS: (REC_RESERVATIONS, 0),
}
_AUDIT_KEY_MASK = const(0x3FFF_FFFF)  # audit keys: the entry seq, kept a small int


def _blocks_kept(row, entries):
    per = row[_S_PER]
    return (entries + per - 1) // per + 1


def keep_map(five_entries=288, event_entries=128, half_blocks=HALF_BLOCKS):
    """The journal retention (records kept per type) of every record type the meter writes:
    the product's record set. The arguments size the rings (the 5-minute ring's and the
    event log's entries, the half-hour blocks on flash); the defaults are the product's,
    smaller ones fit a small test partition. Types absent here keep 1 key (the journal's
    default)."""
    keep = {
        REC_REGISTERS: 1,
        REC_CLOCK: 1,
        REC_LASTGASP: 1,
        REC_RESERVATIONS: 1,
        REC_LIMITER: LIMITER_KEYS,
        REC_AUDIT: AUDIT_KEYS,
        REC_EVENT: (event_entries + EVENT_BLOCK - 1) // EVENT_BLOCK + 1,
    }
    entries = (RING_MINUTES, five_entries, half_blocks)
    for i in range(len(SERIES)):
        row = SERIES[i]
        keep[row[_S_TYPE]] = _blocks_kept(row, entries[i]) if row[_S_KEEP] == _RING \
            else entries[i]
    return keep


def kind_record(kind, blob=None):
    """(record type, key) a control kind is kept under. KIND_AUDIT has one key per entry:
    the seq in the blob's first 4 bytes (key -1 without a blob). Raises
    SettingError("E_STORE_KIND") for an unknown kind."""
    if kind == KIND_AUDIT:
        if blob is None:
            return REC_AUDIT, -1
        seq = (blob[0] << 24) | (blob[1] << 16) | (blob[2] << 8) | blob[3]
        return REC_AUDIT, seq & _AUDIT_KEY_MASK
    rk = _KIND_RECORD.get(kind)
    if rk is None:
        raise SettingError("E_STORE_KIND")
    return rk


class Saver:
    """A save-only handle of one control kind (Store.saver). save(data) copies data (at
    most records.MAX_BLOB bytes) into the journal before returning. A failed append
    (JournalFull, a flash fault) is counted in `failed` / `last_error` (and in the store's
    save_failures) and never propagates: the limiter keeps protecting from RAM."""

    def __init__(self, store, kind):
        kind_record(kind)  # refuse an unknown kind now, not at the first save
        self.store = store
        self.kind = kind
        self.failed = 0
        self.last_error = None

    def save(self, data):
        st = self.store
        try:
            rtype, key = kind_record(self.kind, data)
            st.journal.append(rtype, bytes(data), key)
        except Exception as e:  # JournalFull, flash errors, a short blob: count, run on
            self.failed += 1
            self.last_error = e
            st.save_failures += 1


class Store:
    """Persists EnergyRegisters, IntervalCapture (ring, five, half, high-water), the
    EventLog, the clock setting, the Last Gasp state and the control parts' blobs through a
    Journal built with keep_map() (mounted by restore())."""

    def __init__(self, journal, regs, capture, events):
        self.journal = journal
        self.regs = regs
        self.capture = capture
        self.events = events
        self._rings = (capture.ring, capture.five, capture.half)  # parallel to SERIES
        for i in range(len(SERIES)):
            r = self._rings[i]
            if r.step != SERIES[i][_S_STEP] or r.ncols < SERIES[i][_S_COLS]:
                raise SettingError("E_STORE_SERIES")
        self._hw = MISSING  # high-water mark covered by the last commit
        self._dirty_events = []  # event-block keys with entries not yet committed
        self.clock_valid = 0  # the last clock setting persisted (clock.py)
        self.clock_minute = MISSING
        self.clock_second = 0
        self.clock_adjustments = 0
        self.commits = 0
        self._last_ms = None  # now.ms of the last commit_minute() from on_tick()
        self._retry = False  # the last on_tick() commit found the journal full
        self.full_errors = 0  # commits refused for want of erased space
        self.save_failures = 0  # control blobs a Saver could not append
        self.report = None
        self._buf = bytearray(_j.MAX_PAYLOAD)
        events.listener = self._on_event
        journal.listener = self._on_problem

    # ---- boot --------------------------------------------------------------------------

    def restore(self, now=None):
        """Mount the journal and rebuild registers, capture and event log from it (the
        objects must be freshly constructed). Problems found are logged as events stamped
        (now.ev_minute, now.second) (-1, 0 without a clock reading) and committed at once,
        so the evidence outlives compaction. Returns the journal's mount Report."""
        minute = MISSING if now is None else now.ev_minute
        second = 0 if now is None else now.second
        j = self.journal
        listener, j.listener = j.listener, None
        try:
            rep = j.mount()
        finally:
            j.listener = listener
        self.report = rep
        self._restore_registers()
        self._restore_series()
        self._restore_events()
        self._restore_clock()
        self._hw = self.capture.high_water
        for code, a, b in rep.problems:
            self._log_problem(code, a, b, minute, second)
        if self._dirty_events:
            try:
                self._commit(_j.NORMAL)
            except _j.JournalFull:
                pass  # after a Last Gasp used the reserve: committed once compaction ran
        return rep

    def _restore_registers(self):
        p = self.journal.payload_view(REC_REGISTERS)
        if p is None:
            return  # a new meter
        ver, unit, coef = struct.unpack_from(_REGS_FMT, p, 0)
        if ver != _VERSION or len(p) != _REGS_LEN:
            raise SettingError("E_STORE_VERSION")
        regs = self.regs
        if regs.unit != unit or regs.coefficient != coef:
            regs.configure(unit, coef)
        for r in range(COUNT):
            count, rd, rj, wraps = struct.unpack_from(_REG_FMT, p, _OFF_REG + _REG_LEN * r)
            regs.restore(r, count, rd, rj, wraps)
        cap = self.capture
        hw, lf, vs, vn, missed = struct.unpack_from(_CAP_FMT, p, _OFF_CAPTURE)
        cap.high_water = hw
        cap.last_five = lf
        cap.volt_sum = vs
        cap.volt_n = vn
        cap.missed = missed

    def _restore_series(self):
        """Every boundary of each series' blocks inside its RAM ring's window, ending at the
        restored high-water mark, back into the ring."""
        hw = self.capture.high_water
        if hw < 0:
            return
        j = self.journal
        for i in range(len(SERIES)):
            rtype, step, per, cols, _ = SERIES[i]
            ring = self._rings[i]
            fmt = "<" + "i" * cols
            size = _VALUE_LEN * cols
            lo = hw - step * ring.entries
            for key in j.keys(rtype):
                if (key + 1) * step * per <= lo:
                    continue  # the whole block is older than the ring's window
                p = j.payload_view(rtype, key)
                if p is None:
                    continue
                base, bits = struct.unpack_from(_BLOCK_FMT, p, 0)
                for k in range(per):
                    m = base + step * k
                    if bits >> k & 1 and lo < m <= hw:
                        ring.record(m, *struct.unpack_from(fmt, p, _BLOCK_HDR + size * k))

    def _restore_events(self):
        ev = self.events
        for key, p in self.journal.records(REC_EVENT):
            base, bits = struct.unpack_from(_EVENT_HDR_FMT, p, 0)
            for i in range(EVENT_BLOCK):
                if bits >> i & 1:
                    code, sec, minute, a, b = struct.unpack_from(
                        _EVENT_FMT, p, _BLOCK_HDR + _EVENT_LEN * i)
                    ev.restore(base + i, code, minute, sec, a, b)

    def _restore_clock(self):
        p = self.journal.payload_view(REC_CLOCK)
        if p is None:
            return
        ver, valid, minute, second, adj = struct.unpack_from(_CLOCK_FMT, p, 0)
        self.clock_valid = valid
        self.clock_minute = minute
        self.clock_second = second
        self.clock_adjustments = adj

    # ---- the control parts' blobs ------------------------------------------------------

    def saver(self, kind):
        """A save-only handle for one control kind (records.KIND_*): save(data)."""
        return Saver(self, kind)

    def latest(self, kind):
        """The newest blob (bytes) of a kind, or None (KIND_AUDIT: the newest entry)."""
        rtype, key = kind_record(kind)
        j = self.journal
        if kind == KIND_AUDIT:
            keys = j.keys(rtype)
            for i in range(len(keys) - 1, -1, -1):
                p = j.latest(rtype, keys[i])
                if p is not None:
                    return p
            return None
        return j.latest(rtype, key)

    def all(self, kind):
        """The blobs of a kind, oldest first: for KIND_AUDIT every audit entry kept (oldest
        seq first), for the others the newest blob alone (or none)."""
        rtype, key = kind_record(kind)
        if kind == KIND_AUDIT:
            return [p for _, p in self.journal.records(rtype)]
        p = self.journal.latest(rtype, key)
        return [] if p is None else [p]

    # ---- problems and events -----------------------------------------------------------

    def _on_problem(self, code, a, b):
        """Journal problems found after boot (audit, compaction): log them once."""
        self._log_problem(code, a, b, MISSING, 0)

    def _log_problem(self, code, a, b, minute, second):
        # The same damaged record is reported at every mount until compaction reclaims
        # its sector; one event per record is enough.
        ev = self.events
        for k in range(ev.n):
            e = ev.get(k)
            if e[1] == code and e[4] == a and e[5] == b:
                return
        ev.log(code, minute, second, a, b)

    def _on_event(self, seq, code, minute, second, a, b):
        key = seq // EVENT_BLOCK
        if key not in self._dirty_events:
            self._dirty_events.append(key)

    # ---- commits -----------------------------------------------------------------------

    def on_tick(self, now, bits):
        """Call after every metering tick with the step's clock reading `now`
        (meter.clock.Now; only now.ms is used) and the tick's interval-capture result (or
        metering.REJECTED). Commits when a minute boundary was processed or, while no
        boundary is processed (clock invalid, or set back behind the high-water mark),
        when COMMIT_MS of monotonic time passed since the last commit. Returns the seq
        committed or -1. Never raises JournalFull (counted in full_errors, retried).
        Allocation-free when nothing is due."""
        now_ms = now.ms
        last = self._last_ms
        if last is None:
            self._last_ms = now_ms
            last = now_ms
        if (bits > 0 and bits & MINUTE) or self._retry or \
                elapsed_ms(now_ms, last) >= COMMIT_MS:
            self._last_ms = now_ms
            try:
                seq = self.commit_minute(bits)
            except _j.JournalFull:
                # Compaction fell behind: the state stays in RAM and the commit is retried
                # at every tick until compact_step() has made room.
                self.full_errors += 1
                self._retry = True
                return -1
            self._retry = False
            return seq
        return -1

    def commit_minute(self, bits=0):
        """Commit at a minute boundary (bits, the tick's capture result, is accepted for
        the app's convenience and not needed). Raises journal.JournalFull when compaction
        fell behind (nothing is written then; the state stays in RAM for the next try)."""
        return self._commit(_j.NORMAL)

    def commit_now(self):
        """Last Gasp commit: the registers with the partial interval and any pending
        blocks, into pre-erased reserved slots. Zero erases. When the reserve is short (a
        burst of outages used it before compaction ran), the registers alone are written:
        the energy is kept, boundaries not yet committed may then be missing after a
        reboot (never invented). Raises JournalFull when not even that fits."""
        try:
            return self._commit(_j.LAST_GASP)
        except _j.JournalFull:
            seq = self.journal.append(REC_REGISTERS, self._registers(), 0, _j.LAST_GASP)
            self.commits += 1
            return seq

    def save_lastgasp(self, payload):
        """Persist the Last Gasp machine's state (REC_LASTGASP) into the reserved slots:
        zero erases."""
        return self.journal.append(REC_LASTGASP, payload, 0, _j.LAST_GASP)

    def lastgasp_state(self):
        """The persisted Last Gasp state (bytes) or None."""
        return self.journal.latest(REC_LASTGASP)

    def commit_clock(self, valid, minute, second, adjustments):
        """Persist the clock setting together with the pending event blocks (clock.py)."""
        self.clock_valid = 1 if valid else 0
        self.clock_minute = minute
        self.clock_second = second
        self.clock_adjustments = adjustments
        return self._commit(_j.NORMAL, True)

    def _commit(self, reserve, with_clock=False):
        items = []
        hw = self.capture.high_water
        if hw > self._hw:
            self._blocks(items, hw)
        # Only blocks with entries still in the RAM log can be written (a long run of
        # refused commits may have let older ones scroll out): this bounds the group.
        ev = self.events
        oldest = ev.seq - ev.n
        for key in self._dirty_events:
            if (key + 1) * EVENT_BLOCK > oldest:
                items.append((REC_EVENT, key, self._event_block(key)))
        if with_clock:
            p = struct.pack(_CLOCK_FMT, _VERSION, self.clock_valid, self.clock_minute,
                            self.clock_second, self.clock_adjustments)
            items.append((REC_CLOCK, 0, p))
        items.append((REC_REGISTERS, 0, self._registers()))
        seq = self.journal.append_group(items, reserve)
        self._hw = hw
        self._dirty_events = []
        self.commits += 1
        return seq

    def _blocks(self, items, hw):
        """Blocks of every series holding boundaries captured in (last committed high-water,
        hw], series by series in SERIES order, oldest block first."""
        last = self._hw
        for i in range(len(SERIES)):
            rtype, step, per, _, _ = SERIES[i]
            ring = self._rings[i]
            span = step * per
            lo = max(last + 1, hw - step * ring.entries + 1)
            key = -1
            m = lo + (-lo) % step  # the first boundary of the series in range
            while m <= hw:  # (a range() with a variable step would allocate)
                if m // span != key and ring.slot(m) >= 0:
                    key = m // span
                    items.append((rtype, key, self._series_block(i, key)))
                m += step

    def _series_block(self, i, key):
        """Block `key` of series row i, built from its RAM ring."""
        rtype, step, per, cols, _ = SERIES[i]
        ring = self._rings[i]
        rc = ring.cols
        size = _VALUE_LEN * cols
        base = key * step * per
        buf = bytearray(_BLOCK_HDR + size * per)
        bits = 0
        for k in range(per):
            s = ring.slot(base + step * k)
            if s >= 0:
                bits |= 1 << k
                off = _BLOCK_HDR + size * k
                for c in range(cols):
                    struct.pack_into("<i", buf, off + _VALUE_LEN * c, rc[c][s])
        if ring.entries < per:
            # RAM holds less than a block: keep what flash already has for this block.
            old = self.journal.payload_view(rtype, key)
            if old is not None:
                obits = struct.unpack_from("<I", old, _OFF_BITS)[0]
                for k in range(per):
                    if obits >> k & 1 and not bits >> k & 1:
                        bits |= 1 << k
                        off = _BLOCK_HDR + size * k
                        buf[off:off + size] = old[off:off + size]
        struct.pack_into(_BLOCK_FMT, buf, 0, base, bits)
        return buf

    def _registers(self):
        buf = self._buf
        regs = self.regs
        struct.pack_into(_REGS_FMT, buf, 0, _VERSION, regs.unit, regs.coefficient)
        for r in range(COUNT):
            struct.pack_into(_REG_FMT, buf, _OFF_REG + _REG_LEN * r, regs.count[r],
                             regs.rem_dwh[r], regs.rem_j[r], regs.wraps[r])
        cap = self.capture
        struct.pack_into(_CAP_FMT, buf, _OFF_CAPTURE, cap.high_water, cap.last_five,
                         cap.volt_sum, cap.volt_n, cap.missed)
        return bytes(buf[0:_REGS_LEN])

    def _event_block(self, key):
        ev = self.events
        base = key * EVENT_BLOCK
        buf = bytearray(_BLOCK_HDR + _EVENT_LEN * EVENT_BLOCK)
        bits = 0
        for k in range(ev.n):
            e = ev.get(k)
            i = e[0] - base
            if 0 <= i < EVENT_BLOCK:
                bits |= 1 << i
                struct.pack_into(_EVENT_FMT, buf, _BLOCK_HDR + _EVENT_LEN * i, e[1], e[3], e[2],
                                 e[4], e[5])
        struct.pack_into(_EVENT_HDR_FMT, buf, 0, base, bits)
        return buf

    # ---- reading -----------------------------------------------------------------------

    def history(self, minute):
        """Cumulative (fwd, rev) at half-hour boundary `minute`, from RAM for recent days
        and from flash otherwise; MISSING when it was not captured or has expired."""
        rtype, step, per, cols, _ = SERIES[_HALF]
        if minute < 0 or minute % step or minute > self.capture.high_water:
            return MISSING
        half = self._rings[_HALF]
        s = half.slot(minute)
        if s >= 0:
            return half.fwd[s], half.rev[s]
        key = minute // (step * per)
        p = self.journal.payload_view(rtype, key)
        if p is None:
            return MISSING
        base, bits = struct.unpack_from(_BLOCK_FMT, p, 0)
        i = (minute - base) // step
        if base != key * step * per or not bits >> i & 1:
            return MISSING
        return struct.unpack_from("<ii", p, _BLOCK_HDR + _VALUE_LEN * cols * i)

    def history_count(self, minute, reg):
        """history() in the form the ECHONET meter object reads (E2/E4/EC): the count of
        register reg (FWD or REV) at half-hour boundary `minute`, or MISSING."""
        h = self.history(minute)
        if h == MISSING or reg > 1:
            return MISSING
        return h[reg]

    # ---- background and audit ----------------------------------------------------------

    def compact_step(self):
        """Background journal compaction from the idle loop: at most one sector erase."""
        return self.journal.compact_step()

    def audit(self):
        """Re-verify the whole journal; problems not yet in the event log are logged."""
        return self.journal.audit()
