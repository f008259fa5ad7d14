# Line assembly for the bench console: bytes in, one complete line at a time out (sans-IO).
#
# A line is printable ASCII (0x20..0x7E and TAB) ended by LF; CR is ignored (terminals send
# CR LF), BS/DEL remove the last character (a person typing in picocom). The line lives in a
# preallocated buffer of `limit` bytes: a longer line, or one carrying any other byte (binary
# garbage, a stray Ctrl-C), is not truncated and not executed: it is discarded up to its LF
# and reported as one error (TOO_LONG or BINARY), then assembly starts afresh. feed() moves
# no more than one line per call and allocates nothing.

from micropython import const

LINE_MAX = const(224)  # bytes per line: the longest, provision with a 64-byte key, is 216
# feed() results
NEED_MORE = const(-1)  # every byte was consumed, no line ended
# line status (after feed() returned an index)
OK = const(0)
TOO_LONG = const(1)
BINARY = const(2)

_LF = const(0x0A)
_CR = const(0x0D)
_TAB = const(0x09)
_BS = const(0x08)
_DEL = const(0x7F)


class LineReader:
    def __init__(self, limit=LINE_MAX):
        self.buf = bytearray(limit)
        self.limit = limit
        self.n = 0  # bytes of the line so far
        self.status = OK  # of the line being assembled
        self.lines = 0  # lines completed (good or not)

    def feed(self, data, start, end):
        """Consume data[start:end] up to and including the first LF. Returns the index just
        after that LF (the line is then in buf[:n], its status in `status`; call reset()
        before the next feed), or NEED_MORE when every byte was consumed."""
        buf = self.buf
        i = start
        while i < end:
            b = data[i]
            i += 1
            if b == _LF:
                self.lines += 1
                return i
            if b == _CR:
                continue
            if self.status != OK:
                continue  # discarding the rest of a bad line
            if b == _BS or b == _DEL:
                if self.n > 0:
                    self.n -= 1
                continue
            if b < 0x20 and b != _TAB or b > 0x7E:
                self.status = BINARY
                continue
            if self.n >= self.limit:
                self.status = TOO_LONG
                continue
            buf[self.n] = b
            self.n += 1
        return NEED_MORE

    def reset(self):
        self.n = 0
        self.status = OK
