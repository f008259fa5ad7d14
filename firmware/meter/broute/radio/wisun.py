# Wi-SUN B-route module on a UART, driven through SKSTACK IP as the PAN coordinator (the
# meter side of the B-route): identify the module, start the PAN with the B-route ID and
# password, then carry ECHONET Lite frames to and from the HEMS that joined.
#
# Phases, one command in flight at a time (each waits for OK; FAIL or no answer within
# timeout_ms starts the phase again from SKRESET):
#   identify: SKRESET, SKINFO (module MAC = id), SKVER (firmware), ROPT [, WOPT 01]
#   start:    SKSREG S2 <channel>, SKSREG S3 <PAN ID>, SKSETRBID, SKSETPWD, SKSTART
# then LISTEN until EVENT 25 (a HEMS completed PANA: link UP, its address is the peer)
# and back to LISTEN on EVENT 26/27/28/29 (session ended or expired).
# Received UDP on port 0E1A goes into a two-slot queue; one reply at a time is sent with
# SKSENDTO (binary payload) and completes on OK.

from micropython import const

from meter.broute.radio import auth
from meter.errors import EAGAIN, EMSGSIZE, ENOTCONN
from meter.broute.radio import skstack as sk
from meter.broute.radio.module import RadioModule

_PORT = const(0x0E1A)
_FRAME = const(513)
_QUEUE = const(2)

S_IDENTIFY = const(0)
S_IDLE = const(1)  # identified, not opened
S_START = const(2)
S_LISTEN = const(3)
S_UP = const(4)
STATE_NAMES = ("identify", "idle", "start", "listen", "up")

_EV_TX_DONE = const(0x21)
_EV_JOINED = const(0x25)
_EV_ENDED = (0x26, 0x27, 0x28, 0x29)


class WisunModule(RadioModule):
    kind = "wisun"
    group = None  # B-route over Wi-SUN is unicast to the joined HEMS
    mtu = _FRAME  # bytes: one transmit queue slot (sendto refuses more with EMSGSIZE)

    def __init__(self, uart, rbid, password, channel=0x21, pan_id=0x8888, key=None,
                 present=None, timeout_ms=5000):
        self.uart = uart
        self.key = key
        self._present = present  # board's module-detect input (callable) or None
        self.timeout_ms = timeout_ms
        self.parser = sk.SkParser()
        self._chunk = bytearray(128)
        self._identify = (sk.command("SKRESET"), sk.command("SKINFO"), sk.command("SKVER"),
                          sk.command("ROPT"))
        self._start = (sk.command("SKSREG", "S2", "%X" % channel),
                       sk.command("SKSREG", "S3", "%04X" % pan_id),
                       sk.command("SKSETRBID", rbid),
                       sk.command("SKSETPWD", "%X" % len(password), password),
                       sk.command("SKSTART"))
        self._wopt = sk.command("WOPT", "01")
        self.state = S_IDENTIFY
        self._steps = self._identify
        self._step = 0
        self._waiting = False
        self._sent_ms = 0
        self._in_tx = False
        self._reopen = False  # a restart interrupted an opened module: start again after
        self.mac = None
        self.firmware = None
        self.peer = None  # address (bytes) of the HEMS with a PANA session
        self._q = [bytearray(_FRAME) for _ in range(_QUEUE)]
        self._qlen = [0] * _QUEUE
        self._qhead = 0
        self._qn = 0
        # outgoing frames: a two-slot queue, the head slot goes out first
        self._tq = [bytearray(_FRAME) for _ in range(_QUEUE)]
        self._tqmv = [memoryview(b) for b in self._tq]
        self._tqlen = [0] * _QUEUE
        self._thead = 0
        self._txlen = 0  # frames queued (0 = idle)
        # SKSENDTO header for the session's peer, built once when the HEMS joins; only
        # the 4 hex digits of the length change per frame
        self._head = bytearray(96)
        self._head_view = None
        self._len_at = 0
        self.timeouts = 0
        self.fails = 0
        self.rx_dropped = 0
        self.tx_failed = 0

    # --- RadioModule ----------------------------------------------------------------

    def identity(self):
        if self.state == S_IDENTIFY or self.mac is None or self.firmware is None:
            return None  # still identifying
        return (self.kind, self.mac, self.firmware)

    def open(self):
        if self.state == S_IDLE:
            self._begin(S_START, self._start)
        elif self.state == S_IDENTIFY:
            self._reopen = True  # start the PAN as soon as the module is identified

    def close(self):
        self._reopen = False
        self._head_view = None
        self.state = S_IDLE if self.mac is not None else S_IDENTIFY
        self.peer = None
        self._qn = 0
        self._txlen = 0

    def notify_addr(self):
        return self.peer

    def reset(self):
        """Identify the module again from SKRESET (a module was fitted in the slot)."""
        self.mac = None
        self.firmware = None
        self._reopen = False
        self._head_view = None
        self._restart()
        self._reopen = False

    def present(self):
        return True if self._present is None else bool(self._present())

    def link_up(self):
        return self.state == S_UP

    def respond(self, challenge):
        ident = self.identity()
        if self.key is None or ident is None:
            return None
        return auth.response(self.key, challenge, ident[0], ident[1], ident[2])

    def recvfrom_into(self, buf):
        if self._qn == 0:
            return 0, None
        i = self._qhead
        n = self._qlen[i]
        src = self._q[i]
        for k in range(min(n, len(buf))):
            buf[k] = src[k]
        self._qhead = (i + 1) % _QUEUE
        self._qn -= 1
        return n, self.peer

    def sendto(self, buf, addr):
        if self.state != S_UP:
            raise OSError(ENOTCONN)  # no session
        if self._txlen >= _QUEUE:
            raise OSError(EAGAIN)  # both slots still going out
        n = len(buf)
        if n > _FRAME:
            raise OSError(EMSGSIZE)
        i = (self._thead + self._txlen) % _QUEUE
        self._tq[i][:n] = buf
        self._tqlen[i] = n
        self._txlen += 1
        return n

    # --- driver ---------------------------------------------------------------------

    def poll(self, now_ms):
        u = self.uart
        while u.any():
            n = u.readinto(self._chunk)
            if not n:
                break
            pos = 0
            while pos < n:
                pos += self.parser.feed(self._chunk, pos, n)
                if self.parser.kind != sk.NONE:
                    self._line(now_ms)
        if self._waiting:
            if ((now_ms - self._sent_ms) & 0x3FFFFFFF) > self.timeout_ms:
                self.timeouts += 1
                self._restart()
            else:
                return
        if self.state == S_IDENTIFY or self.state == S_START:
            if self._step < len(self._steps):
                self._write(self._steps[self._step], now_ms)
        elif self.state == S_UP and self._txlen and self._head_view is not None:
            n = self._tqlen[self._thead]
            h = self._head
            at = self._len_at
            for k in range(4):
                d = (n >> (12 - 4 * k)) & 0xF
                h[at + k] = d + 48 if d < 10 else d + 55
            u.write(self._head_view)
            u.write(self._tqmv[self._thead][:n])
            self._in_tx = True
            self._waiting = True
            self._sent_ms = now_ms

    def _tx_done(self):
        if self._txlen:
            self._thead = (self._thead + 1) % _QUEUE
            self._txlen -= 1

    def _write(self, cmd, now_ms):
        self.uart.write(cmd)
        self._waiting = True
        self._sent_ms = now_ms

    def _begin(self, state, steps):
        self.state = state
        self._steps = steps
        self._step = 0
        self._waiting = False

    def _restart(self):
        self.peer = None
        self._qn = 0
        self._txlen = 0
        self._in_tx = False
        opened = self.state >= S_START
        self._begin(S_IDENTIFY, self._identify)
        self._reopen = self._reopen or opened

    def _line(self, now_ms):
        p = self.parser
        kind = p.kind
        if kind == sk.OK:
            if not self._waiting:
                return
            self._waiting = False
            if self._in_tx:
                self._in_tx = False
                self._tx_done()
                return
            if self._steps is self._identify and self._step == 3 and p.fields > 1:
                if p.hex_field(1) == 0:  # ROPT says binary payloads: switch to hex ASCII
                    self._steps = self._identify[:3] + (self._identify[3], self._wopt)
            self._step += 1
            if self._step >= len(self._steps):
                if self.state == S_IDENTIFY:
                    self.state = S_IDLE
                    if self._reopen:
                        self._reopen = False
                        self._begin(S_START, self._start)
                elif self.state == S_START:
                    self.state = S_LISTEN
        elif kind == sk.FAIL:
            if not self._waiting:
                return
            self.fails += 1
            if self._in_tx:
                self._waiting = False
                self._in_tx = False
                self._tx_done()
                self.tx_failed += 1
                return
            self._restart()
        elif kind == sk.EINFO:
            if p.fields > 2:
                self.mac = p.field(2).decode()
        elif kind == sk.EVER:
            if p.fields > 1:
                self.firmware = p.field(1).decode()
        elif kind == sk.EVENT:
            ev = p.event
            if ev == _EV_JOINED and self.state >= S_LISTEN:
                self.peer = p.field(2)
                head = sk.sendto_header(self.peer, 0)
                n = len(head)
                if n <= len(self._head):
                    self._head[:n] = head
                    self._len_at = n - 5
                    self._head_view = memoryview(self._head)[:n]
                    self.state = S_UP
            elif ev in _EV_ENDED and self.state == S_UP:
                self.state = S_LISTEN
                self.peer = None
                self._qn = 0
            elif ev == _EV_TX_DONE and p.param > 0:
                self.tx_failed += 1
        elif kind == sk.ERXUDP:
            if self.state != S_UP or p.dport != _PORT:
                self.rx_dropped += 1
                return
            if self._qn >= _QUEUE:
                self.rx_dropped += 1
                return
            i = (self._qhead + self._qn) % _QUEUE
            n = p.payload_into(self._q[i])
            if n < 0:
                self.rx_dropped += 1
                return
            self._qlen[i] = n
            self._qn += 1
