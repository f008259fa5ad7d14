# Wire formats of the outage messages for the A-route: Last Gasp alarm, restoration notice, alarm.
#
# Encoders only: each message type is a small object that owns one preallocated buffer, packs
# its fields with struct.pack_into and seals it with HMAC-SHA256 (meter.mac.Hmac) under the
# meter key. The head-end's decoders live on the head-end side (tools/headend_alarms.py) and
# are written from the layouts below, not from this code.
#
# Last Gasp alarm (type 0x01, little-endian, 65 bytes; the repeats differ only in REPEAT):
#   off len  field
#    0   1   type 0x01
#    1   1   flags (F_*)
#    2   8   meter id (ASCII)
#   10   4   u32 seq: message sequence number (the same for every repeat)
#   14   4   u32 start minute (wall minutes since 2000-01-01; meaningful with F_CLOCK_VALID)
#   18   1   u8 start second
#   19   1   u8 repeat index (0: first transmission)
#   20   4   u32 E0: forward energy count at the freeze
#   24   4   u32 E3: reverse energy count at the freeze
#   28   1   u8 unit (ECHONET E1)
#   29   4   u32 coefficient (ECHONET D3)
#   33  32   HMAC-SHA256 over bytes 0..32
#
# Restoration notice (type 0x02, little-endian, 86 bytes):
#    0   1   type 0x02            |  24   4   u32 duration s (0 unless both ends valid)
#    1   1   flags (F_*)          |  28   2   u16 sequence ms (edge to radios off; 0xFFFF: none)
#    2   8   meter id             |  30   4   u32 failures (outages counted, ever)
#   10   4   u32 seq              |  34   4   u32 long failures
#   14   4   u32 start minute     |  38   4   u32 long failures' total duration s
#   18   4   u32 end minute       |  42   4   u32 E0 at the restoration
#   22   1   u8 start second      |  46   4   u32 seq of the outage's Last Gasp alarm
#   23   1   u8 end second        |  50   2   u16 alarms suppressed by the rate limit (ever)
#                                 |  52   2   u16 power-good dips since boot
#   54  32   HMAC-SHA256 over bytes 0..53
#
# Alarm (type 0x03, BIG-endian, 59 bytes), for causes other than a power failure:
#    0   1   type 0x03
#    1   1   u8 code (meter.events code of the cause, e.g. BREAKER_FAULT)
#    2   8   meter id
#   10   4   u32 seq
#   14   4   i32 wall minute (-1: clock invalid)
#   18   1   u8 second
#   19   4   i32 a (the event's first argument; BREAKER_FAULT: commanded state)
#   23   4   i32 b (the event's second argument; BREAKER_FAULT: sensed state)
#   27  32   HMAC-SHA256 over bytes 0..26
#
# Every message is at most 128 bytes (the uplink's alarm limit). Encoding allocates only
# what the HMAC allocates (the digest and hashlib's objects).

from micropython import const
import struct

from meter.errors import SettingError

MSG_LAST_GASP = const(0x01)
MSG_RESTORED = const(0x02)
MSG_ALARM = const(0x03)

# flags of the Last Gasp alarm and the restoration notice
F_CLOCK_VALID = const(0x01)  # outage start time from a valid clock
F_END_VALID = const(0x02)  # outage end time from a valid clock (restoration)
F_ALARM_LOST = const(0x04)  # the Last Gasp alarm could not be handed to the uplink
F_LONG = const(0x08)  # a long power failure (>= long_outage_s)
F_REBOOTED = const(0x10)  # the hold-up ran out; restored after a reboot

MAC_LEN = const(32)
_METER_ID_LEN = const(8)

# The field offsets of the layouts above. Each struct format below packs the same fields in
# the same order (host_tests/test_outage_wire.py checks every offset against it); the
# offsets are private constants, folded by the compiler: no RAM on the board.
# Last Gasp alarm
_GASP_TYPE = const(0)
_GASP_FLAGS = const(1)
_GASP_METER_ID = const(2)
_GASP_SEQ = const(10)
_GASP_START_MINUTE = const(14)
_GASP_START_SECOND = const(18)
_GASP_REPEAT = const(19)
_GASP_E0 = const(20)
_GASP_E3 = const(24)
_GASP_UNIT = const(28)
_GASP_COEFFICIENT = const(29)
_GASP_BODY_LEN = const(33)
GASP_LEN = const(65)  # body + MAC
_GASP_FMT = "<BB8sIIBBIIBI"

# restoration notice
_REST_TYPE = const(0)
_REST_FLAGS = const(1)
_REST_METER_ID = const(2)
_REST_SEQ = const(10)
_REST_START_MINUTE = const(14)
_REST_END_MINUTE = const(18)
_REST_START_SECOND = const(22)
_REST_END_SECOND = const(23)
_REST_DURATION = const(24)
_REST_SEQUENCE_MS = const(28)
_REST_FAILURES = const(30)
_REST_LONG_FAILURES = const(34)
_REST_LONG_DURATION = const(38)
_REST_E0 = const(42)
_REST_ALARM_SEQ = const(46)
_REST_SUPPRESSED = const(50)
_REST_DIPS = const(52)
_REST_BODY_LEN = const(54)
REST_LEN = const(86)
_REST_FMT = "<BB8sIIIBBIHIIIIIHH"

# alarm
_ALARM_TYPE = const(0)
_ALARM_CODE = const(1)
_ALARM_METER_ID = const(2)
_ALARM_SEQ = const(10)
_ALARM_MINUTE = const(14)
_ALARM_SECOND = const(18)
_ALARM_A = const(19)
_ALARM_B = const(23)
_ALARM_BODY_LEN = const(27)
ALARM_LEN = const(59)
_ALARM_FMT = ">BB8sIiBii"

_U16_MAX = const(0xFFFF)


def _u32(v):
    """A wall minute for a u32 slot: as it is when non-negative (no big int on the board),
    in two's complement when negative (a clock never set), as the format always carried it."""
    return v if v >= 0 else v & 0xFFFFFFFF


def _u16(v):
    return v if v < _U16_MAX else _U16_MAX


class _Sealed:
    """A message buffer whose first BODY bytes are sealed by the MAC_LEN after them, under
    the meter key mac (meter.mac.Hmac). buf is the message as handed to the uplink (valid
    after pack()). Raises SettingError ("E_METER_ID") unless meter_id is 8 bytes."""

    BODY = 0

    def __init__(self, meter_id, mac):
        if len(meter_id) != _METER_ID_LEN:
            raise SettingError("E_METER_ID")
        self.meter_id = bytes(meter_id)
        self.mac = mac
        n = self.BODY
        self.buf = bytearray(n + MAC_LEN)
        mv = memoryview(self.buf)
        self._body = mv[:n]
        self._seal = mv[n:]

    def seal(self):
        self._seal[:] = self.mac.digest(self._body)


class LastGaspAlarm(_Sealed):
    """The Last Gasp alarm: pack() once per outage, repeat(n) re-seals repeat n."""

    BODY = _GASP_BODY_LEN

    def pack(self, flags, seq, start_minute, start_second, e0, e3, unit, coefficient):
        struct.pack_into(_GASP_FMT, self.buf, 0, MSG_LAST_GASP, flags, self.meter_id,
                         seq, _u32(start_minute), start_second, 0, e0, e3, unit, coefficient)
        self.seal()

    def repeat(self, n):
        """The same alarm as repeat n (0..255); the seal covers the index."""
        self.buf[_GASP_REPEAT] = n
        self.seal()


class RestorationNotice(_Sealed):
    """The power-restoration notice; load() takes one back from persisted bytes."""

    BODY = _REST_BODY_LEN

    def pack(self, flags, seq, start_minute, start_second, end_minute, end_second,
             duration_s, sequence_ms, failures, long_failures, long_duration_s, e0,
             alarm_seq, suppressed, dips):
        """suppressed and dips saturate at 0xFFFF; sequence_ms must be 0..0xFFFF."""
        struct.pack_into(_REST_FMT, self.buf, 0, MSG_RESTORED, flags, self.meter_id, seq,
                         _u32(start_minute), _u32(end_minute), start_second, end_second,
                         duration_s, sequence_ms, failures, long_failures, long_duration_s, e0,
                         alarm_seq, _u16(suppressed), _u16(dips))
        self.seal()

    def load(self, payload):
        """Copy a sealed notice (REST_LEN bytes) back into the buffer, unchanged."""
        if len(payload) != REST_LEN:
            raise ValueError("E_LENGTH")
        self.buf[:] = payload


class AlarmMessage(_Sealed):
    """An alarm for a cause other than a power failure (BREAKER_FAULT)."""

    BODY = _ALARM_BODY_LEN

    def pack(self, code, seq, minute, second, a, b):
        """minute: the event stamp (-1 while the clock is invalid)."""
        struct.pack_into(_ALARM_FMT, self.buf, 0, MSG_ALARM, code, self.meter_id, seq, minute,
                         second, a, b)
        self.seal()
