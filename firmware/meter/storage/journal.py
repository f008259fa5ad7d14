# Log-structured journal on a NOR-flash region: CRC-checked, HMAC-chained records in page slots.
#
# Public API (other parts use only this):
#   j = Journal(dev, first_sector, sector_count, mac, keep=None)
#       dev: meter.hal.BlockDevice; mac: meter.mac.Hmac under the per-meter key;
#       keep: {rtype: n} keeps the newest record of each of the n newest keys of rtype
#       (default 1 key for every REC_* type: "latest state"). Raises JournalError
#       ("E_JOURNAL_TOO_SMALL") when the live data could not fit with the reserves.
#   j.mount() -> Report          scan, verify, rebuild the index; call once at boot
#   j.append(rtype, payload, key=0, reserve=NORMAL) -> seq   (payload None: drop the key)
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
#   j.free_slots(), j.free_sectors(), j.live_slots()
#   j.capacity_slots()           slots in the sectors still usable (neither damaged nor bad)
#   j.spare_slots()              usable slots beyond what the retention needs; < 0: the
#                                flash left cannot keep the record set (end of life)
#   j.bad_sectors(), j.damaged_sectors()   region sector numbers (lists; they allocate)
#   j.release_damaged() -> n     SERVICE step: erase the quarantined (damaged) sectors once
#                                their evidence has been read out; never called by the meter
#   j.audit() -> Report          re-verify every record and the seal chain, change nothing
#   j.programs, j.erases         page programs and sector erases issued by this journal
#   j.bad_programs, j.bad_erases programs and erases that failed their read-back verify
#   j.listener                   callable(code, a, b) for problems found at any time
#                                (meter.events JOURNAL_CORRUPT: a sector, b slot offset;
#                                TAMPER_SEAL: a sector, b record seq; JOURNAL_DAMAGED: a
#                                sector, b 1 foreign / 2 retired without proof;
#                                FLASH_BAD_SECTOR: a sector, b 1 program / 2 erase)
#
# Flash layout (one region of `count` 4096-byte sectors, 256-byte pages):
#   page 0 of a sector: header  magic "MJS1" u32 | epoch u32 | crc32 u32, at offset 0;
#                       retire mark at offset 16..19 (programmed to 0 before an erase)
#   pages 1..15: one record each (a "slot"); the last 4 bytes of page 15 are the second
#                retire mark (records are at most 252 bytes, so they never touch it).
#   record: magic u16 | type u8 | flags u8 (FIRST 1, LAST 2, DROP 4) | len u8 | 3 pad
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
#   * Blank means all 0xFF. A sector is the journal's own if it has a valid header, or
#     valid records, or only a torn header (a power cut while opening it), or a retire
#     mark with a PROOF that compaction put it there: its epoch is older than the oldest
#     sector the newest trusted TAIL record says must remain (compaction carried its live
#     records forward first). Anything else (random bytes, zeros, a retire mark on a sector
#     the log still needs) is DAMAGED: reported (JOURNAL_DAMAGED) at every mount and audit,
#     counted in Report.damaged, never written or erased by the journal (evidence; lost
#     capacity) until a service step calls release_damaged(). A retired-without-proof
#     sector with valid records is read like any log sector (nothing it holds is lost);
#     compaction reclaims it in turn after carrying its live records. When the usable
#     sectors left cannot hold the retention, appends raise JournalDamaged
#     ("E_JOURNAL_DAMAGED", a JournalFull): a flash with nothing but foreign sectors is
#     never taken for a new meter and never wiped to make room.
#   * Worn flash: every program and erase is read back. A program that did not stick
#     marks its sector BAD: the sector takes no more records and the record (same seq,
#     same chain link) is written again in the first slot of the next erased sector, so a
#     group stays whole or unused, and the Last Gasp path still never erases. An erase
#     that leaves anything but 0xFF marks the sector BAD. A BAD sector is never opened
#     again: if it holds live records compaction carries them, then erases it once (so no
#     stale record of it can reappear) and leaves it. The BAD set is persisted in an
#     internal record (type 62: a bitmap, bit s = region sector s, carried by compaction
#     like live data) right after the group or the erase that found it (a Last Gasp
#     commit leaves it to the next compact_step), so after a reboot a bad sector that
#     reads as garbage is counted in Report.bad, not as damage or tamper. A bad sector
#     found but not yet persisted when power fails is seen as damaged at the next mount
#     (preserved, reported), never as tamper.
#   * A record is live if it is the newest (highest seq) of its (type, key), that newest
#     record is not a drop (flag DROP, no payload: the key is dropped), no newer key of the
#     same key % keep less than 2 * keep ahead was committed, and fewer than `keep` newer
#     keys of its type are live. Keys of a type are expected to grow (time or seq based),
#     so the `keep` newest consecutive keys are always kept; a key far ahead of the others
#     (a clock set years ahead) takes the place of the OLDEST key, never of one in the
#     middle of the kept window, and a drop gives its place back. Only live records are
#     carried forward; at most sum(keep) records are live.

from micropython import const
from array import array
import struct

try:
    from binascii import crc32 as _crc32
except ImportError:  # a port built without MICROPY_PY_BINASCII_CRC32
    _crc32 = None

from meter.events import FLASH_BAD_SECTOR, JOURNAL_CORRUPT, JOURNAL_DAMAGED, TAMPER_SEAL

# Record types live in meter.storage.records (re-exported here for the journal's callers).
from meter.storage.records import (  # noqa: F401
    REC_REGISTERS, REC_MINUTE, REC_FIVE, REC_HALF, REC_EVENT, REC_CLOCK, REC_LIMITER,
    REC_RESERVATIONS, REC_AUDIT, REC_OUTBOX, REC_LASTGASP, REC_CONFIG, FIRST_TYPE, LAST_TYPE)

MAX_TYPE = const(31)  # types 13..31 are free for later parts (configure them in keep)
_REC_TAIL = const(63)  # internal: the oldest sector epoch that must still exist (u32)
_REC_BAD = const(62)  # internal: bitmap of the worn sectors (bit s: region sector s)
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
_MAX_SECTORS = const(1600)  # MAX_PAYLOAD * 8: the bad-sector bitmap fits one record
_PEND = const(8)  # records of a commit group the mount holds before it grows its table

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
_DROP = const(4)  # a drop of its (type, key): no payload, the key is no longer live

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
_LAST_SLOT_END = const(252)  # bytes of page 15 before the tail retire mark

# sector states
_BLANK = const(0)
_OPEN = const(1)  # in the log (read at mount; the head takes appends)
_DIRTY = const(2)  # the journal's own, to be erased by compaction
_DAMAGED = const(3)  # not the journal's: quarantined, never written or erased
_BAD = const(4)  # worn out (a failed program or erase): never used again
_SUSPECT = const(5)  # mount only: no valid header, something written

# JOURNAL_DAMAGED reasons (the event's b) and FLASH_BAD_SECTOR reasons
_FOREIGN = const(1)  # neither erased nor anything the journal writes
_UNPROVEN = const(2)  # a retire mark on a sector the log still needed
_FAILED_PROGRAM = const(1)
_FAILED_ERASE = const(2)

_crc_table = None


def crc32(data, crc=0):
    """CRC-32 (IEEE, as zlib/binascii) of a bytes-like object."""
    if _crc32 is not None:
        return _crc32(data, crc)  # (unsigned already: a mask would allocate on a 32-bit port)
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


def _copy(dst, doff, src, soff, n):
    """dst[doff:doff + n] = src[soff:soff + n] without a temporary slice object."""
    for i in range(n):
        dst[doff + i] = src[soff + i]


def _same(a, aoff, b, boff, n):
    """a[aoff:aoff + n] == b[boff:boff + n], allocation-free."""
    for i in range(n):
        if a[aoff + i] != b[boff + i]:
            return False
    return True


# Little-endian fields read straight from a page (struct.unpack_from would allocate a tuple
# per record: the mount reads every record on flash).
def _u16(b, o):
    return b[o] | b[o + 1] << 8


def _u32(b, o):
    return b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24


def _i32(b, o):
    return b[o] | b[o + 1] << 8 | b[o + 2] << 16 | ((b[o + 3] ^ 0x80) - 0x80) << 24


class JournalError(Exception):
    """args[0] is a short error code."""


class JournalFull(JournalError):
    pass


class RecordTooBig(JournalError):
    pass


class BadRecord(JournalError):
    pass


class JournalDamaged(JournalFull):
    """The usable sectors left (damaged and bad ones excluded) cannot hold the retention:
    "E_JOURNAL_DAMAGED". A JournalFull, so callers that refuse work on a full journal
    refuse it here too."""


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
        self.damaged = 0  # sectors not the journal's: foreign, or retired without proof
        self.bad = 0  # worn sectors (a failed program or erase), never used again
        self.capacity = 0  # slots in the usable sectors (journal.capacity_slots())
        self.spare = 0  # usable slots beyond the retention's need (< 0: it cannot fit)
        self.next_seq = 0
        self.problems = []

    def chain_ok(self):
        return self.tamper == 0

    def ok(self):
        return self.tamper == 0 and self.corrupt == 0 and self.damaged == 0

    def fits(self):
        """The usable flash still holds the whole retention with its reserves."""
        return self.spare >= 0

    def __repr__(self):
        # (the flash-health fields only when there is something to say: a healthy journal's
        # report reads as it always did)
        health = ""
        if self.damaged or self.bad or self.spare < 0:
            health = " damaged=%d bad=%d capacity=%d spare=%d" % (
                self.damaged, self.bad, self.capacity, self.spare)
        return ("Report(records=%d applied=%d corrupt=%d tamper=%d incomplete=%d open=%d "
                "blank=%d dirty=%d%s)" % (self.records, self.applied, self.corrupt,
                                          self.tamper, self.incomplete, self.sectors_open,
                                          self.sectors_blank, self.sectors_dirty, health))


class Journal:
    def __init__(self, dev, first, count, mac, keep=None):
        if (first < 0 or count < 4 or count > _MAX_SECTORS
                or first + count > dev.sector_count()):
            raise JournalError("E_JOURNAL_REGION")
        self.dev = dev
        self.first = first
        self.count = count
        self.mac = mac
        self.listener = None
        kp = [0] * _TYPES
        for t in range(FIRST_TYPE, LAST_TYPE + 1):
            kp[t] = 1
        kp[_REC_TAIL] = 1
        kp[_REC_BAD] = 1
        if keep:
            for t in keep:
                n = keep[t]
                if not (1 <= t <= MAX_TYPE) or n < 0:
                    raise JournalError("E_JOURNAL_KEEP")
                kp[t] = n
        live = 0
        for n in kp:
            live += n
        # Slots the retention needs besides the head, one sector being reclaimed and the
        # blank target: the live data and the reserves.
        self._need = live + LAST_GASP_SLOTS + SLOTS_PER_SECTOR
        if self._need > (count - TARGET_BLANK - 1) * SLOTS_PER_SECTOR:
            raise JournalError("E_JOURNAL_TOO_SMALL")
        # (so live < count * SLOTS_PER_SECTOR <= 24 000: every keep, base and slot number
        # below fits 16 bits)
        self._keep = array("H", kp)  # keys kept per type (0: the type is not kept)
        # The index: the newest record of each live key, one flat table for every type
        # (type t owns the `keep` entries from _ixbase[t]; -1: not kept). Per entry: the
        # key (i32, -1: free), the record's slot in the region (i16: sector * _PAGES +
        # page, < _MAX_SECTORS * _PAGES = 25 600; -1: a drop) and its seq (i32: seqs
        # grow for the meter's life and pass 2**16 within weeks). The liveness rule is in
        # the file header. A key sits in entry key % keep when that entry was free or held
        # its predecessor; after a far jump of keys it may sit in any entry of its type
        # (_ifind then searches). _iput and _ifind allocate nothing.
        base = array("h", [-1] * _TYPES)
        live = 0
        for t in range(1, _TYPES):
            if kp[t]:
                base[t] = live
                live += kp[t]
        self._ixbase = base
        self._ixkey = array("i", [-1] * live)
        self._ixslot = array("h", [-1] * live)
        self._ixseq = array("i", [-1] * live)
        self._crcb = bytearray(_CRC_LEN)  # a computed crc32, compared byte by byte
        self._gslots = []  # the slots a commit group was written to
        self._views = None  # views of the page buffer by length, while a scan runs
        self._pend = array("i", [0] * (4 * _PEND))  # mount: a commit group's records
        self._page = bytearray(PAGE_SIZE)
        self._ff = b"\xff" * PAGE_SIZE  # an erased page, for comparisons
        self._pmv = memoryview(self._page)
        self._vbuf = bytearray(PAGE_SIZE)  # read-back of a program or an erase
        self._vmv = memoryview(self._vbuf)
        self._hdr = bytearray(_SEC_HDR_LEN)
        self._mark = bytearray(_MARK_LEN)  # zeros: the retire mark
        self._tail = bytearray(_MARK_LEN)  # the tail retire mark as read
        self._tailrec = bytearray(4)  # payload of the TAIL record
        self.programs = 0
        self.erases = 0
        self.bad_programs = 0
        self.bad_erases = 0
        self.carried = 0  # records copied forward by compaction
        self._reset()

    def _reset(self):
        n = self.count
        self._state = bytearray(n)
        self._epoch = array("i", [0] * n)
        self._used = bytearray(n)  # next free page in an OPEN sector (1.._PAGES)
        self._badmap = bytearray((n + 7) // 8)  # the BAD set, as persisted (_REC_BAD)
        self._bad_dirty = 0  # the BAD set changed since the last _REC_BAD record
        for i in range(len(self._ixkey)):
            self._ixkey[i] = -1
            self._ixslot[i] = -1
            self._ixseq[i] = -1
        self._head = -1
        self._seq = 0
        self._prev = bytearray(_SEAL)  # seal of the newest valid record
        self._mounted = False

    # ---- the index -------------------------------------------------------------------

    def _ifind_entry(self, t, key):
        base = self._ixbase[t]
        keep = self._keep[t]
        ks = self._ixkey
        e = base + key % keep
        if ks[e] == key:
            return e
        for e in range(base, base + keep):
            if ks[e] == key:
                return e
        return -1

    def _ifind(self, t, key):
        """The slot of the newest record of (t, key), or -1."""
        e = self._ifind_entry(t, key)
        return self._ixslot[e] if e >= 0 else -1

    def _iput(self, t, key, slot, seq):
        """Record (key, slot, seq) for type t; slot < 0 is a drop (a DROP record): the key
        is no longer live unless a newer record of it follows."""
        ks = self._ixkey
        sq = self._ixseq
        e = self._ifind_entry(t, key)
        if e >= 0:
            if sq[e] < seq:
                sq[e] = seq
                self._ixslot[e] = slot
                if slot < 0:
                    ks[e] = -1
                    sq[e] = -1
            return
        if slot < 0:
            return
        keep = self._keep[t]
        base = self._ixbase[t]
        near = 2 * keep  # same-residue keys closer than this follow the residue rule
        home = base + key % keep
        larger = 0
        pred = low = free = -1
        for i in range(base, base + keep):
            k = ks[i]
            if k < 0:
                if free < 0 or i == home:
                    free = i
                continue
            d = k - key
            if d > 0:
                larger += 1
                if d < near and d % keep == 0:
                    return  # a newer key of its residue: not live
            elif -d < near and d % keep == 0:
                pred = i  # its predecessor of the same residue: replaced
            if low < 0 or k < ks[low]:
                low = i
        if larger >= keep:
            return  # `keep` newer keys are live: not live
        e = pred if pred >= 0 else (free if free >= 0 else low)
        ks[e] = key
        self._ixslot[e] = slot
        sq[e] = seq

    def _iremove(self, t, key):
        e = self._ifind_entry(t, key)
        if e >= 0:
            self._ixkey[e] = -1
            self._ixslot[e] = -1
            self._ixseq[e] = -1

    # ---- reading and parsing -------------------------------------------------------

    def _addr(self, sector, page):
        return (self.first + sector) * SECTOR_SIZE + page * PAGE_SIZE

    def _read_page(self, sector, page):
        self.dev.read(self._addr(sector, page), self._page)
        return self._page

    def _blank(self, buf):
        return buf == self._ff

    def _parse(self, buf):
        """The payload length n of a record with a good CRC in buf (the page buffer), or
        -1. Its fields are read from the page: buf[_OFF_TYPE], buf[_OFF_FLAGS],
        _u32(buf, _OFF_SEQ), _i32(buf, _OFF_KEY). Allocates only the CRC's view."""
        n = buf[_OFF_LEN]
        t = buf[_OFF_TYPE]
        if (buf[_OFF_MAGIC] != _REC_MAGIC & 0xFF or buf[_OFF_MAGIC + 1] != _REC_MAGIC >> 8
                or n > MAX_PAYLOAD or t < 1 or t >= _TYPES):
            return -1
        if not self._crc_ok(buf, _HDR + n + _SEAL):  # (it covers everything before it)
            return -1
        return n

    def _view(self, end):
        """self._pmv[0:end]; while a scan runs, one view per length (kept in _views until
        the scan ends) instead of a new one per record."""
        vs = self._views
        if vs is None:
            return self._pmv[0:end]
        v = vs.get(end)
        if v is None:
            v = vs[end] = self._pmv[0:end]
        return v

    def _crc_ok(self, buf, end):
        """The u32 at buf[end] is the crc32 of buf[0:end] (buf: the page buffer)."""
        c = self._crcb
        struct.pack_into("<I", c, 0, crc32(self._view(end)))
        return (c[0] == buf[end] and c[1] == buf[end + 1] and c[2] == buf[end + 2]
                and c[3] == buf[end + 3])

    def _seal_ok(self, n):
        """The record in the page buffer (payload length n) carries its own seal: its
        HMAC over the bytes as read, computed now."""
        seal = self.mac.digest1(self._view(_HDR + n))
        return _same(seal, 0, self._page, _HDR + n, _SEAL)

    def _classify(self, s):
        """(state, epoch, retire-marked) of a sector from its header page: _OPEN with a
        valid header, _BLANK when all 0xFF, else _SUSPECT (its records decide)."""
        buf = self._read_page(s, 0)
        marked = 0
        for i in range(_MARK_LEN):
            if buf[_MARK_HEAD + i] == 0:
                marked = 1
        tail = self._tail
        self.dev.read(self._addr(s, 0) + _MARK_TAIL, tail)
        for i in range(_MARK_LEN):
            if tail[i] == 0:
                marked = 1
        if _u32(buf, _OFF_SEC_MAGIC) == _SEC_MAGIC and self._crc_ok(buf, _OFF_SEC_CRC):
            return _OPEN, _u32(buf, _OFF_EPOCH), marked
        for page in range(_PAGES):
            if not self._blank(self._read_page(s, page)):
                return _SUSPECT, 0, marked
        return _BLANK, 0, 0

    def _torn_header(self, s):
        """Only a prefix of a sector header is written, all else is 0xFF: a power cut while
        opening the sector (the journal's own state, nothing lost)."""
        buf = self._read_page(s, 0)
        last = -1
        for i in range(PAGE_SIZE):
            if buf[i] != 0xFF:
                if i >= _SEC_HDR_LEN:
                    return False
                last = i
        for i in range(min(last + 1, 4)):
            if buf[i] != (_SEC_MAGIC >> (8 * i)) & 0xFF:
                return False
        for page in range(1, _PAGES):
            if not self._blank(self._read_page(s, page)):
                return False
        return True

    def _scan(self, apply, rep):
        """Walk every sector in log order, verify records and the chain, tell the
        journal's own sectors from damaged ones. With apply, rebuild the sector table, the
        index, the BAD set and the append position. Problems go to the listener at the end
        (once the BAD set is known, so worn sectors are not reported as damage)."""
        n = self.count
        state = bytearray(n)
        marks = bytearray(n)
        epochs = [0] * n
        order = []
        suspect = []
        early = []  # header problems found before the BAD set is known: (sector, problem)
        tail_min = -1  # from the newest trusted TAIL record
        badmap = bytearray(len(self._badmap))
        for s in range(n):
            st, epoch, marked = self._classify(s)
            if st == _SUSPECT:
                # Header torn or damaged: its records (if any) still carry their own proof.
                first_seq = -1
                for page in range(1, _PAGES):
                    buf = self._read_page(s, page)
                    if not self._blank(buf) and self._parse(buf) >= 0:
                        first_seq = _u32(buf, _OFF_SEQ)
                        break
                if first_seq >= 0:
                    st = _OPEN
                    epoch = first_seq
                    suspect.append(s)
                    if not marked:  # (a torn erase of a retired sector wipes its header)
                        early.append((s, (JOURNAL_CORRUPT, self.first + s, 0)))
                elif not marked and self._torn_header(s):
                    st = _DIRTY
                else:
                    st = _DAMAGED
            state[s] = st
            marks[s] = marked
            epochs[s] = epoch
            if st == _OPEN:
                order.append((epoch, s))
        order.sort()
        probs = []  # (sector, problem) found by the walk
        prev_seq = -1
        prev_seal = bytearray(_SEAL)
        corrupt_since = 0
        # The records of the commit group being read, 4 ints each: type | trusted << 8,
        # key, slot (-1: a drop), seq (0 when not trusted: only trusted ones are applied)
        pend = self._pend
        npend = 0
        used = bytearray(n)
        head = -1
        for _, s in order:
            u = 1
            for page in range(1, _PAGES):
                buf = self._read_page(s, page)
                if self._blank(buf) or (marks[s] and page == _PAGES - 1 and (
                        buf[0:_LAST_SLOT_END] == self._ff[0:_LAST_SLOT_END])):
                    continue  # (an unused last slot with the tail retire mark)
                u = page + 1
                ln = self._parse(buf)
                if ln < 0:
                    corrupt_since += 1
                    probs.append((s, (JOURNAL_CORRUPT, self.first + s, page * PAGE_SIZE)))
                    continue
                t = buf[_OFF_TYPE]
                flags = buf[_OFF_FLAGS]
                seq = _u32(buf, _OFF_SEQ)
                rep.records += 1
                trusted = self._seal_ok(ln)
                if not trusted:
                    probs.append((s, (TAMPER_SEAL, self.first + s, seq)))
                elif prev_seq >= 0:
                    link = _same(buf, _OFF_PREV, prev_seal, 0, _SEAL)
                    if seq <= prev_seq or (seq == prev_seq + 1 and not link) or (
                            seq > prev_seq + 1 and not corrupt_since):
                        probs.append((s, (TAMPER_SEAL, self.first + s, seq)))
                        trusted = False
                if trusted and t == _REC_TAIL:
                    tail_min = _u32(buf, _HDR)
                if trusted and t == _REC_BAD and flags & _FIRST and flags & _LAST:
                    for i in range(min(ln, len(badmap))):
                        badmap[i] = buf[_HDR + i]
                prev_seq = seq
                _copy(prev_seal, 0, buf, _HDR + ln, _SEAL)
                corrupt_since = 0
                # A group's LAST record proves every earlier record of the group was fully
                # programmed (they are written in order), even if one of them was damaged
                # since or its sector was reclaimed: apply what is still readable.
                if flags & _FIRST:
                    rep.incomplete += npend
                    npend = 0
                if 4 * npend == len(pend):  # a long group: a larger table (kept)
                    grown = array("i", [0] * (2 * len(pend)))
                    for i in range(len(pend)):
                        grown[i] = pend[i]
                    pend = self._pend = grown
                # (a drop of a key: slot -1 in the index)
                i = 4 * npend
                pend[i] = t | (256 if trusted else 0)
                pend[i + 1] = _i32(buf, _OFF_KEY)
                pend[i + 2] = -1 if flags & _DROP else s * _PAGES + page
                pend[i + 3] = seq if trusted else 0
                npend += 1
                if flags & _LAST:
                    for i in range(0, 4 * npend, 4):
                        if pend[i] & 256:
                            rep.applied += 1
                            pt = pend[i] & 255
                            if apply and self._keep[pt]:
                                self._iput(pt, pend[i + 1], pend[i + 2], pend[i + 3])
                    npend = 0
            used[s] = u
            head = s
        rep.incomplete += npend
        # The BAD set: as persisted, plus (audit) what was found since the mount.
        if not apply:
            for i in range(len(badmap)):
                badmap[i] |= self._badmap[i]
        damaged = []  # (sector, reason)
        for s in range(n):
            if badmap[s >> 3] >> (s & 7) & 1:
                if state[s] == _OPEN and not marks[s]:
                    used[s] = _PAGES  # a failed program: its records stay live, no more
                elif state[s] == _OPEN:
                    state[s] = _DIRTY  # reclaimed, cut before its last erase: erased once
                else:
                    state[s] = _BAD
                rep.bad += 1
            elif state[s] == _DAMAGED:
                damaged.append((s, _FOREIGN))
            elif state[s] == _OPEN and marks[s]:
                if 0 <= tail_min and epochs[s] < tail_min:
                    # Retired by compaction (its live records were carried before the TAIL
                    # record that names a newer oldest sector): to be erased, nothing lost.
                    state[s] = _DIRTY
                else:
                    damaged.append((s, _UNPROVEN))
                    used[s] = _PAGES  # read like any log sector, never appended to
        if head >= 0 and (state[head] != _OPEN or used[head] >= _PAGES):
            head = -1
        # Compaction records, before each erase, the epoch of the oldest sector that must
        # remain; an older end of the log that is gone without such a record was erased by
        # someone else (the chain cannot show it: its first record has no predecessor).
        oldest = -1
        for e, s in order:
            if state[s] == _OPEN:
                oldest = s
                break
        if oldest >= 0 and 0 <= tail_min < epochs[oldest] and oldest not in suspect:
            probs.append((oldest, (TAMPER_SEAL, self.first + oldest, tail_min)))
        for s, p in early + probs:
            if state[s] == _DIRTY or (p[0] == JOURNAL_CORRUPT and badmap[s >> 3] >> (s & 7) & 1):
                continue  # a reclaimed or worn sector: its torn slots are not evidence
            if p[0] == JOURNAL_CORRUPT:
                rep.corrupt += 1
            else:
                rep.tamper += 1
            self._notify(rep, p[0], p[1], p[2])
        for s, why in damaged:
            rep.damaged += 1
            self._notify(rep, JOURNAL_DAMAGED, self.first + s, why)
        usable = 0
        for s in range(n):
            st = state[s]
            if st == _OPEN:
                rep.sectors_open += 1
            elif st == _BLANK:
                rep.sectors_blank += 1
            elif st == _DIRTY:
                rep.sectors_dirty += 1
            if st != _DAMAGED and st != _BAD and not badmap[s >> 3] >> (s & 7) & 1:
                usable += 1
        rep.capacity = usable * SLOTS_PER_SECTOR
        rep.spare = self._spare(usable)
        rep.next_seq = prev_seq + 1
        if apply:
            for s in range(n):
                self._state[s] = state[s]
                self._epoch[s] = epochs[s] if state[s] == _OPEN else 0
                self._used[s] = used[s]
            self._badmap[:] = badmap
            self._head = head
            self._seq = prev_seq + 1
            self._prev[:] = prev_seal
        return rep

    def _notify(self, rep, code, a, b):
        if rep is not None:
            rep.problems.append((code, a, b))
        if self.listener is not None:
            self.listener(code, a, b)

    def mount(self):
        self._reset()
        self._views = {}
        try:
            rep = self._scan(True, Report())
        finally:
            self._views = None
        self._mounted = True
        return rep

    def audit(self):
        self._views = {}
        try:
            return self._scan(False, Report())
        finally:
            self._views = None

    # ---- space -------------------------------------------------------------------------

    def _usable(self):
        n = 0
        st = self._state
        for s in range(self.count):
            if st[s] != _DAMAGED and st[s] != _BAD and not self._is_bad(s):
                n += 1
        return n

    def _spare(self, usable):
        return (usable - TARGET_BLANK - 1) * SLOTS_PER_SECTOR - self._need

    def capacity_slots(self):
        """Record slots of the sectors still usable (damaged and bad sectors excluded)."""
        return self._usable() * SLOTS_PER_SECTOR

    def spare_slots(self):
        """Usable slots beyond the retention's need (live records, reserves, the head, a
        sector being reclaimed, the blank target). Below 0 the record set no longer fits:
        appends end in JournalDamaged once the space runs out."""
        return self._spare(self._usable())

    def _sectors(self, want):
        return [self.first + s for s in range(self.count) if self._state[s] == want]

    def bad_sectors(self):
        """Sectors retired as worn (device sector numbers), including one whose live
        records compaction has not carried yet."""
        return [self.first + s for s in range(self.count) if self._is_bad(s)]

    def damaged_sectors(self):
        """Quarantined sectors holding what is not the journal's (device sector numbers)."""
        return self._sectors(_DAMAGED)

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
        ks = self._ixkey
        for i in range(len(ks)):
            if ks[i] >= 0:
                n += 1
        return n

    # ---- appending ---------------------------------------------------------------------

    def append(self, rtype, payload, key=0, reserve=NORMAL):
        # (append_group(((rtype, key, payload),), reserve) without the tuples)
        if not self._mounted:
            raise JournalError("E_NOT_MOUNTED")
        self._check(rtype, key, payload)
        return self._commit_one(rtype, key, payload, reserve)

    def append_group(self, items, reserve=NORMAL):
        if not self._mounted:
            raise JournalError("E_NOT_MOUNTED")
        n = len(items)
        if n == 0:
            raise BadRecord("E_RECORD_EMPTY_GROUP")
        for t, key, payload in items:
            self._check(t, key, payload)
        return self._commit_group(items, reserve)

    def _check(self, t, key, payload):
        if not (1 <= t <= MAX_TYPE) or not self._keep[t]:
            raise BadRecord("E_RECORD_TYPE")
        if not isinstance(key, int) or key < 0 or key > _MAX_KEY:
            raise BadRecord("E_RECORD_KEY")
        if payload is not None and len(payload) > MAX_PAYLOAD:
            raise RecordTooBig("E_RECORD_TOO_BIG")

    def _room(self, n, reserve):
        """Raise JournalFull unless n records fit with the reserve level's share kept."""
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
            if self.spare_slots() < 0:
                raise JournalDamaged("E_JOURNAL_DAMAGED")
            raise JournalFull("E_JOURNAL_FULL")

    def _commit_group(self, items, reserve):
        n = len(items)
        self._room(n, reserve)
        first_seq = self._seq
        slots = self._gslots  # (kept: no list per commit)
        while len(slots) < n:
            slots.append(-1)
        for i in range(n):
            t, key, payload = items[i]
            flags = (_FIRST if i == 0 else 0) | (_LAST if i == n - 1 else 0)
            if payload is None:
                flags |= _DROP
                payload = b""
            slots[i] = self._write(t, flags, key, payload)
        # The group is on flash: only now does the index point at it (-1: a drop).
        for i in range(n):
            t, key, payload = items[i]
            self._iput(t, key, slots[i] if payload is not None else -1, first_seq + i)
        seq = self._seq - 1
        if self._bad_dirty and reserve != LAST_GASP:
            self._persist_bad()
        return seq

    def _commit_one(self, t, key, payload, reserve, n=-1):
        """_commit_group(((t, key, payload),), reserve) without the tuples (append(),
        compaction's carries, the TAIL and BAD records). payload None with n >= 0: the n
        payload bytes are in place in the page buffer (a carry)."""
        self._room(1, reserve)
        seq = self._seq
        if payload is None and n < 0:  # a drop
            self._write(t, _FIRST | _LAST | _DROP, key, b"")
            self._iput(t, key, -1, seq)
        else:
            self._iput(t, key, self._write(t, _FIRST | _LAST, key, payload, n), seq)
        if self._bad_dirty and reserve != LAST_GASP:
            self._persist_bad()
        return seq

    def _persist_bad(self):
        """Append the BAD set as it stands (a program, never an erase); when there is no
        room yet, the next compact_step tries again. Returns 1 if it was written."""
        self._bad_dirty = 0
        try:
            self._commit_one(_REC_BAD, 0, self._badmap, COMPACTION)
            return 1
        except JournalFull:
            self._bad_dirty = 1
        return 0

    def _write(self, t, flags, key, payload, n=-1):
        """Write one record into the next slot; payload None: its n bytes are already at
        _HDR in the page buffer (compaction read the record there: only the header before
        them and the seal after them change). Returns the slot."""
        if payload is not None:
            n = len(payload)
        buf = self._page
        struct.pack_into(_REC_FMT, buf, _OFF_MAGIC, _REC_MAGIC, t, flags, n, self._seq, key)
        _copy(buf, _OFF_PREV, self._prev, 0, _SEAL)
        if payload is not None:
            buf[_HDR:_HDR + n] = payload
        seal = self.mac.digest1(self._pmv[0:_HDR + n])
        end = _HDR + n + _SEAL
        _copy(buf, _HDR + n, seal, 0, _SEAL)
        crc = crc32(self._pmv[0:end])
        struct.pack_into("<I", buf, end, crc)
        while True:
            if self._head < 0:
                self._open_sector()
            s = self._head
            page = self._used[s]
            addr = self._addr(s, page)
            slot = s * _PAGES + page
            # Account for the slot before programming: a cut part-way leaves it consumed.
            self._used[s] = page + 1
            if page + 1 >= _PAGES:
                self._head = -1
            self.programs += 1
            self.dev.program(addr, self._pmv[0:end + _CRC_LEN])
            # Read-back verify: the CRC of what the flash holds (it covers the seal) and
            # the stored CRC itself.
            v = self._vbuf
            self.dev.read(addr, v)
            if crc32(self._vmv[0:end]) == crc and _same(v, end, buf, end, _CRC_LEN):
                break
            # The page did not take the record: the sector takes no more, the same record
            # (same seq, same link) goes to the first slot of the next erased sector.
            self.bad_programs += 1
            self._mark_bad(s, _FAILED_PROGRAM)
        _copy(self._prev, 0, buf, _HDR + n, _SEAL)
        self._seq += 1
        return slot

    def _open_sector(self):
        """Make the next blank sector (in ring order after the last head) the head."""
        start = 0
        best = -1
        for s in range(self.count):
            if self._state[s] == _OPEN and self._epoch[s] >= best:
                best = self._epoch[s]
                start = s + 1
        h = self._hdr
        struct.pack_into(_SEC_FMT, h, _OFF_SEC_MAGIC, _SEC_MAGIC, self._seq)
        struct.pack_into("<I", h, _OFF_SEC_CRC, crc32(memoryview(h)[0:_OFF_SEC_CRC]))
        while True:
            for i in range(self.count):
                s = (start + i) % self.count
                if self._state[s] == _BLANK:
                    break
            else:
                if self.spare_slots() < 0:
                    raise JournalDamaged("E_JOURNAL_DAMAGED")
                raise JournalFull("E_JOURNAL_FULL")
            self._state[s] = _OPEN
            self._epoch[s] = self._seq
            self._used[s] = 1
            self._head = s
            self.programs += 1
            addr = self._addr(s, 0)
            self.dev.program(addr, h)
            v = self._vbuf
            self.dev.read(addr, v)
            ok = True
            for i in range(_SEC_HDR_LEN):
                if v[i] != h[i]:
                    ok = False
            if ok:
                return
            self.bad_programs += 1
            self._mark_bad(s, _FAILED_PROGRAM)
            self._state[s] = _BAD  # it holds no record: nothing to carry or erase

    def _mark_bad(self, s, why):
        """Sector s failed a read-back verify: into the BAD set (persisted by the next
        compact_step), no more records in it."""
        self._badmap[s >> 3] |= 1 << (s & 7)
        self._bad_dirty = 1
        if self._state[s] == _OPEN:
            self._used[s] = _PAGES
        if self._head == s:
            self._head = -1
        self._notify(None, FLASH_BAD_SECTOR, self.first + s, why)

    def _is_bad(self, s):
        return self._badmap[s >> 3] >> (s & 7) & 1

    # ---- reading state -----------------------------------------------------------------

    def payload_view(self, rtype, key=0):
        if not (1 <= rtype <= MAX_TYPE) or not self._keep[rtype]:
            raise BadRecord("E_RECORD_TYPE")
        slot = self._ifind(rtype, key)
        if slot < 0:
            return None
        s = slot // _PAGES
        page = slot - s * _PAGES
        buf = self._read_page(s, page)
        n = self._parse(buf)
        if n < 0 or buf[_OFF_TYPE] != rtype or _i32(buf, _OFF_KEY) != key:
            # Changed under us since mount: never trusted, reported.
            self._notify(None, JOURNAL_CORRUPT, self.first + s, page * PAGE_SIZE)
            return None
        return self._pmv[_HDR:_HDR + n]

    def newest(self):
        """(seq, seal) of the newest record written or mounted: seq -1 and a zero seal on a
        blank journal; the seal (16 bytes) is a view, valid until the next append (the
        A-route's birth message carries both, so the head-end sees a rolled-back flash)."""
        return self._seq - 1, memoryview(self._prev)

    def latest(self, rtype, key=0):
        v = self.payload_view(rtype, key)
        return None if v is None else bytes(v)

    def kept(self, rtype):
        """How many keys of rtype the journal keeps (its keep map entry; 0: not kept)."""
        if not (1 <= rtype <= MAX_TYPE):
            raise BadRecord("E_RECORD_TYPE")
        return self._keep[rtype]

    def keys(self, rtype):
        if not (1 <= rtype <= MAX_TYPE) or not self._keep[rtype]:
            raise BadRecord("E_RECORD_TYPE")
        ix = self._ixkey
        base = self._ixbase[rtype]
        ks = []
        for i in range(base, base + self._keep[rtype]):
            if ix[i] >= 0:
                ks.append(ix[i])
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
        """Background work, called from the idle loop: persist a changed BAD set, erase one
        dirty sector, or reclaim the oldest sector (carry its live records forward, retire,
        erase) while fewer than TARGET_BLANK sectors are erased. At most one erase per
        call. A call with nothing to do allocates nothing."""
        if not self._mounted:
            raise JournalError("E_NOT_MOUNTED")
        if self._bad_dirty and self._persist_bad():
            return 1  # (else after the reclaim below has made room)
        for s in range(self.count):
            if self._state[s] == _DIRTY:
                self._erase(s)
                if self._bad_dirty:
                    self._persist_bad()
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
        try:
            for page in range(1, _PAGES):
                self._carry(victim, page)
        except JournalFull:
            # Worn flash ate the room (failed programs): the victim keeps its records and
            # stays in the log (what was carried is a newer copy); nothing is retired.
            return 0
        oldest = -1
        for s in range(self.count):
            if self._state[s] == _OPEN and s != victim and (
                    oldest < 0 or self._epoch[s] < self._epoch[oldest]):
                oldest = s
        tail = self._epoch[oldest] if oldest >= 0 else self._seq
        struct.pack_into("<I", self._tailrec, 0, tail)
        try:
            self._commit_one(_REC_TAIL, 0, self._tailrec, COMPACTION)
        except JournalFull:
            return 0  # (as above: no TAIL record, no retire)
        self._retire(victim)
        self._erase(victim)
        if self._bad_dirty:
            self._persist_bad()  # a failed erase is on record before the next power cut
        return 1

    def _carry(self, s, page):
        buf = self._read_page(s, page)
        if self._blank(buf):
            return
        t = buf[_OFF_TYPE]
        if _u16(buf, _OFF_MAGIC) != _REC_MAGIC or not (
                1 <= t <= MAX_TYPE or t == _REC_BAD) or not self._keep[t]:
            return  # (a TAIL record is not carried: compact_step writes a new one)
        key = _i32(buf, _OFF_KEY)
        if self._ifind(t, key) != s * _PAGES + page:
            return  # superseded, expired, torn or never committed
        # Verified again from the bytes read now (the flash may have changed since the
        # mount): a record damaged or forged since is never carried into a new seal.
        n = self._parse(buf)
        if n < 0 or not self._seal_ok(n):
            # Damaged since mount: not carried (never trusted), reported.
            self._notify(None, JOURNAL_CORRUPT if n < 0 else TAMPER_SEAL, self.first + s,
                         page * PAGE_SIZE if n < 0 else _u32(buf, _OFF_SEQ))
            self._iremove(t, key)
            return
        # (the BAD set is carried as it stands now: it only grows; any other payload stays
        # where it was read and verified, in the page buffer the new record is built in)
        if t == _REC_BAD:
            self._commit_one(t, key, self._badmap, COMPACTION)
        else:
            self._commit_one(t, key, None, COMPACTION, n)
        self.carried += 1

    def _retire(self, s):
        self.programs += 2
        base = self._addr(s, 0)
        self.dev.program(base + _MARK_TAIL, self._mark)
        self.dev.program(base + _MARK_HEAD, self._mark)
        self._state[s] = _DIRTY
        # A mark that did not stick is harmless (the erase follows and is verified), but
        # the sector is worn.
        t = self._tail
        for off in (_MARK_TAIL, _MARK_HEAD):
            self.dev.read(base + off, t)
            for i in range(_MARK_LEN):
                if t[i] != 0 and not self._is_bad(s):
                    self.bad_programs += 1
                    self._mark_bad(s, _FAILED_PROGRAM)

    def _erase(self, s):
        self._state[s] = _DIRTY
        self.erases += 1
        self.dev.erase_sector(self.first + s)
        self._used[s] = 0
        self._epoch[s] = 0
        if self._is_bad(s):
            self._state[s] = _BAD  # erased once so no stale record of it can reappear
            return
        for page in range(_PAGES):
            self.dev.read(self._addr(s, page), self._vbuf)
            if self._vbuf != self._ff:
                self.bad_erases += 1
                self._state[s] = _BAD
                self._mark_bad(s, _FAILED_ERASE)
                return
        self._state[s] = _BLANK

    # ---- service -----------------------------------------------------------------------

    def release_damaged(self):
        """SERVICE step, never taken by the meter itself: erase every quarantined (damaged)
        sector so the journal may use it again, once the evidence has been read out (an
        authenticated head-end command or a bench tool decides). Returns the number of
        sectors released (a failed erase marks the sector BAD instead)."""
        if not self._mounted:
            raise JournalError("E_NOT_MOUNTED")
        n = 0
        for s in range(self.count):
            if self._state[s] == _DAMAGED:
                self._erase(s)
                if self._state[s] == _BLANK:
                    n += 1
        return n
