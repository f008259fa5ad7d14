# Encoders of the A-route uplink messages (docs/aroute.md): series, event, birth, snap, will.
#
# One preallocated buffer holds the message being built: every encoder packs the 11-byte
# common header (version 0xA1, type, meter id, flags) and its fields with struct.pack_into,
# big-endian, then seals it with HMAC-SHA256 (meter.mac.Hmac) under the per-meter key and
# returns a memoryview of the sealed message, valid until the next encode (the MQTT client
# copies a payload into its transmit buffer when it takes it). Offsets are the doc's.
#
#   common header   0 u8 0xA1 | 1 u8 type | 2 8s meter id | 10 u8 flags
#   series  0x10    11 u8 series | 12 u32 k0 | 16 u8 n | 17 u8 columns | 18 u8 unit
#                   | 19 n x columns x i32                         51 + 4cn bytes
#   event   0x11    11 u32 first seq | 15 u8 n | 16 n x (u8 code, i32 minute, u8 second,
#                   i32 a, i32 b)                                 48 + 14n bytes
#   birth   0x20    103 bytes (see birth())
#   snap    0x12    79 bytes (see snap())
#   will    0x2F    0xA1 0x2F + meter id, not sealed               10 bytes
# Encoding allocates only what the HMAC allocates (the digest and hashlib's objects).

from micropython import const
import struct

from meter.errors import SettingError

VERSION = const(0xA1)
T_SERIES = const(0x10)
T_EVENT = const(0x11)
T_SNAP = const(0x12)
T_BIRTH = const(0x20)
T_WILL = const(0x2F)

# header flags
F_BACKFILL = const(0x01)  # sent after its live time: historical data
F_ANSWER = const(0x02)  # sent for a range read (RANGE, EVENTS, POLL)
F_CLOCK_VALID = const(0x04)  # the meter's wall clock is valid

# Last Gasp alarm flag (meter.outage.wire's flags byte, offset 1): a drill (LG_TEST)
F_TEST = const(0x80)

MAC_LEN = const(32)
HEAD = const(11)
_HEAD_FMT = ">BB8sB"
MAX_SERIES_N = const(24)  # entries per series message
MAX_EVENT_N = const(16)  # entries per event message
MAX_COLS = const(5)
SERIES_HEAD = const(19)
SERIES_FIXED = const(51)  # header + series fields + MAC: 51 + 4cn bytes
EVENT_HEAD = const(16)
EVENT_ENTRY = const(14)
EVENT_FIXED = const(48)  # 48 + 14n bytes
_EVENT_FMT = ">BiBii"
BIRTH_LEN = const(103)
_BIRTH_FMT = ">IHHBBI16siBBIIIIII"  # from offset 11, up to the MAC (offset 71)
_BIRTH_BODY = const(71)
SNAP_LEN = const(79)
_SNAP_FMT = ">iBIIiiiiBBBI"  # from offset 11, up to the MAC (offset 47)
_SNAP_BODY = const(47)
SNAP_BLOCK = const(36)  # bytes 11..46: the POLL response data
WILL_LEN = const(10)
_BUF_LEN = const(531)  # the largest message: 24 five-minute entries (51 + 4 * 5 * 24)

MISSING = const(-1)


def _u32(v):
    """A value for a u32 field: as it is when non-negative, two's complement when
    negative (no big int on the board for the common case)."""
    return v if v >= 0 else v & 0xFFFFFFFF


class Encoder:
    """The uplink messages of one meter (8-byte id) sealed under `mac` (meter.mac.Hmac)."""

    def __init__(self, meter_id, mac):
        if len(meter_id) != 8:
            raise SettingError("E_METER_ID")
        self.meter_id = bytes(meter_id)
        self.mac = mac
        self.buf = bytearray(_BUF_LEN)
        self.mv = memoryview(self.buf)
        self.sealed = 0  # messages sealed (count)

    def will(self):
        return will_payload(self.meter_id)

    def _head(self, typ, flags):
        struct.pack_into(_HEAD_FMT, self.buf, 0, VERSION, typ, self.meter_id, flags)

    def seal(self, n):
        """Seal the first n bytes; returns the view of the n + MAC_LEN byte message."""
        self.buf[n:n + MAC_LEN] = self.mac.digest(self.mv[:n])
        self.sealed += 1
        return self.mv[:n + MAC_LEN]

    # ---- series ------------------------------------------------------------------------

    def series_begin(self, series, k0, n, cols, unit, flags):
        """Start a series message of n entries (1..MAX_SERIES_N) of `cols` columns from
        interval number k0; fill the values with series_put(), then seal(series_len(n, c))."""
        if not 1 <= n <= MAX_SERIES_N or not 1 <= cols <= MAX_COLS:
            raise SettingError("E_SERIES_SHAPE")
        self._head(T_SERIES, flags)
        struct.pack_into(">BIBBB", self.buf, HEAD, series, k0, n, cols, unit)
        self._cols = cols

    def series_put(self, i, c, value):
        """Column c of entry i (i32; MISSING: not captured or no longer held)."""
        struct.pack_into(">i", self.buf, SERIES_HEAD + 4 * (i * self._cols + c), value)

    # ---- events ------------------------------------------------------------------------

    def event_begin(self, seq, n, flags):
        if not 1 <= n <= MAX_EVENT_N:
            raise SettingError("E_EVENT_SHAPE")
        self._head(T_EVENT, flags)
        struct.pack_into(">IB", self.buf, HEAD, seq, n)

    def event_put(self, i, code, minute, second, a, b):
        """Entry i; code 0 (minute -1): the entry is no longer held."""
        struct.pack_into(_EVENT_FMT, self.buf, EVENT_HEAD + EVENT_ENTRY * i, code, minute,
                         second, a, b)

    # ---- birth and snap -------------------------------------------------------------

    def birth(self, boots, connects, firmware, reset_kind, state, jseq, jseal, minute, second,
              unit, coefficient, alarms, c30, c5, c1, cev, flags):
        """The birth message (103 bytes): see docs/aroute.md. Returns the sealed view."""
        self._head(T_BIRTH, flags)
        struct.pack_into(_BIRTH_FMT, self.buf, HEAD, _u32(boots), connects & 0xFFFF,
                         firmware, reset_kind & 0xFF, state, _u32(jseq), bytes(jseal), minute,
                         second, unit, coefficient, _u32(alarms), _u32(c30), _u32(c5),
                         _u32(c1), _u32(cev))
        return self.seal(_BIRTH_BODY)

    def snap(self, minute, second, e0, e3, p_w, i_ma, i2_ma, v_dv, contract, active, breaker,
             alarms, flags):
        """The snap message (79 bytes). Returns the sealed view; bytes 11..46 are the POLL
        response data (SNAP_BLOCK)."""
        self._head(T_SNAP, flags)
        struct.pack_into(_SNAP_FMT, self.buf, HEAD, minute, second, e0, e3, p_w, i_ma, i2_ma,
                         v_dv, contract & 0xFF, active & 0xFF, breaker & 0xFF, _u32(alarms))
        return self.seal(_SNAP_BODY)


def series_len(n, cols):
    """Bytes before the MAC of a series message of n entries of cols columns."""
    return SERIES_HEAD + 4 * cols * n


def event_len(n):
    return EVENT_HEAD + EVENT_ENTRY * n


def will_payload(meter_id):
    """The broker's Will payload (not authenticated): 0xA1 0x2F + meter id."""
    return bytes((VERSION, T_WILL)) + bytes(meter_id)


def shard(meter_id):
    """The topic shard of a meter: the low byte of the CRC-32 of its 8 id bytes, as two
    lowercase hex digits (bytes)."""
    from meter.storage.journal import crc32

    return ("%02x" % (crc32(meter_id) & 0xFF)).encode()


def topic_base(meter_id):
    """b"am/v1/<sh>/<id>/" of a meter."""
    return b"am/v1/" + shard(meter_id) + b"/" + bytes(meter_id) + b"/"
