# SKSTACK IP (ROHM/Skyley Wi-SUN modules) over a UART, sans-IO: a line parser for what the
# module sends (OK, FAIL ERxx, EVENT, ERXUDP, EINFO, EVER, EPANDESC fields) and encoders
# for the commands the meter sends. No I/O here: feed() takes bytes, the caller writes the
# encoded commands to its UART.
#
# Lines end with CR LF. ERXUDP carries the UDP payload as hex ASCII (WOPT 01) in the
# BP35C2 layout "ERXUDP src dst sport dport mac lqi sec side len data" or the BP35A1 layout
# without lqi and side; both are recognised by their field count. The payload is decoded
# straight into the caller's buffer; addresses stay in the line buffer as text.

from micropython import const

LINE_SIZE = const(1200)  # an ERXUDP line with a 512-byte payload fits

# parser results (SkParser.kind)
NONE = const(0)  # no complete line yet
OK = const(1)  # "OK" (rest of line in text, e.g. "OK 01" for ROPT)
FAIL = const(2)  # "FAIL ERxx": code in .code
EVENT = const(3)  # "EVENT nn addr [side] [param]": .event, .param, address field 2
ERXUDP = const(4)  # fields parsed: .sport, .dport, .length; payload via payload_into()
EINFO = const(5)
EVER = const(6)
OTHER = const(7)  # echo of a command, EPANDESC block lines, anything else
OVERFLOW = const(8)  # a line longer than the buffer (dropped)

_MAX_FIELDS = const(12)


def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


class SkParser:
    def __init__(self, size=LINE_SIZE):
        self.line = bytearray(size)
        self.n = 0  # bytes of the current line
        self.kind = NONE
        self.code = 0
        self.event = 0
        self.param = -1
        self.sport = 0
        self.dport = 0
        self.length = 0
        self.overflows = 0
        self.bad = 0  # malformed EVENT/ERXUDP lines
        self._fs = [0] * _MAX_FIELDS
        self._fe = [0] * _MAX_FIELDS
        self.fields = 0
        self._skip = False  # inside an overlong line
        self._data_field = 0

    # --- input ----------------------------------------------------------------------

    def feed(self, data, start=0, end=-1):
        """Consume bytes up to and including one line end; returns bytes consumed.
        self.kind tells what the line was (NONE while a line is incomplete)."""
        if end < 0:
            end = len(data)
        self.kind = NONE
        i = start
        line = self.line
        while i < end:
            c = data[i]
            i += 1
            if c == 10 or c == 13:
                if self._skip:
                    self._skip = False
                    self.n = 0
                    self.kind = OVERFLOW
                    return i - start
                if self.n == 0:
                    continue  # the other half of CR LF, or an empty line
                self._classify()
                self.n = 0
                return i - start
            if self._skip:
                continue
            if self.n >= len(line):
                self._skip = True
                self.overflows += 1
                continue
            line[self.n] = c
            self.n += 1
        return i - start

    def _split(self, n):
        line = self.line
        k = 0
        i = 0
        while i < n and k < _MAX_FIELDS:
            while i < n and line[i] == 32:
                i += 1
            if i >= n:
                break
            self._fs[k] = i
            while i < n and line[i] != 32:
                i += 1
            self._fe[k] = i
            k += 1
        self.fields = k
        self._n = n

    def _is(self, k, word):
        s = self._fs[k]
        if self._fe[k] - s != len(word):
            return False
        line = self.line
        for j in range(len(word)):
            if line[s + j] != word[j]:
                return False
        return True

    def hex_field(self, k):
        """Value of field k read as hex, or -1."""
        if k >= self.fields:
            return -1
        v = 0
        line = self.line
        for i in range(self._fs[k], self._fe[k]):
            d = _hexval(line[i])
            if d < 0:
                return -1
            v = (v << 4) | d
            if v > 0x3FFFFFFF:
                return -1
        return v

    def field(self, k):
        """Field k as bytes (allocates: for set-up and tests)."""
        return bytes(self.line[self._fs[k]:self._fe[k]])

    def field_into(self, k, buf):
        """Copy field k into buf; returns its length (0 if it does not fit)."""
        s = self._fs[k]
        n = self._fe[k] - s
        if n > len(buf):
            return 0
        line = self.line
        for j in range(n):
            buf[j] = line[s + j]
        return n

    def _classify(self):
        self._split(self.n)
        self.kind = OTHER
        if self.fields == 0:
            return
        if self._is(0, b"OK"):
            self.kind = OK
        elif self._is(0, b"FAIL"):
            self.kind = FAIL
            self.code = -1
            if self.fields > 1:
                s = self._fs[1]
                if self._fe[1] - s == 4 and self.line[s] == 69 and self.line[s + 1] == 82:
                    self.code = (self.line[s + 2] - 48) * 10 + self.line[s + 3] - 48
        elif self._is(0, b"EVENT"):
            ev = self.hex_field(1)
            if ev < 0 or self.fields < 3:
                self.bad += 1
                return
            self.kind = EVENT
            self.event = ev
            # BP35C2: EVENT num addr side [param]; BP35A1: EVENT num addr [param]
            self.param = self.hex_field(4) if self.fields > 4 else -1
        elif self._is(0, b"ERXUDP"):
            f = self.fields
            if f == 11:
                d = 10
            elif f == 9:
                d = 8
            else:
                self.bad += 1
                return
            self.sport = self.hex_field(3)
            self.dport = self.hex_field(4)
            self.length = self.hex_field(d - 1)
            if (self.sport < 0 or self.dport < 0 or self.length < 0
                    or self._fe[d] - self._fs[d] != 2 * self.length):
                self.bad += 1
                return
            self._data_field = d
            self.kind = ERXUDP
        elif self._is(0, b"EINFO"):
            self.kind = EINFO
        elif self._is(0, b"EVER"):
            self.kind = EVER

    def payload_into(self, buf):
        """Decode the ERXUDP payload into buf; returns its length, -1 when it does not
        fit or is not hex."""
        n = self.length
        if n > len(buf):
            return -1
        line = self.line
        p = self._fs[self._data_field]
        for i in range(n):
            hi = _hexval(line[p])
            lo = _hexval(line[p + 1])
            if hi < 0 or lo < 0:
                return -1
            buf[i] = (hi << 4) | lo
            p += 2
        return n


# --- commands (bytes to write to the module) -------------------------------------------

def command(*words):
    """A command line: words joined by spaces, CR LF appended (allocates: set-up path)."""
    out = bytearray()
    for i, w in enumerate(words):
        if i:
            out += b" "
        out += w if isinstance(w, (bytes, bytearray)) else str(w).encode()
    out += b"\r\n"
    return bytes(out)


def sendto_header(addr, length, port=0x0E1A, handle=1, sec=2, side=0):
    """Head of SKSENDTO (BP35C2 layout) up to the space before the binary payload."""
    return b"SKSENDTO %d %s %04X %d %d %04X " % (handle, bytes(addr), port, sec,
                                                 side, length)
