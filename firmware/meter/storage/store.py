# The one persistence owner: every record's payload, the keep map, restore at boot, commits.
#
# Kept (record type: payload, little-endian; offsets are the _OFF_* names below):
#   REC_REGISTERS (key 0)  u8 version | u8 unit | u8 flags | 1 pad | u32 coefficient
#                          | 4 x (u32 count, u32 rem_dwh, u32 rem_j, u32 wraps)   FWD REV LAG LEAD
#                          | i32 high_water | i32 last_five | i64 volt_sum | i32 volt_n
#                          | i32 missed      (IntervalCapture state: the partial interval)
#                          flags bit 0 REBUILT: the registers were lost and rebuilt from the
#                          newest captured boundary (registers_valid False until replaced)
#                          The same payload is the retained copy's (storage.retained).
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
#   REC_TAMPER  (key 0)     the tamper register, outside the event ring and never reclaimed:
#                          u8 version | u8 pending | 2 pad | u32 count | i32 ack minute
#                          | first finding, last finding: u16 code, 2 pad, i32 sector,
#                          i32 record seq, i32 minute | _RECENT x (i32 sector, i32 seq): the
#                          newest distinct findings (a finding reported again is not counted)
#   REC_LIMITER key 0/1/2, REC_RESERVATIONS key 0, REC_AUDIT key entry seq: blobs of the
#                          control parts (their own formats), saved through saver(kind):
#                          KIND_LIMITER (REC_LIMITER, 0), KIND_COUNTER (REC_LIMITER, 1),
#                          KIND_DRILL (REC_LIMITER, 2), KIND_RESERVATIONS
#                          (REC_RESERVATIONS, 0), KIND_OUTBOX (REC_OUTBOX, 0: aroute.outbox),
#                          KIND_CONFIG (REC_CONFIG, 0: aroute.service), KIND_AUDIT
#                          (REC_AUDIT, the big-endian u32 entry seq of the blob's first 4
#                          bytes & 0x3FFFFFFF); keep 3 keys of REC_LIMITER and AUDIT_KEYS of
#                          REC_AUDIT.
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
#   retain()         after every on_tick(): the registers' running copy into retained
#                    memory (hal.retained, storage.retained), allocation-free, no flash.
#   commit_now()     on demand, the Last Gasp: the same group written into the slots the
#                    journal keeps erased for it (journal.LAST_GASP_SLOTS), never an erase;
#                    skipped when nothing changed since the last commit (registers, partial
#                    interval, boundaries, events, tamper register), and deferred when a
#                    Last Gasp commit already ran since the last minute commit and no
#                    served value (count, wraps), boundary or tamper finding changed: a
#                    flapping supply then writes one commit per changed count, not one
#                    per outage; a power cut in such a burst loses at most the sub-count
#                    remainders, the partial 5-minute voltage and the events of < 1 min.
#   save_lastgasp(payload)  the Last Gasp machine's state (REC_LASTGASP), reserved slots too;
#                    not rewritten when identical to the last one saved.
#   saver(kind).save(blob)  a control part's state change (normal slots; never raises;
#                    True when durable).
#   compact_step()   from the idle loop: at most one sector erase per call; stop calling it
#                    once the Last Gasp sequence has started.
# Worst-case loss:
#   * a crash, watchdog reset, panic or soft reset (retained memory kept): none of the
#     energy metered before the last completed step (the retained copy), so no value served
#     before the reset is lower after it; the events logged since the last commit.
#   * a power cut without a Last Gasp commit (retained memory lost): the energy since the
#     last minute commit, i.e. less than one minute of energy (plus the few ms a commit
#     takes), and the events logged in that minute; boundaries already committed are never
#     lost.
#   * with a Last Gasp commit after metering is frozen: none.
#   A commit cut by the power failure is either used whole or ignored whole at boot
#   (journal groups), so the registers restored are those of the last complete commit:
#   they never go backwards past it and never run ahead of what was measured.
# Boundaries are committed only when captured, so after a reboot an interval is never
# duplicated, overwritten or invented; the high-water mark is persisted with the registers.
#
# Restore at boot (restore()), in order: the journal's registers; when they are missing but
# series or events are on flash (the records were lost), the registers are rebuilt from the
# newest captured boundary (never below the history served), flagged REBUILT
# (registers_valid False) and REGISTERS_LOST logged; then the retained copy, used only when
# it is this meter's (tag), intact (CRC), runs on from exactly the journal's newest
# registers commit (base seq not beyond the journal's head, base crc equal), holds at least
# the journal's energy and boundary, and no more energy beyond it than 1 MW for each of
# its seconds (RETAINED_USED); otherwise the journal stands (retained_state says why;
# RETAINED_REJECTED for anything but blank or stale).

from micropython import const
import struct

from meter.errors import SettingError
from meter.events import (
    BOUNDARIES_LOST, REGISTERS_LOST, RETAINED_REJECTED, RETAINED_USED, TAMPER_ACK, TAMPER_SEAL)
from meter.metering.intervals import MISSING, MINUTE, RING_MINUTES
from meter.metering.registers import COUNT, FWD, LAG, LEAD, MODULO, REV
from meter.storage import journal as _j
from meter.storage.records import (
    REC_REGISTERS, REC_MINUTE, REC_FIVE, REC_HALF, REC_EVENT, REC_CLOCK, REC_LIMITER,
    REC_RESERVATIONS, REC_AUDIT, REC_LASTGASP, REC_TAMPER, KIND_LIMITER, KIND_RESERVATIONS,
    KIND_COUNTER, KIND_AUDIT, KIND_DRILL, AUDIT_KEYS, REC_OUTBOX, REC_CONFIG, KIND_OUTBOX,
    KIND_CONFIG)  # REC_OUTBOX, REC_CONFIG: one key each, the journal's default
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
_DROP_GROUP = const(8)  # journal records per group when drop_future() drops blocks

# REC_REGISTERS
_REGS_FMT = "<BBBxI"  # version, unit, flags, coefficient at offset 0
_F_REBUILT = const(1)  # flags: rebuilt from the series after the registers were lost
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

# REC_TAMPER
_TAMPER_FMT = "<BB2xIi"  # version, pending, count, ack minute
_FINDING_FMT = "<H2xiii"  # code, sector, record seq, minute
_OFF_FIRST = const(12)
_OFF_LAST = const(28)
_OFF_RECENT = const(44)  # _RECENT x (i32 sector, i32 seq)
_RECENT = const(4)  # distinct findings remembered (not counted twice)
_TAMPER_LEN = const(76)  # = _OFF_RECENT + 8 * _RECENT

# Retained copy plausibility: no more energy beyond the commit than 1 MW for each second
_MAX_DWH_PER_S = const(2778)  # 1 MW x 1 s = 10**6 J, in dWh (360 J)
_SMALL_MAX = const(0x3FFF_FFFF)

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
    KIND_OUTBOX: (REC_OUTBOX, 0),
    KIND_CONFIG: (REC_CONFIG, 0),
}
_AUDIT_KEY_MASK = const(0x3FFF_FFFF)  # audit keys: the entry seq, kept a small int

# Store.restored_from: where the registers came from at boot
FROM_NEW = const(0)  # nothing on flash: a new meter
FROM_JOURNAL = const(1)  # the journal's last commit
FROM_RETAINED = const(2)  # the retained copy (a crash or reset after that commit)
FROM_SERIES = const(3)  # rebuilt from the newest captured boundary (registers lost)
FROM_DAMAGED = const(4)  # no registers on a damaged flash: not a new meter, values unknown


_i32 = _j._i32  # the little-endian i32 at b[o], without struct's tuple


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
    save_failures) and never propagates: the limiter keeps protecting from RAM. save()
    returns True when the blob is durable (appended), False when it was refused: a part
    that must not act on state it could not persist (the command counter) fails closed."""

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
            return False
        return True


class Store:
    """Persists EnergyRegisters, IntervalCapture (ring, five, half, high-water), the
    EventLog, the clock setting, the Last Gasp state, the tamper register and the control
    parts' blobs through a Journal built with keep_map() (mounted by restore()), and keeps
    the registers' running copy in `retained` (a meter.hal.RetainedMemory, or None).

    After restore(): registers_valid (False when the registers were lost and rebuilt),
    restored_from (FROM_* below), retained_state (storage.retained NOT_FITTED..IMPLAUSIBLE),
    tamper_count and tamper_pending()."""

    def __init__(self, journal, regs, capture, events, retained=None):
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
        self._bufmv = memoryview(self._buf)
        self._last_regs = None  # the REC_REGISTERS payload of the last commit (bytes)
        self._last_lg = None  # the last Last Gasp state saved (bytes)
        self.commits_skipped = 0  # commit_now() calls with nothing changed
        self.commits_deferred = 0  # commit_now() calls in a burst with no served value changed
        self._lg_since_commit = False  # a Last Gasp commit ran since the last normal one
        self.lastgasp_skipped = 0  # save_lastgasp() calls with an identical state
        self.registers_valid = True
        self.restored_from = FROM_NEW
        self.retained = None
        self.retained_state = 0  # storage.retained.NOT_FITTED
        if retained is not None:  # the copy's code is loaded only on a board that has one
            from meter.storage import retained as _r

            self._r = _r
            self.retained = _r.RetainedCopy(retained, journal.mac.digest(b"meter.retained"))
        # the tamper register (REC_TAMPER)
        self.tamper_count = 0
        self._tamper_pending = False
        self.tamper_first = None  # (code, sector, seq, minute) of the first finding
        self.tamper_last = None
        self.tamper_ack_minute = MISSING
        self._recent = []  # [(sector, seq)] newest first, at most _RECENT
        self._tamper_dirty = False
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
        p = self.journal.payload_view(REC_REGISTERS)
        base_crc = 0
        lost = MISSING
        if p is not None:
            self._last_regs = bytes(p)
            base_crc = _j.crc32(self._last_regs) & _SMALL_MAX
            self._restore_registers(self._last_regs)
            self.restored_from = FROM_JOURNAL
        elif self._records_without_registers():
            lost = self._rebuild_registers()
        elif rep.damaged:
            # Not blank and not a journal: whatever the meter had counted is unknown, so the
            # registers are served as "no data" (never a valid zero) until commissioning.
            self.registers_valid = False
            self.restored_from = FROM_DAMAGED
        self._restore_series()
        self._restore_events()
        self._restore_clock()
        self._restore_tamper()
        self._last_lg = self.journal.latest(REC_LASTGASP)
        rebuilt = self.restored_from == FROM_SERIES
        retained_seq = self._restore_retained(rep, base_crc)
        self._hw = self.capture.high_water
        for code, a, b in rep.problems:
            self._log_problem(code, a, b, minute, second)
        if rebuilt:
            self.events.log(REGISTERS_LOST, minute, second, lost, 0)
        if self.retained is not None:
            st = self.retained_state
            if st == self._r.USED:
                self.events.log(RETAINED_USED, minute, second, self._regained,
                                self.retained.ticks)
                if self._lost_span is not None:
                    self.events.log(BOUNDARIES_LOST, minute, second, self._lost_span[0],
                                    self._lost_span[1])
            elif st > self._r.STALE:
                self.events.log(RETAINED_REJECTED, minute, second, st, retained_seq)
        if self._dirty_events or self._tamper_dirty:
            try:
                self._commit(_j.NORMAL)
            except _j.JournalFull:
                pass  # after a Last Gasp used the reserve: committed once compaction ran
        return rep

    def _restore_registers(self, p):
        ver, unit, flags, coef = struct.unpack_from(_REGS_FMT, p, 0)
        if ver != _VERSION or len(p) != _REGS_LEN:
            raise SettingError("E_STORE_VERSION")
        regs = self.regs
        if regs.unit != unit or regs.coefficient != coef:
            regs.configure(unit, coef)
        self.registers_valid = not flags & _F_REBUILT
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

    def _records_without_registers(self):
        """True when series or event records are on flash but no REC_REGISTERS: every
        commit writes the registers with them, so the registers record was lost."""
        j = self.journal
        for t in (REC_MINUTE, REC_FIVE, REC_HALF, REC_EVENT):
            if j.keys(t):
                return True
        return False

    def _rebuild_registers(self):
        """The registers lost, the series kept: set them (and the high-water mark) to the
        newest captured boundary (the reactive ones to the newest 5-minute one), so no
        register is below the history served; flagged REBUILT. Returns the boundary minute
        rebuilt from, or MISSING when no series holds one (the registers stay zero)."""
        j = self.journal
        best = MISSING
        five = MISSING
        vals = None
        react = None
        for i in range(len(SERIES)):
            rtype, step, per, cols, _ = SERIES[i]
            fmt = "<" + "i" * cols
            size = _VALUE_LEN * cols
            for key, p in j.records(rtype):
                base, bits = struct.unpack_from(_BLOCK_FMT, p, 0)
                for k in range(per):
                    if not bits >> k & 1:
                        continue
                    m = base + step * k
                    v = struct.unpack_from(fmt, p, _BLOCK_HDR + size * k)
                    if m > best:
                        best, vals = m, v
                    if cols >= 4 and m > five:
                        five, react = m, v
        self.registers_valid = False
        self.restored_from = FROM_SERIES
        if vals is None:
            return MISSING
        regs = self.regs
        for r, v in ((FWD, vals[0]), (REV, vals[1])) + (
                ((LAG, react[2]), (LEAD, react[3])) if react is not None else ()):
            if 0 <= v < MODULO:
                regs.restore(r, v, 0, 0, 0)
        cap = self.capture
        cap.high_water = best
        cap.last_five = five
        return best

    def _restore_retained(self, rep, base_crc):
        """Use the retained copy when it is consistent with the journal (see the header);
        set retained_state. Returns the copy's seq (0 without one)."""
        rc = self.retained
        self._regained = 0
        self._lost_span = None
        if rc is None:
            return 0
        _r = self._r
        state, blk = rc.load()
        seq = 0
        if state == _r.USED:
            seq, bseq, bcrc, ticks = _r.fields(blk)
            p = bytes(blk[_r.OFF_PAYLOAD:_r.OFF_PAYLOAD + _REGS_LEN])
            state = self._judge_retained(rep, base_crc, bseq, bcrc, ticks, p)
            if state == _r.USED:
                committed = self.capture.high_water
                self._restore_registers(p)
                self.restored_from = FROM_RETAINED
                if self.capture.high_water > committed:
                    # Boundaries captured after the journal's last commit (commits were
                    # refused: a full or failing journal) lived in RAM only: the crash lost
                    # them. They stay missing (never invented) and the loss is logged.
                    self._lost_span = (committed + 1, self.capture.high_water - committed)
        self.retained_state = state
        rc.based_on(rep.next_seq - 1 if self._last_regs is not None else -1, base_crc)
        if state == _r.USED:
            rc.ticks = ticks
        return seq

    def _judge_retained(self, rep, base_crc, bseq, bcrc, ticks, p):
        _r = self._r
        if bseq >= rep.next_seq:
            return _r.AHEAD  # a commit the journal never reached: rolled back or replaced
        if bcrc != base_crc or (bseq < 0) != (self._last_regs is None):
            return _r.STALE  # the journal holds a newer commit (a Last Gasp, a final commit)
        ver, unit, flags, coef = struct.unpack_from(_REGS_FMT, p, 0)
        regs = self.regs
        if ver != _VERSION or unit != regs.unit or coef != regs.coefficient:
            return _r.IMPLAUSIBLE
        size = regs.count_dwh()
        most = (ticks + 1) * _MAX_DWH_PER_S
        for r in range(COUNT):
            count, rd, rj, wraps = struct.unpack_from(_REG_FMT, p, _OFF_REG + _REG_LEN * r)
            if not (0 <= count < MODULO and 0 <= rd < size and 0 <= rj < 360):
                return _r.IMPLAUSIBLE
            new = ((wraps * MODULO + count) * size + rd) * 360 + rj
            old = regs.total_joules(r)
            if new < old:
                return _r.BEHIND
            if new - old > most * 360:
                return _r.IMPLAUSIBLE
            if r == FWD:
                self._regained = min((new - old) // 360, _SMALL_MAX)
        hw = struct.unpack_from("<i", p, _OFF_CAPTURE)[0]
        if hw < self.capture.high_water:
            return _r.BEHIND
        return _r.USED

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
                        # (the columns one by one: no tuple and no *args per boundary)
                        o = _BLOCK_HDR + size * k
                        if cols < 5:
                            ring.record(m, _i32(p, o), _i32(p, o + 4) if cols > 1 else 0,
                                        _i32(p, o + 8) if cols > 2 else 0,
                                        _i32(p, o + 12) if cols > 3 else 0)
                        else:
                            ring.record(m, _i32(p, o), _i32(p, o + 4), _i32(p, o + 8),
                                        _i32(p, o + 12), _i32(p, o + 16))

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

    def _restore_tamper(self):
        p = self.journal.payload_view(REC_TAMPER)
        if p is None or len(p) != _TAMPER_LEN:
            return
        ver, pending, count, ack = struct.unpack_from(_TAMPER_FMT, p, 0)
        if ver != _VERSION:
            return
        self._tamper_pending = bool(pending)
        self.tamper_count = count
        self.tamper_ack_minute = ack
        if count:
            self.tamper_first = struct.unpack_from(_FINDING_FMT, p, _OFF_FIRST)
            self.tamper_last = struct.unpack_from(_FINDING_FMT, p, _OFF_LAST)
        rec = []
        for k in range(_RECENT):
            sector, seq = struct.unpack_from("<ii", p, _OFF_RECENT + 8 * k)
            if sector >= 0:
                rec.append((sector, seq))
        self._recent = rec

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
        if code == TAMPER_SEAL:
            self._tamper_finding(code, a, b, minute)
        # The same damaged record is reported at every mount until compaction reclaims
        # its sector; one event per record is enough.
        ev = self.events
        for k in range(ev.n):
            e = ev.get(k)
            if e[1] == code and e[4] == a and e[5] == b:
                return
        ev.log(code, minute, second, a, b)

    # ---- the tamper register -----------------------------------------------------------

    def _tamper_finding(self, code, sector, seq, minute):
        """A seal finding (sector, record seq): counted once, however often it is reported
        again (every mount and audit until compaction reclaims its sector); sets pending."""
        f = (sector, seq)
        if f in self._recent:
            return
        self._recent.insert(0, f)
        del self._recent[_RECENT:]
        self.tamper_count += 1
        self.tamper_last = (code, sector, seq, minute)
        if self.tamper_first is None:
            self.tamper_first = self.tamper_last
        self._tamper_pending = True
        self._tamper_dirty = True

    def tamper_pending(self):
        """True from a tamper finding until an authenticated head-end acknowledges it
        (ack_tamper): ECHONET 0x88 fault status, the uplink alarm."""
        return self._tamper_pending

    def ack_tamper(self, now):
        """The head-end acknowledged the tamper evidence (call only after the command was
        authenticated): pending cleared, the counts and findings kept, TAMPER_ACK logged,
        committed. Returns True when durable, False when the journal refused it (it is
        committed with the next commit; until then a power cut brings `pending` back)."""
        if self._tamper_pending:
            self._tamper_pending = False
            self.tamper_ack_minute = now.ev_minute
            self._tamper_dirty = True
            self.events.stamp(TAMPER_ACK, now, self.tamper_count)
        if not self._tamper_dirty:
            return True
        try:
            self._commit(_j.NORMAL)
        except _j.JournalError:
            return False
        return True

    def _tamper_payload(self):
        p = bytearray(_TAMPER_LEN)
        struct.pack_into(_TAMPER_FMT, p, 0, _VERSION, 1 if self._tamper_pending else 0,
                         self.tamper_count, self.tamper_ack_minute)
        for off, f in ((_OFF_FIRST, self.tamper_first), (_OFF_LAST, self.tamper_last)):
            if f is not None:
                struct.pack_into(_FINDING_FMT, p, off, *f)
        for k in range(_RECENT):
            sector, seq = self._recent[k] if k < len(self._recent) else (-1, -1)
            struct.pack_into("<ii", p, _OFF_RECENT + 8 * k, sector, seq)
        return p

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
        blocks, into pre-erased reserved slots. Zero erases. Returns -1 without writing
        when nothing changed since the last commit (commits_skipped). When the reserve is
        short (a burst of outages used it before compaction ran), the registers alone are
        written: the energy is kept, boundaries not yet committed may then be missing
        after a reboot (never invented). Raises JournalFull when not even that fits."""
        if self._unchanged():
            self.commits_skipped += 1
            return -1
        if self._lg_since_commit and self._counts_unchanged():
            # a flapping supply: this burst's first commit holds every served value;
            # sub-count remainders, the voltage samples and events wait for the minute
            self.commits_deferred += 1
            return -1
        try:
            seq = self._commit(_j.LAST_GASP)
            self._lg_since_commit = True
            return seq
        except _j.JournalFull:
            p = self._registers()
            seq = self.journal.append(REC_REGISTERS, p, 0, _j.LAST_GASP)
            self._committed(seq, p)
            self._lg_since_commit = True
            return seq

    def _counts_unchanged(self):
        """True when the served values (the count and wraps of every register), the
        boundaries and the tamper register are those of the last commit."""
        last = self._last_regs
        if last is None or self._tamper_dirty or self.capture.high_water != self._hw:
            return False
        buf = self._buf
        self._pack_registers(buf, 0)
        for r in range(COUNT):
            off = _OFF_REG + _REG_LEN * r
            for i in range(4):  # count
                if buf[off + i] != last[off + i]:
                    return False
            for i in range(12, 16):  # wraps
                if buf[off + i] != last[off + i]:
                    return False
        return True

    def _unchanged(self):
        """True when a commit would write what the journal already holds: no new boundary,
        no dirty event block or tamper register, the registers payload equal."""
        last = self._last_regs
        if last is None or self._dirty_events or self._tamper_dirty or \
                self.capture.high_water != self._hw:
            return False
        buf = self._buf
        self._pack_registers(buf, 0)
        for i in range(_REGS_LEN):
            if buf[i] != last[i]:
                return False
        return True

    def save_lastgasp(self, payload):
        """Persist the Last Gasp machine's state (REC_LASTGASP) into the reserved slots:
        zero erases. Returns the seq, or -1 without writing when the state is the one the
        journal already holds (lastgasp_skipped)."""
        p = bytes(payload)
        if p == self._last_lg:
            self.lastgasp_skipped += 1
            return -1
        seq = self.journal.append(REC_LASTGASP, p, 0, _j.LAST_GASP)
        self._last_lg = p
        return seq

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

    def drop_future(self, hw):
        """A forced clock correction moved the capture's high-water mark back to `hw`
        (clock.set_clock, after capture.correct): every series block on flash holding
        boundaries after hw is dropped (journal drop records) or, when it also holds
        earlier ones, rewritten without the later ones, so future-stamped values are
        neither served nor restored and their keys give their journal places back. Groups
        of _DROP_GROUP records, then the registers (with hw). Returns the
        blocks dropped or rewritten. A full journal stops it (counted in full_errors): the
        keys left expire as the oldest."""
        j = self.journal
        items = []
        for i in range(len(SERIES)):
            rtype, step, per, _, _ = SERIES[i]
            span = step * per
            for key in j.keys(rtype):
                base = key * span
                if base + step * (per - 1) > hw:
                    p = None
                    if base <= hw:  # keep the block's boundaries up to hw, as on flash
                        p = bytearray(j.payload_view(rtype, key))
                        bits = struct.unpack_from("<I", p, _OFF_BITS)[0]
                        bits &= (1 << ((hw - base) // step + 1)) - 1
                        struct.pack_into("<I", p, _OFF_BITS, bits)
                    items.append((rtype, key, p))
        self._hw = hw
        try:
            for g in range(0, len(items), _DROP_GROUP):
                j.append_group(items[g:g + _DROP_GROUP])
            self._commit(_j.NORMAL)
        except _j.JournalFull:
            self.full_errors += 1
        return len(items)

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
        if self._tamper_dirty:
            items.append((REC_TAMPER, 0, self._tamper_payload()))
        regs = self._registers()
        items.append((REC_REGISTERS, 0, regs))
        seq = self.journal.append_group(items, reserve)
        self._hw = hw
        self._dirty_events = []
        self._tamper_dirty = False
        self._committed(seq, regs)
        self._lg_since_commit = False
        return seq

    def _committed(self, seq, regs):
        """REC_REGISTERS payload `regs` is durable as (the group ending at) journal seq."""
        self.commits += 1
        self._last_regs = regs
        if self.retained is not None:
            self.retained.based_on(seq, _j.crc32(regs))

    def retain(self):
        """After every on_tick(): the registers and the partial interval into the retained
        copy (nothing without retained memory). Allocation-free; no flash operation."""
        rc = self.retained
        if rc is not None:
            self._pack_registers(rc.img, rc.payload_offset())
            rc.write()

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
        self._pack_registers(self._buf, 0)
        return bytes(self._bufmv[0:_REGS_LEN])

    def _pack_registers(self, buf, off):
        """The REC_REGISTERS payload into buf at off (_REGS_LEN bytes). Allocation-free."""
        regs = self.regs
        struct.pack_into(_REGS_FMT, buf, off, _VERSION, regs.unit,
                         0 if self.registers_valid else _F_REBUILT, regs.coefficient)
        for r in range(COUNT):
            struct.pack_into(_REG_FMT, buf, off + _OFF_REG + _REG_LEN * r, regs.count[r],
                             regs.rem_dwh[r], regs.rem_j[r], regs.wraps[r])
        cap = self.capture
        struct.pack_into(_CAP_FMT, buf, off + _OFF_CAPTURE, cap.high_water, cap.last_five,
                         cap.volt_sum, cap.volt_n, cap.missed)

    def _event_block(self, key):
        """Event block `key`, packed straight from the log's columns (no entry tuples)."""
        ev = self.events
        base = key * EVENT_BLOCK
        buf = bytearray(_BLOCK_HDR + _EVENT_LEN * EVENT_BLOCK)
        bits = 0
        for i in range(EVENT_BLOCK):
            s = ev.find(base + i)
            if s >= 0:
                bits |= 1 << i
                struct.pack_into(_EVENT_FMT, buf, _BLOCK_HDR + _EVENT_LEN * i, ev.code[s],
                                 ev.second[s], ev.minute[s], ev.a[s], ev.b[s])
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
        """Re-verify the whole journal; problems not yet in the event log are logged, a new
        tamper finding goes into the tamper register and is committed at once."""
        rep = self.journal.audit()
        if self._tamper_dirty:
            try:
                self._commit(_j.NORMAL)
            except _j.JournalFull:
                pass  # committed with the next minute's commit
        return rep
