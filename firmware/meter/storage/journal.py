# Log-structured journal on a NOR-flash region: CRC-checked, HMAC-chained records in page slots.
#
# Public API (other parts use only this):
#   j = Journal(dev, first_sector, sector_count, mac, keep=None)
#       dev: meter.hal.BlockDevice; mac: meter.mac.Hmac under the per-meter key;
#       keep: {rtype: n} keeps the newest record of each of the n newest keys of rtype
#       (default 1 key for every REC_* type: "latest state"). Raises JournalError
#       ("E_JOURNAL_TOO_SMALL") when the live data could not fit with the reserves.
#   j.mount() -> Report          scan, verify, rebuild the index; call once at boot
#   j.append(rtype, payload, key=0, reserve=NORMAL) -> seq
#   j.append_group(items, reserve=NORMAL) -> seq of the last record
#       items: [(rtype, key, payload), ...] committed atomically: after a power cut either
#       every record of the group is used at mount or none is.
#       Raises RecordTooBig ("E_RECORD_TOO_BIG", payload > MAX_PAYLOAD), BadRecord
#       ("E_RECORD_TYPE", "E_RECORD_KEY") or JournalFull ("E_JOURNAL_FULL") before writing
#       anything. reserve=LAST_GASP may use the slots kept for the Last Gasp commit.
#   j.latest(rtype, key=0) -> bytes or None          newest payload of (rtype, key)
#   j.payload_view(rtype, key=0) -> memoryview or None  same without copying; valid until
#       the next journal call
#   j.keys(rtype) -> sorted list of live keys; j.records(rtype) -> [(key, payload), ...]
#   j.kept(rtype) -> the number of keys of rtype kept (its keep entry)
#   j.compact_step() -> 1 if it did work, else 0 (at most one sector erase per call)
#   j.free_slots(), j.free_sectors(), j.live_slots(), j.capacity_slots()
#   j.audit() -> Report          re-verify every record and the seal chain, change nothing
#   j.programs, j.erases         page programs and sector erases issued by this journal
#   j.listener                   callable(code, a, b) for problems found at any time
#                                (meter.events JOURNAL_CORRUPT: a sector, b slot offset;
#                                TAMPER_SEAL: a sector, b record seq)
#
# Flash layout (one region of `count` 4096-byte sectors, 256-byte pages):
#   page 0 of a sector: header  magic "MJS1" u32 | epoch u32 | crc32 u32, at offset 0;
#                       retire mark at offset 16..19 (programmed to 0 before an erase)
#   pages 1..15: one record each (a "slot"); the last 4 bytes of page 15 are the second
#                retire mark (records are at most 252 bytes, so they never touch it).
#   record: magic u16 | type u8 | flags u8 (FIRST 1, LAST 2) | len u8 | 3 pad
#           | seq u32 | key i32 | prev 16 | payload len | seal 16 | crc32 u32
#     (offsets: the _OFF_* constants; sector header fields: _OFF_SEC_*, _OFF_EPOCH)
#     seal = HMAC-SHA256(key, record[0 : 32+len])[:16], so it covers the seal of the
#     previous record (prev): the records form a chain. crc32 covers record[0 : 48+len].
#     The stored seals are truncated to 128 bits: forging one still takes ~2**128 tries
#     (truncation to >= 64 bits is allowed for HMAC by NIST SP 800-107) and it saves
#     32 bytes per record, leaving 200 bytes of payload in one page.
#
# Invariants:
#   * A commit is one page program per record, plus one header program when it opens a
#     blank sector; it never erases. Only compact_step() erases, one sector per call, and
#     only a sector whose live records were all carried forward and whose two retire
#     marks are programmed (so a torn erase can never resurrect stale records).
#   * Space: normal appends leave LAST_GASP_SLOTS + SLOTS_PER_SECTOR slots free; a
#     LAST_GASP append may use the first part, compaction carries everything. So the Last
#     Gasp commit always finds pre-erased slots (unless a burst of outages used them all
#     before compaction ran: it then fails cleanly with JournalFull), and compaction can
#     always make progress.
#   * Seqs of valid records strictly increase along the log; after a torn record the next
#     append reuses its seq and chains to the last valid seal, so a power cut never breaks
#     the chain. A record whose own seal fails, a wrong link between consecutive seqs, a
#     seq going backwards, or a seq gap with no corrupt slot to explain it is TAMPER: the
#     record is not trusted, the event is reported at every mount and audit, and nothing
#     is rewritten to hide it.
#   * Before each reclaim erase, compaction appends an internal TAIL record (type 63)
#     naming the oldest sector epoch that must remain. A mount that finds the log's oldest
#     sector newer than that reports TAMPER_SEAL: the old end of the log was erased by
#     someone else (the chain alone cannot show it). Erasing the newest sectors (a
#     rollback) cannot be told from a meter that never wrote them: the head-end, which
#     receives seqs and seals, is the reference for that.
#   * A record is live if it is the newest (highest seq) of its (type, key) and no newer
#     key with the same key % keep was committed: keys of a type are expected to grow (time
#     or seq based), so the `keep` newest consecutive keys are always kept. Only live
#     records are carried forward; at most sum(keep) records are live.

from micropython import const
import struct

try:
    from binascii import crc32 as _crc32
except ImportError:  # a port built without MICROPY_PY_BINASCII_CRC32
    _crc32 = None

from meter.events import JOURNAL_CORRUPT, TAMPER_SEAL

# Record types live in meter.storage.records (re-exported here for the journal's callers).
from meter.storage.records import (  # noqa: F401
    REC_REGISTERS, REC_MINUTE, REC_FIVE, REC_HALF, REC_EVENT, REC_CLOCK, REC_LIMITER,
    REC_RESERVATIONS, REC_AUDIT, REC_OUTBOX, REC_LASTGASP, REC_CONFIG, FIRST_TYPE, LAST_TYPE)

MAX_TYPE = const(31)  # types 13..31 are free for later parts (configure them in keep)
_REC_TAIL = const(63)  # internal: the oldest sector epoch that must still exist (u32)
_TYPES = const(64)

# append reserve levels
NORMAL = const(0)
COMPACTION = const(1)
LAST_GASP = const(2)

SECTOR_SIZE = const(4096)
PAGE_SIZE = const(256)
SLOTS_PER_SECTOR = const(15)
MAX_PAYLOAD = const(200)
LAST_GASP_SLOTS = const(8)  # slots only a LAST_GASP append may use
TARGET_BLANK = const(3)  # compaction keeps this many sectors erased ahead of need

_PAGES = const(16)  # pages per sector: page 0 the header, pages 1.._PAGES-1 the slots

# Record layout (offsets into the record's page; the seal follows the payload, the crc32
# the seal: both move with the payload length n).
_REC_FMT = "<HBBB3xIi"  # magic, type, flags, len, 3 pad, seq, key: bytes 0.._OFF_PREV
_OFF_MAGIC = const(0)  # u16 _REC_MAGIC
_OFF_TYPE = const(2)  # u8 record type
_OFF_FLAGS = const(3)  # u8 _FIRST | _LAST of a commit group
_OFF_LEN = const(4)  # u8 payload length n
_OFF_SEQ = const(8)  # u32 sequence number
_OFF_KEY = const(12)  # i32 key
_OFF_PREV = const(16)  # 16 bytes: the seal of the previous record (the chain link)
_HDR = const(32)  # record bytes before the payload: the payload starts here
_SEAL = const(16)  # seal length, at _HDR + n; the u32 crc32 follows at _HDR + n + _SEAL
_CRC_LEN = const(4)
_REC_MAGIC = const(0x4A4D)  # "MJ"
_MAX_KEY = const(0x3FFF_FFFF)  # keys stay small ints
_FIRST = const(1)
_LAST = const(2)

# Sector header layout (page 0 of each sector)
_SEC_FMT = "<II"  # magic, epoch: the crc32 of these 8 bytes follows
_OFF_SEC_MAGIC = const(0)  # u32 _SEC_MAGIC
_OFF_EPOCH = const(4)  # u32 the seq of the sector's first record when it was opened
_OFF_SEC_CRC = const(8)  # u32 crc32 of bytes 0..7
_SEC_HDR_LEN = const(12)
_SEC_MAGIC = const(0x3153_4A4D)  # "MJS1"
_MARK_HEAD = const(16)  # retire mark offsets inside the sector (4 bytes each)
_MARK_TAIL = const(4092)  # the last 4 bytes of page 15: no record reaches them
_MARK_LEN = const(4)

# sector states
_BLANK = const(0)
_OPEN = const(1)
_DIRTY = const(2)

_crc_table = None


def crc32(data, crc=0):
    """CRC-32 (IEEE, as zlib/binascii) of a bytes-like object."""
    if _crc32 is not None:
        return _crc32(data, crc) & 0xFFFFFFFF
    global _crc_table
    if _crc_table is None:
        from array import array
        t = array("I", [0] * 256)
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            t[i] = c
        _crc_table = t
    t = _crc_table
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class JournalError(Exception):
    """args[0] is a short error code."""


class JournalFull(JournalError):
    pass


class RecordTooBig(JournalError):
    pass


class BadRecord(JournalError):
    pass


class Report:
    """Result of mount() or audit(). problems: [(code, a, b)] as given to the listener."""

    def __init__(self):
        self.records = 0  # records with a good CRC
        self.applied = 0  # records used for state (mount)
        self.corrupt = 0  # torn or corrupted slots / headers
        self.tamper = 0  # seal failures, broken links, missing records
        self.incomplete = 0  # records of a commit group cut short by a power cut
        self.sectors_open = 0
        self.sectors_blank = 0
        self.sectors_dirty = 0
        self.next_seq = 0
        self.problems = []

    def chain_ok(self):
        return self.tamper == 0

    def ok(self):
        return self.tamper == 0 and self.corrupt == 0

    def __repr__(self):
        return ("Report(records=%d applied=%d corrupt=%d tamper=%d incomplete=%d open=%d "
                "blank=%d dirty=%d)" % (self.records, self.applied, self.corrupt, self.tamper,
                                        self.incomplete, self.sectors_open,
                                        self.sectors_blank, self.sectors_dirty))


class _Index:
    """Newest record address of each of the `keep` newest keys of one type, slot key % keep."""

    def __init__(self, keep):
        from array import array
        self.keep = keep
        self.key = array("i", [-1] * keep)
        self.addr = array("i", [-1] * keep)
        self.seq = array("i", [-1] * keep)

    def put(self, key, addr, seq):
        s = key % self.keep
        k = self.key[s]
        if k > key or (k == key and self.seq[s] > seq):
            return  # older than what the slot holds: not live
        self.key[s] = key
        self.addr[s] = addr
        self.seq[s] = seq

    def find(self, key):
        s = key % self.keep
        return self.addr[s] if self.key[s] == key else -1

    def live(self):
        n = 0
        for k in self.key:
            if k >= 0:
                n += 1
        return n


class Journal:
    def __init__(self, dev, first, count, mac, keep=None):
        if first < 0 or count < 4 or first + count > dev.sector_count():
            raise JournalError("E_JOURNAL_REGION")
        self.dev = dev
        self.first = first
        self.count = count
        self.mac = mac
        self.listener = None
        self._keep = [0] * _TYPES
        for t in range(FIRST_TYPE, LAST_TYPE + 1):
            self._keep[t] = 1
        self._keep[_REC_TAIL] = 1
        if keep:
            for t in keep:
                n = keep[t]
                if not (1 <= t <= MAX_TYPE) or n < 0:
                    raise JournalError("E_JOURNAL_KEEP")
                self._keep[t] = n
        live = 0
        for n in self._keep:
            live += n
        # Room for the live data, one sector being reclaimed, the head, the blank target
        # and the reserves.
        room = (count - TARGET_BLANK - 1) * SLOTS_PER_SECTOR
        if live + LAST_GASP_SLOTS + SLOTS_PER_SECTOR > room:
            raise JournalError("E_JOURNAL_TOO_SMALL")
        self._page = bytearray(PAGE_SIZE)
        self._ff = b"\xff" * PAGE_SIZE  # an erased page, for comparisons
        self._pmv = memoryview(self._page)
        self._hdr = bytearray(_SEC_HDR_LEN)
        self._mark = bytearray(_MARK_LEN)  # zeros: the retire mark
        self._tail = bytearray(_MARK_LEN)  # the tail retire mark as read
        self._tailrec = bytearray(4)  # payload of the TAIL record
        self.programs = 0
        self.erases = 0
        self.carried = 0  # records copied forward by compaction
        self._reset()

    def _reset(self):
        from array import array
        n = self.count
        self._state = bytearray(n)
        self._epoch = array("i", [0] * n)
        self._used = bytearray(n)  # next free page in an OPEN sector (1.._PAGES)
        self._index = [None] * _TYPES
        for t in range(1, _TYPES):
            if self._keep[t]:
                self._index[t] = _Index(self._keep[t])
        self._head = -1
        self._seq = 0
        self._prev = bytearray(_SEAL)  # seal of the newest valid record
        self._mounted = False

    # ---- reading and parsing -------------------------------------------------------

    def _addr(self, sector, page):
        return (self.first + sector) * SECTOR_SIZE + page * PAGE_SIZE

    def _read_page(self, sector, page):
        self.dev.read(self._addr(sector, page), self._page)
        return self._page

    def _blank(self, buf):
        return buf == self._ff

    def _parse(self, buf):
        """(type, flags, length, seq, key) of a record with a good CRC in buf, or None."""
        magic, t, flags, n, seq, key = struct.unpack_from(_REC_FMT, buf, _OFF_MAGIC)
        if magic != _REC_MAGIC or n > MAX_PAYLOAD or t < 1 or t >= _TYPES:
            return None
        end = _HDR + n + _SEAL  # the crc32 covers everything before it
        if crc32(self._pmv[0:end]) != struct.unpack_from("<I", buf, end)[0]:
            return None
        return t, flags, n, seq, key

    def _seal_ok(self, n):
        seal = self.mac.digest(self._pmv[0:_HDR + n])
        p = self._page
        for i in range(_SEAL):
            if seal[i] != p[_HDR + n + i]:
                return False
        return True

    def _classify(self, s):
        """Sector state and epoch from its header page (records decide for SUSPECT ones)."""
        buf = self._read_page(s, 0)
        for i in range(_MARK_LEN):
            if buf[_MARK_HEAD + i] == 0:
                return _DIRTY, 0
        tail = self._tail
        self.dev.read(self._addr(s, 0) + _MARK_TAIL, tail)
        for i in range(_MARK_LEN):
            if tail[i] == 0:
                return _DIRTY, 0
        magic, epoch = struct.unpack_from(_SEC_FMT, buf, _OFF_SEC_MAGIC)
        crc = struct.unpack_from("<I", buf, _OFF_SEC_CRC)[0]
        if magic == _SEC_MAGIC and crc == crc32(self._pmv[0:_OFF_SEC_CRC]):
            return _OPEN, epoch
        for page in range(_PAGES):
            if not self._blank(self._read_page(s, page)):
                return -1, 0  # suspect: no valid header but something written
        return _BLANK, 0

    def _scan(self, apply, rep):
        """Walk every OPEN (and suspect) sector in log order, verify records and the chain.
        With apply, rebuild the sector table, the index and the append position."""
        notify = self._notify
        order = []
        suspect = []
        tail_min = -1  # from the newest trusted TAIL record
        for s in range(self.count):
            st, epoch = self._classify(s)
            if st == -1:
                # Header torn or damaged: its records (if any) still carry their own proof.
                first_seq = -1
                for page in range(1, _PAGES):
                    buf = self._read_page(s, page)
                    if not self._blank(buf) and self._parse(buf) is not None:
                        first_seq = struct.unpack_from("<I", buf, _OFF_SEQ)[0]
                        break
                if first_seq < 0:
                    st = _DIRTY
                else:
                    st = _OPEN
                    epoch = first_seq
                    suspect.append(s)
                    rep.corrupt += 1
                    notify(rep, JOURNAL_CORRUPT, self.first + s, 0)
            if apply:
                self._state[s] = st
                self._epoch[s] = epoch
            if st == _OPEN:
                order.append((epoch, s))
                rep.sectors_open += 1
            elif st == _BLANK:
                rep.sectors_blank += 1
            else:
                rep.sectors_dirty += 1
        order.sort()
        prev_seq = -1
        prev_seal = bytearray(_SEAL)
        corrupt_since = 0
        pending = []
        for _, s in order:
            used = 1
            for page in range(1, _PAGES):
                buf = self._read_page(s, page)
                if self._blank(buf):
                    continue
                used = page + 1
                r = self._parse(buf)
                if r is None:
                    rep.corrupt += 1
                    corrupt_since += 1
                    notify(rep, JOURNAL_CORRUPT, self.first + s, page * PAGE_SIZE)
                    continue
                t, flags, n, seq, key = r
                rep.records += 1
                trusted = self._seal_ok(n)
                if not trusted:
                    rep.tamper += 1
                    notify(rep, TAMPER_SEAL, self.first + s, seq)
                elif prev_seq >= 0:
                    link = buf[_OFF_PREV:_HDR] == prev_seal
                    if seq <= prev_seq or (seq == prev_seq + 1 and not link) or (
                            seq > prev_seq + 1 and not corrupt_since):
                        rep.tamper += 1
                        notify(rep, TAMPER_SEAL, self.first + s, seq)
                        trusted = False
                if trusted and t == _REC_TAIL:
                    tail_min = struct.unpack_from("<I", buf, _HDR)[0]
                prev_seq = seq
                prev_seal[:] = buf[_HDR + n:_HDR + n + _SEAL]
                corrupt_since = 0
                # A group's LAST record proves every earlier record of the group was fully
                # programmed (they are written in order), even if one of them was damaged
                # since or its sector was reclaimed: apply what is still readable.
                if flags & _FIRST:
                    rep.incomplete += len(pending)
                    pending = []
                pending.append((t, key, self._addr(s, page), seq, trusted))
                if flags & _LAST:
                    for pt, pk, pa, ps, ptrust in pending:
                        if ptrust:
                            rep.applied += 1
                            if apply and self._index[pt] is not None:
                                self._index[pt].put(pk, pa, ps)
                    pending = []
            if apply:
                self._used[s] = used
                self._head = s
        rep.incomplete += len(pending)
        # Compaction records, before each erase, the epoch of the oldest sector that must
        # remain; an older end of the log that is gone without such a record was erased by
        # someone else (the chain cannot show it: its first record has no predecessor).
        if order and tail_min >= 0 and order[0][0] > tail_min and order[0][1] not in suspect:
            rep.tamper += 1
            notify(rep, TAMPER_SEAL, self.first + order[0][1], tail_min)
        rep.next_seq = prev_seq + 1
        if apply:
            self._seq = prev_seq + 1
            self._prev[:] = prev_seal
            if self._head >= 0 and self._used[self._head] >= _PAGES:
                self._head = -1
        return rep

    def _notify(self, rep, code, a, b):
        rep.problems.append((code, a, b))
        if self.listener is not None:
            self.listener(code, a, b)

    def mount(self):
        self._reset()
        rep = self._scan(True, Report())
        self._mounted = True
        return rep

    def audit(self):
        return self._scan(False, Report())

    # ---- space -------------------------------------------------------------------------

    def capacity_slots(self):
        return self.count * SLOTS_PER_SECTOR

    def free_sectors(self):
        n = 0
        st = self._state
        for s in range(self.count):
            if st[s] == _BLANK:
                n += 1
        return n

    def free_slots(self):
        """Erased slots ready for appends (head remainder + blank sectors)."""
        n = self.free_sectors() * SLOTS_PER_SECTOR
        if self._head >= 0:
            n += _PAGES - self._used[self._head]
        return n

    def live_slots(self):
        n = 0
        for ix in self._index:
            if ix is not None:
                n += ix.live()
        return n

    # ---- appending ---------------------------------------------------------------------

    def append(self, rtype, payload, key=0, reserve=NORMAL):
        return self.append_group(((rtype, key, payload),), reserve)

    def append_group(self, items, reserve=NORMAL):
        if not self._mounted:
            raise JournalError("E_NOT_MOUNTED")
        n = len(items)
        if n == 0:
            raise BadRecord("E_RECORD_EMPTY_GROUP")
        for t, key, payload in items:
            if not (1 <= t <= MAX_TYPE) or self._index[t] is None:
                raise BadRecord("E_RECORD_TYPE")
            if not isinstance(key, int) or key < 0 or key > _MAX_KEY:
                raise BadRecord("E_RECORD_KEY")
            if len(payload) > MAX_PAYLOAD:
                raise RecordTooBig("E_RECORD_TOO_BIG")
        return self._commit_group(items, reserve)

    def _commit_group(self, items, reserve):
        n = len(items)
        # NORMAL leaves the Last Gasp reserve and one sector's worth for compaction;
        # LAST_GASP may use its reserve but never the compaction share, so a run of Last
        # Gasp commits (a flapping supply) cannot wedge the journal; COMPACTION may use
        # everything: a carry frees a whole sector once its erase is done.
        keep_free = 0
        if reserve == NORMAL:
            keep_free = LAST_GASP_SLOTS + SLOTS_PER_SECTOR
        elif reserve == LAST_GASP:
            keep_free = SLOTS_PER_SECTOR
        if self.free_slots() - n < keep_free:
            raise JournalFull("E_JOURNAL_FULL")
        first_seq = self._seq
        addrs = []
        for i in range(n):
            t, key, payload = items[i]
            flags = (_FIRST if i == 0 else 0) | (_LAST if i == n - 1 else 0)
            addrs.append(self._write(t, flags, key, payload))
        # The group is on flash: only now does the index point at it.
        for i in range(n):
            t, key, _ = items[i]
            self._index[t].put(key, addrs[i], first_seq + i)
        return self._seq - 1

    def _write(self, t, flags, key, payload):
        if self._head < 0:
            self._open_sector()
        s = self._head
        page = self._used[s]
        addr = self._addr(s, page)
        n = len(payload)
        buf = self._page
        struct.pack_into(_REC_FMT, buf, _OFF_MAGIC, _REC_MAGIC, t, flags, n, self._seq, key)
        buf[_OFF_PREV:_HDR] = self._prev
        buf[_HDR:_HDR + n] = payload
        seal = self.mac.digest(self._pmv[0:_HDR + n])
        end = _HDR + n + _SEAL
        buf[_HDR + n:end] = seal[0:_SEAL]
        struct.pack_into("<I", buf, end, crc32(self._pmv[0:end]))
        # Account for the slot before programming: a cut part-way leaves it consumed.
        self._used[s] = page + 1
        if page + 1 >= _PAGES:
            self._head = -1
        self.programs += 1
        self.dev.program(addr, self._pmv[0:end + _CRC_LEN])
        self._prev[:] = buf[_HDR + n:end]
        self._seq += 1
        return addr

    def _open_sector(self):
        """Make the next blank sector (in ring order after the last head) the head."""
        start = 0
        best = -1
        for s in range(self.count):
            if self._state[s] == _OPEN and self._epoch[s] >= best:
                best = self._epoch[s]
                start = s + 1
        for i in range(self.count):
            s = (start + i) % self.count
            if self._state[s] == _BLANK:
                break
        else:
            raise JournalFull("E_JOURNAL_FULL")
        h = self._hdr
        struct.pack_into(_SEC_FMT, h, _OFF_SEC_MAGIC, _SEC_MAGIC, self._seq)
        struct.pack_into("<I", h, _OFF_SEC_CRC, crc32(memoryview(h)[0:_OFF_SEC_CRC]))
        self._state[s] = _OPEN
        self._epoch[s] = self._seq
        self._used[s] = 1
        self._head = s
        self.programs += 1
        self.dev.program(self._addr(s, 0), h)

    # ---- reading state -----------------------------------------------------------------

    def payload_view(self, rtype, key=0):
        if not (1 <= rtype <= MAX_TYPE) or self._index[rtype] is None:
            raise BadRecord("E_RECORD_TYPE")
        addr = self._index[rtype].find(key)
        if addr < 0:
            return None
        self.dev.read(addr, self._page)
        r = self._parse(self._page)
        if r is None or r[0] != rtype or r[4] != key:
            # Changed under us since mount: never trusted, reported.
            s = addr // SECTOR_SIZE
            self._notify(Report(), JOURNAL_CORRUPT, s, addr - s * SECTOR_SIZE)
            return None
        return self._pmv[_HDR:_HDR + r[2]]

    def latest(self, rtype, key=0):
        v = self.payload_view(rtype, key)
        return None if v is None else bytes(v)

    def kept(self, rtype):
        """How many keys of rtype the journal keeps (its keep map entry; 0: not kept)."""
        if not (1 <= rtype <= MAX_TYPE):
            raise BadRecord("E_RECORD_TYPE")
        return self._keep[rtype]

    def keys(self, rtype):
        if not (1 <= rtype <= MAX_TYPE) or self._index[rtype] is None:
            raise BadRecord("E_RECORD_TYPE")
        ks = [k for k in self._index[rtype].key if k >= 0]
        ks.sort()
        return ks

    def records(self, rtype):
        """[(key, payload bytes)] of the live records of rtype, oldest key first."""
        out = []
        for k in self.keys(rtype):
            p = self.latest(rtype, k)
            if p is not None:
                out.append((k, p))
        return out

    # ---- compaction --------------------------------------------------------------------

    def compact_step(self):
        """Background work, called from the idle loop: erase one dirty sector, or reclaim
        the oldest sector (carry its live records forward, retire, erase) while fewer than
        TARGET_BLANK sectors are erased. At most one erase per call. A call with nothing to
        do allocates nothing."""
        if not self._mounted:
            raise JournalError("E_NOT_MOUNTED")
        for s in range(self.count):
            if self._state[s] == _DIRTY:
                self._erase(s)
                return 1
        if self.free_sectors() >= TARGET_BLANK:
            return 0
        victim = -1
        for s in range(self.count):
            if self._state[s] == _OPEN and s != self._head and (
                    victim < 0 or self._epoch[s] < self._epoch[victim]):
                victim = s
        if victim < 0:
            return 0
        for page in range(1, _PAGES):
            self._carry(victim, page)
        oldest = -1
        for s in range(self.count):
            if self._state[s] == _OPEN and s != victim and (
                    oldest < 0 or self._epoch[s] < self._epoch[oldest]):
                oldest = s
        tail = self._epoch[oldest] if oldest >= 0 else self._seq
        struct.pack_into("<I", self._tailrec, 0, tail)
        self._commit_group(((_REC_TAIL, 0, self._tailrec),), COMPACTION)
        self._retire(victim)
        self._erase(victim)
        return 1

    def _carry(self, s, page):
        addr = self._addr(s, page)
        buf = self._read_page(s, page)
        if self._blank(buf):
            return
        magic = struct.unpack_from("<H", buf, _OFF_MAGIC)[0]
        t = buf[_OFF_TYPE]
        if magic != _REC_MAGIC or not (1 <= t <= MAX_TYPE) or self._index[t] is None:
            return  # (a TAIL record is not carried: compact_step writes a new one)
        key = struct.unpack_from("<i", buf, _OFF_KEY)[0]
        if self._index[t].find(key) != addr:
            return  # superseded, expired, torn or never committed
        r = self._parse(buf)
        if r is None or not self._seal_ok(r[2]):
            # Damaged since mount: not carried (never trusted), reported.
            code = JOURNAL_CORRUPT if r is None else TAMPER_SEAL
            self._notify(Report(), code, self.first + s,
                         page * PAGE_SIZE if r is None else r[3])
            ix = self._index[t]
            ix.key[key % ix.keep] = -1
            ix.addr[key % ix.keep] = -1
            return
        n = r[2]
        payload = bytes(self._pmv[_HDR:_HDR + n])
        self.append_group(((t, key, payload),), COMPACTION)
        self.carried += 1

    def _retire(self, s):
        self.programs += 2
        self.dev.program(self._addr(s, 0) + _MARK_TAIL, self._mark)
        self.dev.program(self._addr(s, 0) + _MARK_HEAD, self._mark)
        self._state[s] = _DIRTY

    def _erase(self, s):
        self._state[s] = _DIRTY
        self.erases += 1
        self.dev.erase_sector(self.first + s)
        self._state[s] = _BLANK
        self._used[s] = 0
        self._epoch[s] = 0
