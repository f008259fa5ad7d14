# The registers' running copy in retained memory (RTC memory): kept by a crash, lost at power-off.
#
# The store writes it after every metering second (RetainedCopy.write, allocation-free) and
# checks it at boot against the journal (meter.storage.store.Store.restore): a crash, watchdog
# reset, panic or soft reset then loses no energy, while a power-on (memory lost) falls back
# to the journal's last commit as before.
#
# Image (IMAGE bytes, meter.hal.RetainedMemory): two blocks of BLOCK bytes written alternately
# (the block with the higher seq is the newest; a write torn by a reset leaves the other one
# whole). One block, little-endian:
#   0   u16 magic "MR" | u8 version | u8 pad
#   4   4 bytes meter tag: HMAC(per-meter key, "meter.retained")[:4] (another meter's or
#       key's copy is never used)
#   8   u32 seq         writes since boot of the copy's writer, < 2**30 (newest block wins)
#   12  i32 base seq    the journal's newest seq after the REC_REGISTERS commit this copy
#                       runs on from (-1: no commit yet)
#   16  u32 base crc    crc32 & 0x3FFFFFFF of that REC_REGISTERS payload (0: none)
#   20  u32 ticks       writes since that commit (capped at 2**30 - 1): bounds the energy
#                       the copy may hold beyond the commit
#   24  REGS bytes      the REC_REGISTERS payload (meter.storage.store: registers and the
#                       partial interval), as the next commit would write it
#   126 u16 crc16 (CCITT-FALSE) of bytes 0..125
# CRC-16 and not crc32: a 32-bit value is a heap object on a 31-bit-small-int port, and this
# runs every second (~1 ms on an ESP32 for 126 bytes).

from micropython import const
import struct

BLOCK = const(128)
IMAGE = const(256)  # two blocks: the size a RetainedMemory must offer
OFF_PAYLOAD = const(24)
MAX_PAYLOAD = const(100)  # = _OFF_CRC - OFF_PAYLOAD
_OFF_SEQ = const(8)
_OFF_CRC = const(126)
_MAGIC = const(0x524D)  # "MR"
_VERSION = const(1)
_HDR_FMT = "<HBx"
_RUN_FMT = "<IiII"  # seq, base seq, base crc, ticks at _OFF_SEQ
_SEQ_MASK = const(0x3FFF_FFFF)
_TICKS_MAX = const(0x3FFF_FFFF)

# What restore() made of the copy (Store.retained_state), the `a` of RETAINED_REJECTED
NOT_FITTED = const(0)  # the board has no retained memory
BLANK = const(1)  # nothing valid in it: a power-on, or never written
USED = const(2)  # newer than the journal and consistent: the registers come from it
STALE = const(3)  # runs on from another commit than the journal's newest: journal used
CORRUPT = const(4)  # magic right, CRC wrong in both blocks
FOREIGN = const(5)  # another meter's (or key's) copy
AHEAD = const(6)  # based on a journal seq the journal never reached (rolled back?)
BEHIND = const(7)  # holds less energy, or an older boundary, than the journal
IMPLAUSIBLE = const(8)  # more energy beyond the commit than its ticks allow
STATE_NAMES = ("not fitted", "blank", "used", "stale", "corrupt", "foreign", "ahead",
               "behind", "implausible")

try:
    from binascii import crc_hqx as _hqx  # CPython: the same CRC in C (the simulation's pace)
except ImportError:  # MicroPython has none: the table below
    _hqx = None

_crc_table = None


def _table():
    global _crc_table
    if _crc_table is None:
        from array import array

        t = array("H", range(256))  # no temporary list
        for i in range(256):
            c = i << 8
            for _ in range(8):
                c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
            t[i] = c
        _crc_table = t
    return _crc_table


def crc16(buf, off, n):
    """CRC-16/CCITT-FALSE of buf[off:off + n]; allocation-free (values < 2**16)."""
    if _hqx is not None:
        return _hqx(memoryview(buf)[off:off + n], 0xFFFF)
    t = _crc_table
    c = 0xFFFF
    for i in range(off, off + n):
        c = ((c << 8) & 0xFF00) ^ t[((c >> 8) ^ buf[i]) & 0xFF]
    return c


class RetainedCopy:
    """The copy's two blocks over one meter.hal.RetainedMemory `mem` (at least IMAGE bytes),
    tagged with `tag` (4 bytes); `img` is the image written. base_seq / base_crc / ticks
    describe the commit the next write runs on from (set at each commit: based_on())."""

    def __init__(self, mem, tag):
        if getattr(mem, "SIZE", 0) < IMAGE:
            raise ValueError("E_RETAINED_SIZE")
        _table()
        self.mem = mem
        self.tag = bytes(tag[:4])
        self.img = bytearray(mem.SIZE)
        self.seq = 0
        self.base_seq = -1
        self.base_crc = 0
        self.ticks = 0
        self.writes = 0

    def based_on(self, seq, crc):
        """A commit of the registers made durable as journal seq `seq` with payload crc."""
        self.base_seq = seq
        self.base_crc = crc & _SEQ_MASK
        self.ticks = 0

    def payload_offset(self):
        """Offset in `img` of the payload of the block the next write fills: the caller packs
        the REC_REGISTERS payload there, then calls write()."""
        return ((self.seq + 1) & 1) * BLOCK + OFF_PAYLOAD

    def write(self):
        """Seal the block payload_offset() named and store the image. Allocation-free."""
        seq = (self.seq + 1) & _SEQ_MASK
        self.seq = seq
        if self.ticks < _TICKS_MAX:
            self.ticks += 1
        img = self.img
        off = (seq & 1) * BLOCK
        struct.pack_into(_HDR_FMT, img, off, _MAGIC, _VERSION)
        tag = self.tag
        for i in range(4):
            img[off + 4 + i] = tag[i]
        struct.pack_into(_RUN_FMT, img, off + _OFF_SEQ, seq, self.base_seq, self.base_crc,
                         self.ticks)
        struct.pack_into("<H", img, off + _OFF_CRC, crc16(img, off, _OFF_CRC))
        self.mem.write(img)
        self.writes += 1

    def load(self):
        """At boot: read the memory and pick the newest valid block of this meter. Returns
        (state, block) with state BLANK, CORRUPT, FOREIGN (block None) or USED (block: a
        memoryview of the block; the caller decides whether it is used). The copy's own seq
        continues from the newest block found."""
        img = self.img
        if not self.mem.read(img):
            return BLANK, None
        best = -1
        state = BLANK
        for k in range(2):
            off = k * BLOCK
            magic, ver = struct.unpack_from(_HDR_FMT, img, off)
            if magic != _MAGIC or ver != _VERSION:
                continue
            if struct.unpack_from("<H", img, off + _OFF_CRC)[0] != crc16(img, off, _OFF_CRC):
                if state == BLANK:
                    state = CORRUPT
                continue
            if bytes(img[off + 4:off + 8]) != self.tag:
                state = FOREIGN
                continue
            seq = struct.unpack_from("<I", img, off + _OFF_SEQ)[0]
            if best < 0 or seq > self._seq_at(best):
                best = off
        if best < 0:
            return state, None
        self.seq = self._seq_at(best)
        return USED, memoryview(img)[best:best + BLOCK]

    def _seq_at(self, off):
        return struct.unpack_from("<I", self.img, off + _OFF_SEQ)[0]


def fields(block):
    """(seq, base seq, base crc, ticks) of a block load() returned."""
    return struct.unpack_from(_RUN_FMT, block, _OFF_SEQ)
