# ECHONET Lite low-voltage smart electric energy meter object 0x028801, fed from the core.
#
# Every value is read from the core at the moment of the Get (registers, Metering's
# latest instantaneous values, the interval rings), so the object holds no copy of
# metering data; it only keeps the B-route selectors E5 (day), ED and EF (start points)
# and the installation location. Wall time comes in through at(minute, second, valid)
# before each frame (minutes since 2000-01-01 local standard time).
#
# Injected state sources (callables, None = not wired): fault() True while a fault stands
# (a standing tamper finding: 0x88 = 0x41); registers_valid() False while the register
# records are lost: E0/E3/D0/EA/EB then serve 0xFFFFFFFE (no data) and 0x88 a fault.
#
# Encodings (Release R): cumulative values u32 counts, 0xFFFFFFFE = no data; E7 i32 W,
# 0x7FFFFFFE = no data; E8 i16 R and T in 0.1 A, 0x7FFE = no data (T is absent on
# single-phase 2-wire); date-time YYYY(2) MM DD hh mm ss. Reads allocate nothing.

from micropython import const

from meter import caltime
from meter.broute.echonet.codec import encode_map
from meter.metering.intervals import CAPTURE_WINDOW_S, MISSING, newest_stamp
from meter.metering.samples import NO_VALUE
from meter.metering.registers import FWD, REV, DIGITS

METER_EOJ = const(0x028801)

_HALF = const(30)
_DAY = const(1440)
_EC_MAX = const(12)
_EE_MAX = const(10)
_DAYS_MAX = const(99)
_UNSET = const(-1)

# Readable properties (sorted) and the writable ones.
GET_MAP = bytes((0x80, 0x81, 0x82, 0x88, 0x8A, 0x8D, 0x97, 0x98, 0x9D, 0x9E, 0x9F, 0xC0,
                 0xD0, 0xD3, 0xD7, 0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE7, 0xE8, 0xEA,
                 0xEB, 0xEC, 0xED, 0xEE, 0xEF))
SET_MAP = b"\x81\xE5\xED\xEF"
ANNOUNCE_MAP = b"\x80\x81\x88"

# Largest EDT per readable EPC (index epc - 0x80).
_SIZES = bytearray(128)
for _e, _s in ((0x80, 1), (0x81, 1), (0x82, 4), (0x88, 1), (0x8A, 3), (0x8D, 12),
               (0x97, 2), (0x98, 4), (0x9D, 17), (0x9E, 17), (0x9F, 17), (0xC0, 16),
               (0xD0, 15), (0xD3, 4), (0xD7, 1), (0xE0, 4), (0xE1, 1), (0xE2, 194),
               (0xE3, 4), (0xE4, 194), (0xE5, 1), (0xE7, 4), (0xE8, 4), (0xEA, 11),
               (0xEB, 11), (0xEC, 7 + 8 * _EC_MAX), (0xED, 7), (0xEE, 7 + 8 * _EE_MAX),
               (0xEF, 7)):
    _SIZES[_e - 0x80] = _s


def put_u32(buf, off, v):
    """Big-endian u32 of a small int, or 0xFFFFFFFE for v < 0 (no data)."""
    if v < 0:
        buf[off] = 0xFF
        buf[off + 1] = 0xFF
        buf[off + 2] = 0xFF
        buf[off + 3] = 0xFE
        return
    buf[off] = (v >> 24) & 0xFF
    buf[off + 1] = (v >> 16) & 0xFF
    buf[off + 2] = (v >> 8) & 0xFF
    buf[off + 3] = v & 0xFF


def put_u16(buf, off, v):
    buf[off] = (v >> 8) & 0xFF
    buf[off + 1] = v & 0xFF


class SmartMeter:
    """The 0x028801 object. regs: EnergyRegisters; metering: Metering; capture:
    IntervalCapture; identity: node.Identity. history(minute, reg) -> count or -1 is
    the 30-minute history reader for E2/E4/EC (default: capture.half, two days)."""

    eoj = METER_EOJ

    def __init__(self, regs, metering, capture, identity, history=None):
        self.regs = regs
        self.metering = metering
        self.capture = capture
        self.ring = capture.ring
        self.half = capture.half
        self.identity = identity
        self.history = history if history is not None else self.half_history
        self.location = 0x00  # 81: location not set
        self.fault = None  # 88: callable, True while a fault stands (tamper finding)
        self.operating = True  # 80: False during a Last Gasp hold-up (0x31)
        self.registers_valid = None  # callable, False while the register records are lost
        self.day = 0  # E5: 0 = today .. 99
        self.ec_start = _UNSET  # ED: wall minute (multiple of 30) or unset
        self.ec_n = _EC_MAX
        self.ee_start = _UNSET  # EF: wall minute or unset
        self.ee_n = _EE_MAX
        self.minute = 0
        self.second = 0
        self.valid = False
        self._t = [0, 0, 0, 0, 0]  # caltime scratch: Y M D h m

    def matches(self, deoj):
        return deoj == METER_EOJ or deoj == (METER_EOJ & 0xFFFF00)

    def at(self, minute, second, valid):
        """The wall time of the frame being answered. Until the capture has processed the
        boundary of a new minute (its high-water mark) and while that boundary's capture
        window is open, the object answers as at the end of the previous minute (0x97,
        0x98, the series' current minute): no read sees a boundary before it is captured,
        so a served value never changes and a boundary is never reported missing before
        its capture window closed."""
        if valid and second < CAPTURE_WINDOW_S and self.capture.high_water < minute:
            minute -= 1
            second = 59
        self.minute = minute
        self.second = second
        self.valid = valid

    def half_history(self, minute, reg):
        """Default 30-minute history reader over HalfHourHistory: count or -1."""
        s = self.half.slot(minute)
        if s < 0:
            return MISSING
        return self.half.fwd[s] if reg == FWD else self.half.rev[s]

    # --- helpers --------------------------------------------------------------------

    def _put_ymdhm(self, buf, off, minute):
        """6-byte YYYY MM DD hh mm; all 0xFF when minute < 0 (no time known)."""
        if minute < 0:
            for i in range(6):
                buf[off + i] = 0xFF
            return
        t = self._t
        caltime.split_into(minute, t)
        put_u16(buf, off, t[0])
        buf[off + 2] = t[1]
        buf[off + 3] = t[2]
        buf[off + 4] = t[3]
        buf[off + 5] = t[4]

    def _put_datetime(self, buf, off, minute, second):
        """7-byte YYYY MM DD hh mm ss; all 0xFF when minute < 0 (no time known)."""
        self._put_ymdhm(buf, off, minute)
        buf[off + 6] = second if minute >= 0 else 0xFF

    def _valid(self):
        v = self.registers_valid
        return v is None or v()

    def faulty(self):
        """True while 0x88 reports a fault: a standing fault, or registers not valid."""
        f = self.fault
        return (f is not None and f()) or not self._valid()

    def _cumulative(self, reg):
        return self.regs.count[reg] if self._valid() else MISSING

    def _fixed_time(self, buf, off, reg):
        """EA/EB: the newest 30-minute record (ss = 0)."""
        m = newest_stamp(self.half.stamp)
        if m < 0 and self.valid:
            m = self.minute - self.minute % _HALF
        self._put_datetime(buf, off, m, 0)
        put_u32(buf, off + 7, self.history(m, reg) if m >= 0 and self._valid() else MISSING)
        return 11

    def _day_history(self, buf, off, reg):
        """E2/E4: u16 day + 48 u32 from 00:00 of the day E5 days back."""
        put_u16(buf, off, self.day)
        base = MISSING
        if self.valid:
            base = (self.minute // _DAY - self.day) * _DAY
        hist = self.history
        for k in range(48):
            v = hist(base + k * _HALF, reg) if base >= 0 else MISSING
            put_u32(buf, off + 2 + 4 * k, v)
        return 194

    def _series(self, buf, off, start, n, step, one_minute):
        """EC/EE: 7-byte header then n x (normal, reverse) stepping back `step` minutes."""
        if start == _UNSET:
            if self.valid:
                start = self.minute - self.minute % step
            else:
                start = newest_stamp(self.ring.stamp if one_minute else self.half.stamp)
        t = self._t
        if start >= 0:
            caltime.split_into(start, t)
            put_u16(buf, off, t[0])
            buf[off + 2] = t[1]
            buf[off + 3] = t[2]
            buf[off + 4] = t[3]
            buf[off + 5] = t[4]
        else:
            for i in range(6):
                buf[off + i] = 0xFF
        buf[off + 6] = n
        p = off + 7
        ring = self.ring
        for k in range(n):
            m = start - k * step
            fwd = rev = MISSING
            if start >= 0 and m >= 0:
                if one_minute:
                    s = ring.slot(m)
                    if s >= 0:
                        fwd = ring.fwd[s]
                        rev = ring.rev[s]
                else:
                    fwd = self.history(m, FWD)
                    rev = self.history(m, REV)
            put_u32(buf, p, fwd)
            put_u32(buf, p + 4, rev)
            p += 8
        return 7 + 8 * n

    def _selector(self, buf, off, start, n):
        """ED/EF: the 7-byte start point as set (0xFFFF.. and n when unset)."""
        self._put_ymdhm(buf, off, start)  # _UNSET (-1) writes 0xFF bytes
        buf[off + 6] = n
        return 7

    # --- the object contract --------------------------------------------------------

    def size(self, epc):
        if epc < 0x80:
            return 0
        return _SIZES[epc - 0x80]

    def read(self, epc, buf, off):
        """Write the EDT of `epc` at buf[off:]; returns its length or -1 (refused)."""
        m = self.metering
        if epc == 0xE7:
            if m.samples == 0:  # 0x7FFFFFFE written bytewise: it is no small int
                buf[off] = 0x7F
                buf[off + 1] = 0xFF
                buf[off + 2] = 0xFF
                buf[off + 3] = 0xFE
                return 4
            v = m.p_w
            buf[off] = (v >> 24) & 0xFF
            buf[off + 1] = (v >> 16) & 0xFF
            buf[off + 2] = (v >> 8) & 0xFF
            buf[off + 3] = v & 0xFF
            return 4
        if epc == 0xE8:
            r = t = 0x7FFE
            if m.samples:
                r = _deci_amps(m.i_ma)
                if m.i2_ma != NO_VALUE:
                    t = _deci_amps(m.i2_ma)
            put_u16(buf, off, r)
            put_u16(buf, off + 2, t)
            return 4
        if epc == 0xE0:
            put_u32(buf, off, self._cumulative(FWD))
            return 4
        if epc == 0xE3:
            put_u32(buf, off, self._cumulative(REV))
            return 4
        if epc == 0xD0:
            mm = newest_stamp(self.ring.stamp)
            if mm < 0 and self.valid:
                mm = self.minute
            self._put_datetime(buf, off, mm, 0)
            s = self.ring.slot(mm) if self._valid() else -1
            put_u32(buf, off + 7, self.ring.fwd[s] if s >= 0 else MISSING)
            put_u32(buf, off + 11, self.ring.rev[s] if s >= 0 else MISSING)
            return 15
        if epc == 0xEE:
            return self._series(buf, off, self.ee_start, self.ee_n, 1, True)
        if epc == 0xEF:
            return self._selector(buf, off, self.ee_start, self.ee_n)
        if epc == 0xEC:
            return self._series(buf, off, self.ec_start, self.ec_n, _HALF, False)
        if epc == 0xED:
            return self._selector(buf, off, self.ec_start, self.ec_n)
        if epc == 0xEA:
            return self._fixed_time(buf, off, FWD)
        if epc == 0xEB:
            return self._fixed_time(buf, off, REV)
        if epc == 0xE2:
            return self._day_history(buf, off, FWD)
        if epc == 0xE4:
            return self._day_history(buf, off, REV)
        if epc == 0xE5:
            buf[off] = self.day
            return 1
        if epc == 0xE1:
            buf[off] = self.regs.unit
            return 1
        if epc == 0xD3:
            put_u32(buf, off, self.regs.coefficient)
            return 4
        if epc == 0xD7:
            buf[off] = DIGITS
            return 1
        if epc == 0x80:
            buf[off] = 0x30 if self.operating else 0x31
            return 1
        if epc == 0x81:
            buf[off] = self.location
            return 1
        if epc == 0x82:
            buf[off] = 0
            buf[off + 1] = 0
            buf[off + 2] = 0x52  # 'R'
            buf[off + 3] = 0
            return 4
        if epc == 0x88:
            buf[off] = 0x41 if self.faulty() else 0x42
            return 1
        if epc == 0x8A:
            return _copy(self.identity.maker, buf, off)
        if epc == 0x8D:
            return _copy(self.identity.serial, buf, off)
        if epc == 0xC0:
            return _copy(self.identity.broute_id, buf, off)
        if epc == 0x97 or epc == 0x98:
            if not self.valid:
                return -1
            t = self._t
            caltime.split_into(self.minute, t)
            if epc == 0x97:
                buf[off] = t[3]
                buf[off + 1] = t[4]
                return 2
            put_u16(buf, off, t[0])
            buf[off + 2] = t[1]
            buf[off + 3] = t[2]
            return 4
        if epc == 0x9D:
            return encode_map(ANNOUNCE_MAP, buf, off)
        if epc == 0x9E:
            return encode_map(SET_MAP, buf, off)
        if epc == 0x9F:
            return encode_map(GET_MAP, buf, off)
        return -1

    def write(self, epc, buf, off, pdc):
        """Apply a Set of `epc` with EDT buf[off:off+pdc]; False (nothing changed) when
        the property is not writable or the value is out of range."""
        if epc == 0xE5:
            if pdc != 1 or buf[off] > _DAYS_MAX:
                return False
            self.day = buf[off]
            return True
        if epc == 0xED or epc == 0xEF:
            if pdc != 7:
                return False
            n = buf[off + 6]
            year = (buf[off] << 8) | buf[off + 1]
            mm = buf[off + 5]
            start = caltime.to_minute(year, buf[off + 2], buf[off + 3], buf[off + 4], mm)
            if start < 0:
                return False
            if epc == 0xED:
                if mm % _HALF or n < 1 or n > _EC_MAX:
                    return False
                self.ec_start = start
                self.ec_n = n
            else:
                if n < 1 or n > _EE_MAX:
                    return False
                self.ee_start = start
                self.ee_n = n
            return True
        if epc == 0x81:
            if pdc != 1:
                return False
            v = buf[off]
            if v == 0x00 or v == 0xFF or 0x08 <= v <= 0x7F:
                self.location = v
                return True
            return False
        return False


def _deci_amps(ma):
    """mA -> 0.1 A, rounded, clamped below the no-data code."""
    v = (ma + 50) // 100
    if v > 0x7FFD:
        v = 0x7FFD
    if v < -0x7FFF:
        v = -0x7FFF
    return v & 0xFFFF


def _copy(src, buf, off):
    n = len(src)
    for i in range(n):
        buf[off + i] = src[i]
    return n
