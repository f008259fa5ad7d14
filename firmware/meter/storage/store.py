# What the meter keeps on flash and how it maps onto the journal; restore at boot, commits.
#
# Kept (record type: payload, little-endian):
#   REC_REGISTERS (key 0)  u8 version | u8 unit | 2 pad | u32 coefficient
#                          | 4 x (u32 count, u32 rem_dwh, u32 rem_j, u32 wraps)   FWD REV LAG LEAD
#                          | i32 high_water | i32 last_five | i64 volt_sum | i32 volt_n
#                          | i32 missed      (IntervalCapture state: the partial interval)
#   REC_MINUTE  key m//10   10 one-minute boundaries: i32 base minute | u32 present bits
#                          | 10 x (i32 fwd, i32 rev)                    keep 7 (>= 60 minutes)
#   REC_FIVE    key m//40   8 five-minute boundaries: base | bits | 8 x (fwd, rev, lag, lead,
#                          volt 0.1 V)                                  keep 37 (>= 24 h)
#   REC_HALF    key m//720  24 half-hour boundaries (12 h): base | bits | 24 x (fwd, rev)
#                          keep HALF_BLOCKS = 204 (102 days: ECHONET E2/E4 days 0..99 and the
#                          current day); served from flash by history(minute)
#   REC_EVENT   key seq//10 10 event-log entries: u32 base seq | u32 present bits
#                          | 10 x (u16 code, u8 second, u8 pad, i32 minute, i32 a, i32 b)
#                          keep 14 (>= the 128-entry EventLog)
#   REC_CLOCK   (key 0)     u8 version | u8 valid | 2 pad | i32 minute | i32 second
#                          | u32 adjustments        (the last clock setting, see clock.py)
# The RAM rings (MinuteRing 60, FiveMinuteRing, HalfHourHistory of a few days) hold every
# entry of the blocks still being filled, so a block is rebuilt from RAM at each commit and
# RAM stays bounded; older half-hour history is read back from flash.
#
# Commit policy (the app calls these):
#   on_tick(now_ms, bits) after every metering tick: it calls commit_minute() at every
#                    minute boundary (the tick returned intervals.MINUTE) and every COMMIT_MS
#                    of monotonic time while no boundary is processed (clock invalid or set
#                    back behind the high-water mark), so the registers are committed at
#                    least once a minute whatever the wall clock does.
#   commit_minute()  one atomic journal group: the blocks that gained entries since the
#                    last commit, the dirty event blocks, then REC_REGISTERS. 2 page programs
#                    a minute, 3 at five-minute boundaries, 4 at half-hours (+1 when the
#                    group opens a fresh sector); never an erase.
#   commit_now()     on demand, the Last Gasp: the same group written into the slots the
#                    journal keeps erased for it (journal.LAST_GASP_SLOTS), never an erase.
#   save_lastgasp(payload)  the Last Gasp machine's state (REC_LASTGASP), reserved slots too.
#   compact_step()   from the idle loop (alias background_step): at most one sector erase
#                    per call; stop calling it once the Last Gasp sequence has started.
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

from meter.storage import journal as _j
from meter.metering.intervals import MISSING, MINUTE, RING_MINUTES
from meter.ticks import elapsed_ms
from meter.metering.registers import COUNT, SettingError

_VERSION = const(1)
COMMIT_MS = const(60_000)  # longest time between two commits while the meter runs
MINUTE_BLOCK = const(10)  # boundaries per REC_MINUTE block
FIVE_BLOCK = const(8)  # five-minute boundaries per REC_FIVE block (40 min)
HALF_BLOCK = const(24)  # half-hour boundaries per REC_HALF block (12 h)
EVENT_BLOCK = const(10)  # event-log entries per REC_EVENT block
HALF_BLOCKS = const(204)  # 102 days of half-hour history on flash
HISTORY_DAYS = const(100)  # ECHONET E2/E4 days 0..99 always on flash

_REGS_FMT = "<BB2xI"  # version, unit, coefficient
_REG_FMT = "<IIII"  # count, rem_dwh, rem_j, wraps
_CAP_FMT = "<iiqii"  # high_water, last_five, volt_sum, volt_n, missed
_REGS_LEN = const(96)
_CLOCK_FMT = "<BB2xiiI"



def default_keep(five_entries=288, event_entries=128, half_blocks=HALF_BLOCKS):
    """Journal retention (records kept per type) for the rings this store persists."""
    return {
        _j.REC_MINUTE: RING_MINUTES // MINUTE_BLOCK + 1,
        _j.REC_FIVE: (five_entries + FIVE_BLOCK - 1) // FIVE_BLOCK + 1,
        _j.REC_HALF: half_blocks,
        _j.REC_EVENT: (event_entries + EVENT_BLOCK - 1) // EVENT_BLOCK + 1,
    }


class Store:
    """Persists EnergyRegisters, IntervalCapture (ring, five, half, high-water) and the
    EventLog through a mounted-at-restore Journal built with default_keep()."""

    def __init__(self, journal, regs, capture, events):
        self.journal = journal
        self.regs = regs
        self.capture = capture
        self.events = events
        self._hw = MISSING  # high-water mark covered by the last commit
        self._dirty_events = []  # event-block keys with entries not yet committed
        self.clock_valid = 0  # the last clock setting persisted (clock.py)
        self.clock_minute = MISSING
        self.clock_second = 0
        self.clock_adjustments = 0
        self.commits = 0
        self._last_ms = None  # ticks_ms of the last commit_minute()
        self._retry = False  # the last on_tick() commit found the journal full
        self.full_errors = 0  # commits refused for want of erased space
        self.report = None
        self._buf = bytearray(_j.MAX_PAYLOAD)
        events.listener = self._on_event
        journal.listener = self._on_problem

    # ---- boot --------------------------------------------------------------------------

    def restore(self, minute=MISSING, second=0):
        """Mount the journal and rebuild registers, capture and event log from it (the
        objects must be freshly constructed). Problems found are logged as events stamped
        (minute, second) and committed at once, so the evidence outlives compaction.
        Returns the journal's mount Report."""
        j = self.journal
        listener, j.listener = j.listener, None
        try:
            rep = j.mount()
        finally:
            j.listener = listener
        self.report = rep
        self._restore_registers()
        self._restore_rings()
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
        p = self.journal.payload_view(_j.REC_REGISTERS)
        if p is None:
            return  # a new meter
        ver, unit, coef = struct.unpack_from(_REGS_FMT, p, 0)
        if ver != _VERSION or len(p) != _REGS_LEN:
            raise SettingError("E_STORE_VERSION")
        regs = self.regs
        if regs.unit != unit or regs.coefficient != coef:
            regs.configure(unit, coef)
        for r in range(COUNT):
            count, rd, rj, wraps = struct.unpack_from(_REG_FMT, p, 8 + 16 * r)
            regs.restore(r, count, rd, rj, wraps)
        cap = self.capture
        hw, lf, vs, vn, missed = struct.unpack_from(_CAP_FMT, p, 72)
        cap.high_water = hw
        cap.last_five = lf
        cap.volt_sum = vs
        cap.volt_n = vn
        cap.missed = missed

    def _restore_rings(self):
        cap = self.capture
        hw = cap.high_water
        if hw < 0:
            return
        j = self.journal
        lo = hw - RING_MINUTES
        for key, p in j.records(_j.REC_MINUTE):
            base, bits = struct.unpack_from("<iI", p, 0)
            for i in range(MINUTE_BLOCK):
                m = base + i
                if bits >> i & 1 and lo < m <= hw:
                    f, r = struct.unpack_from("<ii", p, 8 + 8 * i)
                    cap.ring.record(m, f, r)
        lo = hw - 5 * cap.five.entries
        for key, p in j.records(_j.REC_FIVE):
            base, bits = struct.unpack_from("<iI", p, 0)
            for i in range(FIVE_BLOCK):
                m = base + 5 * i
                if bits >> i & 1 and lo < m <= hw:
                    f, r, lag, lead, v = struct.unpack_from("<iiiii", p, 8 + 20 * i)
                    cap.five.record(m, f, r, lag, lead, v)
        lo = hw - 30 * cap.half.entries
        for key in j.keys(_j.REC_HALF):
            if (key + 1) * 30 * HALF_BLOCK <= lo:
                continue
            p = j.payload_view(_j.REC_HALF, key)
            if p is None:
                continue
            base, bits = struct.unpack_from("<iI", p, 0)
            for i in range(HALF_BLOCK):
                m = base + 30 * i
                if bits >> i & 1 and lo < m <= hw:
                    f, r = struct.unpack_from("<ii", p, 8 + 8 * i)
                    cap.half.record(m, f, r)

    def _restore_events(self):
        ev = self.events
        for key, p in self.journal.records(_j.REC_EVENT):
            base, bits = struct.unpack_from("<II", p, 0)
            for i in range(EVENT_BLOCK):
                if bits >> i & 1:
                    code, sec, minute, a, b = struct.unpack_from("<HBxiii", p, 8 + 16 * i)
                    ev.restore(base + i, code, minute, sec, a, b)

    def _restore_clock(self):
        p = self.journal.payload_view(_j.REC_CLOCK)
        if p is None:
            return
        ver, valid, minute, second, adj = struct.unpack_from(_CLOCK_FMT, p, 0)
        self.clock_valid = valid
        self.clock_minute = minute
        self.clock_second = second
        self.clock_adjustments = adj

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

    def on_tick(self, now_ms, bits):
        """Call after every metering tick (bits: the tick's interval-capture result or
        metering.REJECTED). Commits when a minute boundary was processed or, while no
        boundary is processed (clock invalid, or set back behind the high-water mark),
        when COMMIT_MS of monotonic time passed since the last commit. Returns the seq
        committed or -1. Never raises JournalFull (counted in full_errors, retried)."""
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
            seq = self.journal.append(_j.REC_REGISTERS, self._registers(), 0, _j.LAST_GASP)
            self.commits += 1
            return seq

    def save_lastgasp(self, payload):
        """Persist the Last Gasp machine's state (REC_LASTGASP) into the reserved slots:
        zero erases."""
        return self.journal.append(_j.REC_LASTGASP, payload, 0, _j.LAST_GASP)

    def lastgasp_state(self):
        """The persisted Last Gasp state (bytes) or None."""
        return self.journal.latest(_j.REC_LASTGASP)

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
                items.append((_j.REC_EVENT, key, self._event_block(key)))
        if with_clock:
            p = struct.pack(_CLOCK_FMT, _VERSION, self.clock_valid, self.clock_minute,
                            self.clock_second, self.clock_adjustments)
            items.append((_j.REC_CLOCK, 0, p))
        items.append((_j.REC_REGISTERS, 0, self._registers()))
        seq = self.journal.append_group(items, reserve)
        self._hw = hw
        self._dirty_events = []
        self.commits += 1
        return seq

    def _blocks(self, items, hw):
        """Blocks holding boundaries captured in (last committed high-water, hw]."""
        cap = self.capture
        last = self._hw
        lo = max(last + 1, hw - RING_MINUTES + 1)
        key = -1
        for m in range(lo, hw + 1):
            if m // MINUTE_BLOCK != key and cap.ring.slot(m) >= 0:
                key = m // MINUTE_BLOCK
                items.append((_j.REC_MINUTE, key, self._minute_block(key)))
        lo = max(last + 1, hw - 5 * cap.five.entries + 1)
        key = -1
        for m in range(lo + (-lo) % 5, hw + 1, 5):
            if m // (5 * FIVE_BLOCK) != key and cap.five.slot(m) >= 0:
                key = m // (5 * FIVE_BLOCK)
                items.append((_j.REC_FIVE, key, self._five_block(key)))
        lo = max(last + 1, hw - 30 * cap.half.entries + 1)
        key = -1
        for m in range(lo + (-lo) % 30, hw + 1, 30):
            if m // (30 * HALF_BLOCK) != key and cap.half.slot(m) >= 0:
                key = m // (30 * HALF_BLOCK)
                items.append((_j.REC_HALF, key, self._half_block(key)))

    def _registers(self):
        buf = self._buf
        regs = self.regs
        struct.pack_into(_REGS_FMT, buf, 0, _VERSION, regs.unit, regs.coefficient)
        for r in range(COUNT):
            struct.pack_into(_REG_FMT, buf, 8 + 16 * r, regs.count[r], regs.rem_dwh[r],
                             regs.rem_j[r], regs.wraps[r])
        cap = self.capture
        struct.pack_into(_CAP_FMT, buf, 72, cap.high_water, cap.last_five, cap.volt_sum,
                         cap.volt_n, cap.missed)
        return bytes(buf[0:_REGS_LEN])

    def _minute_block(self, key):
        ring = self.capture.ring
        base = key * MINUTE_BLOCK
        buf = bytearray(8 + 8 * MINUTE_BLOCK)
        bits = 0
        for i in range(MINUTE_BLOCK):
            s = ring.slot(base + i)
            if s >= 0:
                bits |= 1 << i
                struct.pack_into("<ii", buf, 8 + 8 * i, ring.fwd[s], ring.rev[s])
        struct.pack_into("<iI", buf, 0, base, bits)
        return buf

    def _five_block(self, key):
        five = self.capture.five
        base = key * 5 * FIVE_BLOCK
        buf = bytearray(8 + 20 * FIVE_BLOCK)
        bits = 0
        for i in range(FIVE_BLOCK):
            s = five.slot(base + 5 * i)
            if s >= 0:
                bits |= 1 << i
                struct.pack_into("<iiiii", buf, 8 + 20 * i, five.fwd[s], five.rev[s],
                                 five.lag[s], five.lead[s], five.volt[s])
        struct.pack_into("<iI", buf, 0, base, bits)
        return buf

    def _half_block(self, key):
        half = self.capture.half
        base = key * 30 * HALF_BLOCK
        buf = bytearray(8 + 8 * HALF_BLOCK)
        bits = 0
        for i in range(HALF_BLOCK):
            s = half.slot(base + 30 * i)
            if s >= 0:
                bits |= 1 << i
                struct.pack_into("<ii", buf, 8 + 8 * i, half.fwd[s], half.rev[s])
        if self.capture.half.entries < HALF_BLOCK:
            # RAM holds less than a block: keep what flash already has for this block.
            old = self.journal.payload_view(_j.REC_HALF, key)
            if old is not None:
                obits = struct.unpack_from("<I", old, 4)[0]
                for i in range(HALF_BLOCK):
                    if obits >> i & 1 and not bits >> i & 1:
                        bits |= 1 << i
                        buf[8 + 8 * i:16 + 8 * i] = old[8 + 8 * i:16 + 8 * i]
        struct.pack_into("<iI", buf, 0, base, bits)
        return buf

    def _event_block(self, key):
        ev = self.events
        base = key * EVENT_BLOCK
        buf = bytearray(8 + 16 * EVENT_BLOCK)
        bits = 0
        for k in range(ev.n):
            e = ev.get(k)
            i = e[0] - base
            if 0 <= i < EVENT_BLOCK:
                bits |= 1 << i
                struct.pack_into("<HBxiii", buf, 8 + 16 * i, e[1], e[3], e[2], e[4], e[5])
        struct.pack_into("<II", buf, 0, base, bits)
        return buf

    # ---- reading -----------------------------------------------------------------------

    def history(self, minute):
        """Cumulative (fwd, rev) at half-hour boundary `minute`, from RAM for recent days
        and from flash otherwise; MISSING when it was not captured or has expired."""
        if minute < 0 or minute % 30 or minute > self.capture.high_water:
            return MISSING
        half = self.capture.half
        s = half.slot(minute)
        if s >= 0:
            return half.fwd[s], half.rev[s]
        key = minute // (30 * HALF_BLOCK)
        p = self.journal.payload_view(_j.REC_HALF, key)
        if p is None:
            return MISSING
        base, bits = struct.unpack_from("<iI", p, 0)
        i = (minute - base) // 30
        if base != key * 30 * HALF_BLOCK or not bits >> i & 1:
            return MISSING
        return struct.unpack_from("<ii", p, 8 + 8 * i)

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

    background_step = compact_step  # the name meter.app uses

    def audit(self):
        """Re-verify the whole journal; problems not yet in the event log are logged."""
        return self.journal.audit()
