# ECHONET Lite format 1 frames: parse into a preallocated Frame, build replies into a
# preallocated buffer, reassemble frames from a byte stream, property maps.
#
# Frame: EHD1 0x10, EHD2 0x81, TID (2), SEOJ (3), DEOJ (3), ESV (1), OPC (1), then OPC x
# (EPC, PDC, EDT[PDC]); SetGet (0x6E) and its replies carry a second OPC block (the Get
# part) after the first. EOJs are handled as 24-bit ints (0x028801). parse() returns a
# specific error code (E_*) for every malformed frame and never raises on peer input.

from micropython import const
from array import array

EHD1 = const(0x10)
EHD2 = const(0x81)  # format 1 (specified message format)
HEADER = const(12)
PORT = const(3610)
MAX_FRAME = const(512)  # largest request accepted (bytes)
MAX_PROPS = const(32)  # most properties accepted in one request (both blocks)

# Service codes (ESV)
SETI = const(0x60)
SETC = const(0x61)
GET = const(0x62)
INF_REQ = const(0x63)
SETGET = const(0x6E)
SET_RES = const(0x71)
GET_RES = const(0x72)
INF = const(0x73)
INFC = const(0x74)
INFC_RES = const(0x7A)
SETGET_RES = const(0x7E)
SETI_SNA = const(0x50)
SETC_SNA = const(0x51)
GET_SNA = const(0x52)
INF_SNA = const(0x53)
SETGET_SNA = const(0x5E)

ESVS = (SETI, SETC, GET, INF_REQ, SETGET, SET_RES, GET_RES, INF, INFC, INFC_RES,
        SETGET_RES, SETI_SNA, SETC_SNA, GET_SNA, INF_SNA, SETGET_SNA)

# parse() results
OK = const(0)
E_SHORT = const(1)  # fewer bytes than the 12-byte header
E_EHD = const(2)  # not EHD1 0x10 / EHD2 0x81
E_OVERSIZE = const(3)  # more than MAX_FRAME bytes
E_TRUNCATED = const(4)  # an EPC/PDC or EDT runs past the end of the frame
E_TRAILING = const(5)  # bytes left over after the last property (OPC/PDC mismatch)
E_OPC_ZERO = const(6)  # a request with no property
E_OPC_LIMIT = const(7)  # more than MAX_PROPS properties
E_ESV = const(8)  # unknown service code
ERROR_COUNT = const(9)
ERROR_NAMES = ("ok", "short", "ehd", "oversize", "truncated", "trailing", "opc_zero",
               "opc_limit", "esv")


def two_blocks(esv):
    """True for the services whose frames carry a Set block and a Get block."""
    return esv == SETGET or esv == SETGET_RES or esv == SETGET_SNA


class Frame:
    """A parsed frame: header fields and, per property i, epc[i], pdc[i] and the offset
    at[i] of its EDT in the parsed buffer. Properties 0..opc-1 are the first block,
    opc..opc+opc2-1 the second (SetGet only)."""

    def __init__(self, max_props=MAX_PROPS):
        self.tid = 0
        self.seoj = 0
        self.deoj = 0
        self.esv = 0
        self.opc = 0
        self.opc2 = 0
        self.epc = bytearray(max_props)
        self.pdc = bytearray(max_props)
        self.at = array("H", [0] * max_props)
        self.length = 0


def parse(buf, n, f, limit=MAX_FRAME):
    """Parse buf[0:n] into Frame f. Returns OK or an E_* code (f is then undefined).
    limit: the largest frame accepted (requests: MAX_FRAME; a client reading replies may
    allow more)."""
    if n > limit:
        return E_OVERSIZE
    if n < HEADER:
        return E_SHORT
    if buf[0] != EHD1 or buf[1] != EHD2:
        return E_EHD
    esv = buf[10]
    if esv not in ESVS:
        return E_ESV
    f.tid = (buf[2] << 8) | buf[3]
    f.seoj = (buf[4] << 16) | (buf[5] << 8) | buf[6]
    f.deoj = (buf[7] << 16) | (buf[8] << 8) | buf[9]
    f.esv = esv
    f.opc2 = 0
    pos = HEADER
    k = 0
    limit = len(f.epc)
    blocks = 2 if two_blocks(esv) else 1
    opc_at = 11
    for b in range(blocks):
        if opc_at >= n:
            return E_TRUNCATED
        count = buf[opc_at]
        if b == 0:
            f.opc = count
        else:
            f.opc2 = count
        if k + count > limit:
            return E_OPC_LIMIT
        for _ in range(count):
            if pos + 2 > n:
                return E_TRUNCATED
            pdc = buf[pos + 1]
            f.epc[k] = buf[pos]
            f.pdc[k] = pdc
            f.at[k] = pos + 2
            pos += 2 + pdc
            if pos > n:
                return E_TRUNCATED
            k += 1
        opc_at = pos
        if b + 1 < blocks:
            pos += 1
    if pos != n:
        return E_TRAILING if pos < n else E_TRUNCATED
    if k == 0 and esv < 0x70 and esv != SETGET:
        return E_OPC_ZERO
    f.length = n
    return OK


class Builder:
    """Builds one frame at a time into a preallocated buffer. Every write checks room
    against `limit` (bytes a frame may take: at most len(buf), less when the link carries
    smaller datagrams); begin_prop() returns -1 when the property header does not fit."""

    def __init__(self, size=MAX_FRAME):
        self.buf = bytearray(size)
        self.limit = size
        self.n = 0
        self._opc_at = 11
        self._edt_at = 0

    def start(self, tid, seoj, deoj, esv):
        b = self.buf
        b[0] = EHD1
        b[1] = EHD2
        b[2] = (tid >> 8) & 0xFF
        b[3] = tid & 0xFF
        b[4] = (seoj >> 16) & 0xFF
        b[5] = (seoj >> 8) & 0xFF
        b[6] = seoj & 0xFF
        b[7] = (deoj >> 16) & 0xFF
        b[8] = (deoj >> 8) & 0xFF
        b[9] = deoj & 0xFF
        b[10] = esv
        b[11] = 0
        self._opc_at = 11
        self.n = HEADER

    def set_esv(self, esv):
        self.buf[10] = esv

    def second_block(self):
        """Open the Get block of a SetGet reply."""
        self._opc_at = self.n
        self.buf[self.n] = 0
        self.n += 1

    def room(self):
        """Bytes of EDT that still fit after one more EPC/PDC pair."""
        return self.limit - self.n - 2

    def begin_prop(self, epc):
        """Write EPC and a PDC placeholder; returns the EDT offset or -1 when full."""
        if self.n + 2 > self.limit:
            return -1
        b = self.buf
        b[self.n] = epc
        b[self.n + 1] = 0
        self._edt_at = self.n + 2
        return self._edt_at

    def end_prop(self, pdc):
        """Close the property opened by begin_prop with `pdc` EDT bytes written."""
        at = self._edt_at
        self.buf[at - 1] = pdc
        self.n = at + pdc
        self.buf[self._opc_at] += 1

    def prop(self, epc, src, off, pdc):
        """Append a property with EDT copied from src[off:off+pdc]; False when full."""
        at = self.begin_prop(epc)
        if at < 0 or at + pdc > self.limit:
            return False
        b = self.buf
        for i in range(pdc):
            b[at + i] = src[off + i]
        self.end_prop(pdc)
        return True


# Assembler states: what the bytes up to _need complete
_ST_EHD = const(0)  # EHD1 EHD2
_ST_HEADER = const(1)  # the 12-byte header
_ST_PROP = const(2)  # EPC and PDC of a property
_ST_EDT = const(3)  # a property's EDT
_ST_OPC2 = const(4)  # the second block's OPC (SetGet)
_ST_DONE = const(5)  # the whole frame


class Assembler:
    """Reassembles frames from a byte stream (bytes may come one at a time). After
    feed() returns with `ready` set, buf[0:n] holds one whole frame; call clear() before
    feeding on. Bytes that cannot start a frame are skipped and counted; a frame that
    would exceed the buffer is dropped and counted as oversize."""

    def __init__(self, size=MAX_FRAME):
        self.buf = bytearray(size)
        self.n = 0
        self.ready = False
        self.skipped = 0
        self.oversize = 0
        self._st = _ST_EHD
        self._need = 2
        self._pos = 0
        self._left = 0
        self._blocks = 0
        self._discard = 0  # bytes of an oversize frame still to swallow

    def clear(self):
        self.n = 0
        self.ready = False
        self._st = _ST_EHD
        self._need = 2

    def feed(self, data, start=0, end=-1):
        """Consume data[start:end]; returns the number of bytes consumed (stops right after
        a complete frame)."""
        if end < 0:
            end = len(data)
        i = start
        while i < end and not self.ready:
            if self._discard:
                take = min(self._discard, end - i)
                self._discard -= take
                i += take
                continue
            self.buf[self.n] = data[i]
            self.n += 1
            i += 1
            if self.n >= self._need:
                self._advance()
        return i - start

    def _advance(self):
        b = self.buf
        while self.n >= self._need and not self.ready:
            st = self._st
            if st == _ST_EHD:
                if b[0] != EHD1 or b[1] != EHD2:
                    # drop one byte and look again
                    self.skipped += 1
                    b[0] = b[1]
                    self.n = 1 if b[0] == EHD1 else 0
                    if self.n == 0:
                        self.skipped += 1
                    continue
                self._st = _ST_HEADER
                self._need = HEADER
            elif st == _ST_HEADER:
                esv = b[10]
                if esv not in ESVS:
                    self.skipped += HEADER
                    self.clear()
                    continue
                self._blocks = 2 if two_blocks(esv) else 1
                self._left = b[11]
                self._pos = HEADER
                self._next()
            elif st == _ST_OPC2:
                self._left = b[self._pos]
                self._pos += 1
                self._next()
            elif st == _ST_PROP:
                self._pos += 2 + b[self._pos + 1]
                self._left -= 1
                self._st = _ST_EDT
                self._set_need(self._pos)
            elif st == _ST_EDT:
                self._next()
            else:
                self.ready = True

    def _next(self):
        if self._left > 0:
            self._st = _ST_PROP
            self._set_need(self._pos + 2)
            return
        self._blocks -= 1
        if self._blocks > 0:
            self._st = _ST_OPC2
            self._set_need(self._pos + 1)
        else:
            self._st = _ST_DONE
            self._set_need(self._pos)

    def _set_need(self, need):
        if need <= len(self.buf):
            self._need = need
            return
        # cannot hold this frame: swallow what is known of the rest of it
        self.oversize += 1
        self._discard = need - self.n
        self.clear()


def encode_map(epcs, buf, off):
    """Property map of the EPC codes in `epcs` (each 0x80..0xFF) into buf[off:];
    returns its length: count + list (< 16) or count + 16-byte bitmap (>= 16)."""
    n = len(epcs)
    buf[off] = n
    if n < 16:
        for i in range(n):
            buf[off + 1 + i] = epcs[i]
        return 1 + n
    for i in range(16):
        buf[off + 1 + i] = 0
    for e in epcs:
        buf[off + 1 + (e & 0x0F)] |= 1 << ((e >> 4) - 8)
    return 17


def decode_map(edt):
    """EPC codes of a property map, sorted (allocates; for clients and tests)."""
    if not edt:
        return None
    n = edt[0]
    if n < 16:
        if len(edt) != 1 + n:
            return None
        return sorted(edt[1:1 + n])
    if len(edt) != 17:
        return None
    out = []
    for i in range(16):
        for j in range(8):
            if edt[1 + i] & (1 << j):
                out.append(0x80 + 0x10 * j + i)
    out.sort()
    return out if len(out) == n else None
