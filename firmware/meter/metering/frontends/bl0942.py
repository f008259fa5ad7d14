# BL0942 metering IC over UART (4800 8N1): a sans-IO parser of its full-packet reply and the
# front end that requests packets and turns them into metering samples.
#
# Protocol (BL0942 datasheet V1.06, UART mode; A1/A2 pins give the address 0..3, 0 on SSOP10):
#   request  0x58|addr, 0xAA                       "read the full packet"
#   reply    23 bytes: 0x55 header, then little-endian fields
#            [1:4] I_RMS  [4:7] V_RMS  [7:10] I_FAST_RMS     unsigned 24-bit
#            [10:13] WATT (signed 24-bit)  [13:16] CF_CNT (unsigned 24-bit, wraps)
#            [16:18] FREQ: line period in us  [18] reserved  [19] STATUS low byte
#            (bit 0 CF_REVP: energy reversed, bit 1 CREEP)  [20:22] reserved  [22] checksum
#   checksum ~((0x58|addr) + sum(bytes 0..21)) & 0xFF
#   register write  0xA8|addr, reg, d0, d1, d2, ~(sum of those five bytes) & 0xFF
# Datasheet relations (Vref = 1.218 V, pin voltages in mV):
#   I_RMS = 305978 I(A) / Vref, V_RMS = 73989 V(V) / Vref, WATT = 3537 I(A) V(V) cos(phi) / Vref^2
#   one CF pulse every 1638.4 x 256 / WATT seconds, so J per pulse = 419430.4 / (WATT per W)
#
# Calibration: integer fractions (num, den) per board, each with num * den < 2**30 so that
# conversions are exact floors without big ints: dV per V_RMS count, mA per I_RMS count,
# W per WATT count, J per CF pulse. The defaults fit the datasheet's reference design
# (1 mOhm shunt, 5 x 390 kOhm + 0.51 kOhm divider); for another board derive
# J per pulse = 419430.4 x (W per WATT count).
#
# Energy comes from the CF_CNT delta between accepted packets (24-bit wrap), converted to J
# with the remainder carried; it is imported or exported by the sign of WATT (set the chip's
# CF_CNT_ADD_SEL, as configure() does, so CF_CNT counts |energy|). A delta larger than
# max_power_w allows for the elapsed time (a chip reset, a corrupted but checksum-valid
# packet) is rejected, counted in `jumps`, and CF_CNT re-based. The BL0942 measures no
# reactive energy: q_lag = q_lead = 0.

from micropython import const

from meter.errors import SettingError

from meter.metering.frontends import elapsed_ms, scale
from meter.hal import MetrologySource
from meter.metering.samples import NO_VALUE

FRAME_LEN = const(23)
HEADER = const(0x55)
READ_CMD = const(0x58)
WRITE_CMD = const(0xA8)
FULL_PACKET = const(0xAA)
REG_MODE = const(0x19)
REG_USR_WRPROT = const(0x1D)
_WRPROT_UNLOCK = const(0x55)
# MODE: reserved bits 0-1 set, CF_EN (bit 2), RMS update 800 ms (bit 3),
# AC_FREQ_SEL 60 Hz (bit 5), CF_CNT_ADD_SEL absolute accumulation (bit 7)
_MODE_BASE = const(0x03 | 0x04 | 0x08 | 0x80)
_MODE_60HZ = const(0x20)
STATUS_REVERSE = const(0x01)

_CF_MASK = const(0xFF_FFFF)
_SIGN24 = const(0x80_0000)
_WRAP24 = const(0x100_0000)
_SMALL = const(0x3FFF_FFFF)  # 2**30 - 1

# Reference-design calibration (see header): (num, den)
CAL_V_DV = (425, 675_042)  # dV per V_RMS count (~15 883 counts per volt)
CAL_I_MA = (609, 152_989)  # mA per I_RMS count (exactly 1218 / 305978)
CAL_P_W = (645, 402_089)  # W per WATT count (~623.4 counts per watt)
CAL_E_J = (538_927, 801)  # J per CF pulse (~672.8 J)


def _check_cal(cal, code):
    num, den = cal
    if not (isinstance(num, int) and isinstance(den, int) and num > 0 and den > 0
            and num * den < _SMALL):
        raise SettingError(code)
    return num, den


def _u24(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)


class Bl0942Parser:
    """Sans-IO parser of full-packet replies. feed() takes bytes in any split; each valid
    packet updates the decoded fields below and calls on_frame(parser) if given. A wrong
    checksum rejects the packet (bad_checksum) and the parser re-aligns on the next 0x55
    inside it; bytes outside any packet are skipped (skipped) and each loss of alignment
    counts once in resyncs."""

    def __init__(self, address=0, on_frame=None):
        if not 0 <= address <= 3:
            raise SettingError("E_ADDRESS")
        self._seed = (READ_CMD | address) + HEADER  # checksum start incl. the header
        self._buf = bytearray(FRAME_LEN)
        self._n = 0
        self._hunting = False
        self.on_frame = on_frame
        self.frames = 0
        self.bad_checksum = 0
        self.resyncs = 0
        self.skipped = 0
        # fields of the newest valid packet (register counts)
        self.i_rms = 0
        self.v_rms = 0
        self.i_fast_rms = 0
        self.watt = 0  # signed
        self.cf_cnt = 0
        self.freq = 0  # line period, us
        self.status = 0

    def reset(self):
        """Drop a partial packet (e.g. a reply that stopped arriving)."""
        if self._n:
            self.skipped += self._n
            self._n = 0

    def pending(self):
        """Bytes of an incomplete packet held."""
        return self._n

    def feed(self, data, n=-1):
        """Parse the first n bytes of data (all if n < 0). Returns the valid packets found."""
        if n < 0:
            n = len(data)
        buf = self._buf
        found = 0
        for k in range(n):
            b = data[k]
            if self._n == 0:
                if b != HEADER:
                    self.skipped += 1
                    if not self._hunting:
                        self._hunting = True
                        self.resyncs += 1
                    continue
                self._hunting = False
            buf[self._n] = b
            self._n += 1
            if self._n == FRAME_LEN:
                if self._complete():
                    found += 1
        return found

    def _complete(self):
        buf = self._buf
        total = self._seed
        for i in range(1, FRAME_LEN - 1):
            total += buf[i]
        if (~total & 0xFF) != buf[FRAME_LEN - 1]:
            self.bad_checksum += 1
            self.resyncs += 1
            self._realign()
            return False
        self._n = 0
        self._hunting = False
        self.i_rms = _u24(buf, 1)
        self.v_rms = _u24(buf, 4)
        self.i_fast_rms = _u24(buf, 7)
        w = _u24(buf, 10)
        self.watt = w - _WRAP24 if w & _SIGN24 else w
        self.cf_cnt = _u24(buf, 13)
        self.freq = buf[16] | (buf[17] << 8)
        self.status = buf[19]
        self.frames += 1
        if self.on_frame is not None:
            self.on_frame(self)
        return True

    def _realign(self):
        """After a bad packet: keep the bytes from the next 0x55 on, as a new partial packet."""
        buf = self._buf
        start = 1
        while start < FRAME_LEN and buf[start] != HEADER:
            start += 1
        self.skipped += start
        n = FRAME_LEN - start
        for i in range(n):
            buf[i] = buf[start + i]
        self._n = n  # < FRAME_LEN: the next bytes complete it
        self._hunting = True  # this loss of alignment is counted already


def write_frame(buf, address, reg, value):
    """Fill buf[0:6] with a register write of 24-bit value."""
    buf[0] = WRITE_CMD | address
    buf[1] = reg
    buf[2] = value & 0xFF
    buf[3] = (value >> 8) & 0xFF
    buf[4] = (value >> 16) & 0xFF
    buf[5] = ~(buf[0] + buf[1] + buf[2] + buf[3] + buf[4]) & 0xFF
    return buf


class Bl0942(MetrologySource):
    """The front end: uart is a meter.hal.Uart at 4800 8N1. Each poll reads what arrived,
    turns the newest packet into a sample, and requests the next packet. A request that got
    no complete reply by the next poll counts in `timeouts` and its partial bytes are
    dropped."""

    def __init__(self, uart, address=0, v_cal=CAL_V_DV, i_cal=CAL_I_MA, p_cal=CAL_P_W,
                 e_cal=CAL_E_J, line_hz=50, max_power_w=12_000):
        if line_hz not in (50, 60):
            raise SettingError("E_LINE_HZ")
        if not 1 <= max_power_w <= 100_000:
            raise SettingError("E_MAX_POWER")
        self._uart = uart
        self.address = address
        self.parser = Bl0942Parser(address)
        self._v = _check_cal(v_cal, "E_CAL_V")
        self._i = _check_cal(i_cal, "E_CAL_I")
        self._p = _check_cal(p_cal, "E_CAL_P")
        self._e = _check_cal(e_cal, "E_CAL_E")
        self.line_hz = line_hz
        self.max_power_w = max_power_w
        e_num, e_den = self._e
        self._e_chunk = (_SMALL - e_den) // e_num  # pulses converted per step
        self._pulses_per_s = max_power_w * e_den // e_num + 1
        self._rx = bytearray(64)
        self._req = bytes((READ_CMD | address, FULL_PACKET))
        self._wr = bytearray(6)
        self._seen_frames = 0
        self._outstanding = False
        self._have_base = False
        self._cf = 0
        self._carry = 0  # CF pulses x e_num not yet converted, < e_den
        self._last_ms = 0
        self.timeouts = 0
        self.jumps = 0
        self.i_fast_ma = 0  # fast RMS current of the newest packet (over-current watch)
        self.freq_chz = NO_VALUE  # line frequency of the newest packet, 0.01 Hz

    def configure(self):
        """Write the MODE register (CF on, |energy| accumulation, 800 ms RMS, line Hz)."""
        mode = _MODE_BASE | (_MODE_60HZ if self.line_hz == 60 else 0)
        u = self._uart
        u.write(write_frame(self._wr, self.address, REG_USR_WRPROT, _WRPROT_UNLOCK))
        u.write(write_frame(self._wr, self.address, REG_MODE, mode))
        u.write(write_frame(self._wr, self.address, REG_USR_WRPROT, 0))

    def _joules(self, pulses):
        e_num, e_den = self._e
        j = 0
        while pulses > 0:
            n = pulses if pulses < self._e_chunk else self._e_chunk
            pulses -= n
            acc = self._carry + n * e_num
            j += acc // e_den
            self._carry = acc % e_den
        return j

    def poll(self, s, now_ms):
        u = self._uart
        parser = self.parser
        while True:
            n = u.readinto(self._rx)
            if not n:
                break
            parser.feed(self._rx, n)
        fresh = parser.frames != self._seen_frames
        if self._outstanding and not fresh:
            self.timeouts += 1
            parser.reset()
        self._seen_frames = parser.frames
        u.write(self._req)
        self._outstanding = True
        if not fresh:
            return False
        cf = parser.cf_cnt
        if not self._have_base:
            self._have_base = True
            self._cf = cf
            self._last_ms = now_ms
            return False
        dt = elapsed_ms(now_ms, self._last_ms)
        if dt <= 0:
            return False
        delta = (cf - self._cf) & _CF_MASK
        self._cf = cf
        self._last_ms = now_ms
        if delta > self._pulses_per_s * (dt // 1000 + 1) + 1:
            self.jumps += 1
            return False
        j = self._joules(delta)
        w = parser.watt
        p_num, p_den = self._p
        if w < 0:
            p = -scale(-w, p_num, p_den)
            s.e_fwd = 0
            s.e_rev = j
        else:
            p = scale(w, p_num, p_den)
            s.e_fwd = j
            s.e_rev = 0
        s.dt_ms = dt
        s.p_w = p
        s.q_lag = 0
        s.q_lead = 0
        s.i_ma = scale(parser.i_rms, self._i[0], self._i[1])
        s.i2_ma = NO_VALUE
        s.v_dv = scale(parser.v_rms, self._v[0], self._v[1])
        self.i_fast_ma = scale(parser.i_fast_rms, self._i[0], self._i[1])
        self.freq_chz = 100_000_000 // parser.freq if parser.freq else NO_VALUE
        return True
