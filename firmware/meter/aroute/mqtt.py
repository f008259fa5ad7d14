# A sans-IO MQTT 3.1.1 client, QoS 0 and 1: bytes in, callbacks and bytes out, no I/O.
#
# The owner (meter.aroute.session.Session) moves bytes: outgoing()/written(n) towards the
# broker, received(data, now_ms) from it, poll(now_ms) for keep-alive and timeouts. Time is
# the monotonic ms clock (meter.ticks: wrap-safe, small ints). Nothing here blocks.
#
# Memory: one tx buffer (linear, compacted when a packet would not fit at its end) and one
# rx buffer, both allocated in __init__. publish() copies topic and payload into tx, so the
# caller's objects are free once it returns. The client keeps no copy of a QoS 1 message
# once it has been written: after lost() the owner resends from its own durable outbox with
# a new message id (ids are the client's: 1..65535 wrapping, never 0, never one in flight).
# Steady state (idle polls, PINGREQ/PINGRESP, PUBACKs arriving) allocates nothing: the
# views outgoing() returns are cached or preallocated, small copies are byte loops, and the
# callbacks' defaults take fixed arguments. Receiving a message allocates its two views.
#
# Incoming packets (strict): a PUBLISH whose remaining length exceeds rx_size is read
# through without being kept (its first rx_size bytes give the topic and packet id): it is
# counted (.oversize, .errors[E_OVERSIZE]), never handed to on_message, and PUBACKed when
# QoS 1, so a persistent session's broker does not redeliver it at every reconnect (which
# would lock the meter out); memory never grows. Any other packet type that long is
# refused (E_LENGTH). Every malformed packet or protocol violation returns its own E_ code from
# received(), counts it (.malformed, .errors[code]) and leaves the client DOWN: the owner
# drops the session. QoS 2 is never used; a QoS 2 PUBLISH (or PUBREC/PUBREL/PUBCOMP) is
# refused with E_QOS2. received() raises only what a callback raises.
#
# States: DOWN -start()-> HANDSHAKE (CONNECT queued) -CONNACK rc 0-> UP; any error, a
# refused CONNACK, a timeout, disconnect() or lost() -> DOWN.
#
# Keep-alive: a PINGREQ when nothing was sent or nothing received for keepalive_s (so a
# half-open link is found even while the meter publishes), and DOWN with E_PING_TIMEOUT
# when its PINGRESP is not back within timeout_ms; E_CONNACK_TIMEOUT likewise after start().

from micropython import const

from meter.errors import SettingError
from meter.ticks import elapsed_ms

DOWN = const(0)
HANDSHAKE = const(1)
UP = const(2)

# Why a session must be dropped (returned by received() and poll())
E_REMLEN = "E_REMLEN"  # remaining length longer than 4 bytes
E_OVERSIZE = "E_OVERSIZE"  # PUBLISH larger than rx_size (skipped, acknowledged, counted; or,
#                              with a topic longer than rx_size, the session is dropped)
E_TYPE = "E_TYPE"  # reserved packet type, or one a server never sends
E_FLAGS = "E_FLAGS"  # fixed-header flags, CONNACK flags or DUP on QoS 0 not as the spec says
E_LENGTH = "E_LENGTH"  # remaining length wrong for the packet type
E_QOS3 = "E_QOS3"  # PUBLISH with QoS 3 (invalid)
E_QOS2 = "E_QOS2"  # PUBLISH with QoS 2, PUBREC, PUBREL or PUBCOMP: this client has no QoS 2
E_TOPIC = "E_TOPIC"  # PUBLISH topic empty, past the packet's end, or with a wildcard or NUL
E_MID = "E_MID"  # packet identifier 0
E_SUBACK = "E_SUBACK"  # SUBACK return code other than 0, 1, 2 or 0x80
E_UNEXPECTED = "E_UNEXPECTED"  # a packet not valid now (before or a second CONNACK, UNSUBACK)
E_REFUSED = "E_REFUSED"  # CONNACK with a return code other than 0 (on_connack has it)
E_TXFULL = "E_TXFULL"  # no room in tx to acknowledge an incoming QoS 1 message
E_STATE = "E_STATE"  # bytes received while DOWN
E_CONNACK_TIMEOUT = "E_CONNACK_TIMEOUT"
E_PING_TIMEOUT = "E_PING_TIMEOUT"
ERRORS = (E_REMLEN, E_OVERSIZE, E_TYPE, E_FLAGS, E_LENGTH, E_QOS3, E_QOS2, E_TOPIC, E_MID,
          E_SUBACK, E_UNEXPECTED, E_REFUSED, E_TXFULL, E_STATE, E_CONNACK_TIMEOUT,
          E_PING_TIMEOUT)
_NOT_MALFORMED = (E_REFUSED, E_TXFULL, E_STATE, E_CONNACK_TIMEOUT, E_PING_TIMEOUT)

# CONNACK return codes (3.2.2.3)
RC_ACCEPTED = const(0)
RC_PROTOCOL = const(1)
RC_CLIENT_ID = const(2)
RC_UNAVAILABLE = const(3)
RC_CREDENTIALS = const(4)
RC_NOT_AUTHORIZED = const(5)

MAX_REMLEN = const(268_435_455)  # 4 bytes of 7 bits
_CONNECT = const(0x10)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_PINGREQ = const(0xC0)
_DISCONNECT = const(0xE0)
_RESERVE = const(8)  # tx kept free by publish/subscribe: a PUBACK, a PINGREQ, a DISCONNECT
_SUBS = const(4)  # SUBSCRIBEs awaiting their SUBACK
_COPY_LOOP = const(16)  # bodies up to this many bytes are copied byte by byte (no view)
_H_TYPE = const(0)  # rx parser: waiting for a fixed header's first byte
_H_LEN = const(1)  # reading the remaining length
_H_BODY = const(2)  # reading the body into rx


def remlen_size(n):
    """Bytes the remaining length n takes (1..4)."""
    if n < 128:
        return 1
    if n < 16_384:
        return 2
    if n < 2_097_152:
        return 3
    return 4


def encode_remlen(buf, pos, n):
    """Write the remaining length n at buf[pos]; returns the position after it."""
    if n < 0 or n > MAX_REMLEN:
        raise SettingError("E_REMLEN")
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            buf[pos] = b | 0x80
            pos += 1
        else:
            buf[pos] = b
            return pos + 1


def publish_size(topic_len, payload_len, qos):
    """Bytes a PUBLISH takes in tx (what room() must offer for it)."""
    rl = 2 + topic_len + (2 if qos else 0) + payload_len
    return 1 + remlen_size(rl) + rl


def _bytes(v):
    return v.encode() if isinstance(v, str) else bytes(v)


def _put_str(buf, pos, s):
    n = len(s)
    buf[pos] = n >> 8
    buf[pos + 1] = n & 0xFF
    buf[pos + 2:pos + 2 + n] = s
    return pos + 2 + n


def _check_topic_name(t):
    if not 0 < len(t) <= 65_535:
        raise SettingError("E_TOPIC")
    for c in t:
        if c == 0x23 or c == 0x2B or c == 0:
            raise SettingError("E_TOPIC")


def _nop1(a):
    pass


def _nop2(a, b):
    pass


def _nop4(a, b, c, d):
    pass


class Client:
    def __init__(self, client_id, keepalive_s=60, clean=False, will=None, username=None,
                 password=None, tx_size=2048, rx_size=1024, window=8, timeout_ms=10_000):
        if not 0 <= keepalive_s <= 65_535:
            raise SettingError("E_KEEPALIVE")
        if not 1 <= window <= 64:
            raise SettingError("E_WINDOW")
        if rx_size < 4 or tx_size < 64:
            raise SettingError("E_BUFFER")
        if not 0 < timeout_ms < 0x2000_0000:
            raise SettingError("E_TIMEOUT")
        self.client_id = _bytes(client_id)
        if not self.client_id and not clean:
            raise SettingError("E_CLIENT_ID")  # 3.1.3-7: an empty id needs a clean session
        self.keepalive_ms = keepalive_s * 1000
        self.timeout_ms = timeout_ms
        self.window = window
        self._connect = self._build_connect(keepalive_s, clean, will, username, password)
        if len(self._connect) > tx_size:
            raise SettingError("E_TOO_LARGE")
        self._tx = bytearray(tx_size)
        self._txmv = memoryview(self._tx)
        self._empty = self._txmv[0:0]
        self._v2 = self._txmv[0:2]  # a PINGREQ or DISCONNECT alone in tx
        self._v4 = self._txmv[0:4]  # a PUBACK alone
        self._view = self._empty
        self._vs = self._ve = 0
        self._ts = self._te = 0  # pending tx bytes are [_ts, _te)
        self._rx = bytearray(rx_size)
        self._rxmv = memoryview(self._rx)
        self._hs = _H_TYPE
        self._ptype = self._rl = self._shift = self._have = 0
        self._fly = [0] * window  # message ids of QoS 1 publishes awaiting PUBACK
        self._subs = [0] * _SUBS
        self._mid = 0
        self.inflight = 0
        self.state = DOWN
        self.session_present = False
        self.retain = 0  # retain flag of the message on_message is handling
        self.last_remlen = 0  # remaining length of the latest fixed header read
        self._ping_out = False
        self._t_start = self._ping_at = self._last_tx = self._last_rx = 0
        self._seen_sent = 0
        self.sent_packets = 0
        self.recv_packets = 0
        self.pings = 0
        self.malformed = 0
        self.oversize = 0  # PUBLISHes longer than rx_size, skipped (and acknowledged)
        self._skip = False  # the PUBLISH being read is one of them
        self.stray = 0  # PUBACK/SUBACK for an id not awaited, PINGRESP without a PINGREQ
        self.errors = {}
        for e in ERRORS:
            self.errors[e] = 0
        self.last_error = None
        self.on_connack = _nop2
        self.on_puback = _nop1
        self.on_message = _nop4
        self.on_suback = _nop2

    def _build_connect(self, keepalive_s, clean, will, username, password):
        flags = 0x02 if clean else 0
        parts = [self.client_id]
        if will is not None:
            wt, wp, wq = _bytes(will[0]), _bytes(will[1]), will[2]
            _check_topic_name(wt)
            if wq != 0 and wq != 1:
                raise SettingError("E_QOS")
            flags |= 0x04 | (wq << 3) | (0x20 if len(will) > 3 and will[3] else 0)
            parts.append(wt)
            parts.append(wp)
        if username is not None:
            flags |= 0x80
            parts.append(_bytes(username))
        if password is not None:
            if username is None:
                raise SettingError("E_PASSWORD")  # 3.1.2-22: no password without a user
            flags |= 0x40
            parts.append(_bytes(password))
        rl = 10
        for s in parts:
            if len(s) > 65_535:
                raise SettingError("E_TOO_LARGE")
            rl += 2 + len(s)
        buf = bytearray(1 + remlen_size(rl) + rl)
        buf[0] = _CONNECT
        p = encode_remlen(buf, 1, rl)
        buf[p:p + 7] = b"\x00\x04MQTT\x04"
        buf[p + 7] = flags
        buf[p + 8] = keepalive_s >> 8
        buf[p + 9] = keepalive_s & 0xFF
        p += 10
        for s in parts:
            p = _put_str(buf, p, s)
        return bytes(buf)

    # -- the owner's side --------------------------------------------------------------------

    def start(self, now_ms):
        """The link just opened: queue CONNECT, wait for CONNACK."""
        self.lost()
        n = len(self._connect)
        self._txmv[0:n] = self._connect
        self._te = n
        self.state = HANDSHAKE
        self.session_present = False
        self._t_start = self._last_tx = self._last_rx = now_ms
        self.sent_packets += 1
        self._seen_sent = self.sent_packets

    def lost(self):
        """The link went away: DOWN, nothing pending, every message id in flight forgotten."""
        self.state = DOWN
        self._hs = _H_TYPE
        self._ts = self._te = 0
        for i in range(self.window):
            self._fly[i] = 0
        for i in range(_SUBS):
            self._subs[i] = 0
        self.inflight = 0
        self._ping_out = False

    def outgoing(self):
        """The bytes waiting to be written (a view into tx; length 0 when none)."""
        ts, te = self._ts, self._te
        if ts == te:
            return self._empty
        if ts == 0 and te == 2:
            return self._v2
        if ts == 0 and te == 4:
            return self._v4
        if ts != self._vs or te != self._ve:
            self._view = self._txmv[ts:te]
            self._vs, self._ve = ts, te
        return self._view

    def written(self, n):
        """n bytes of outgoing() went out."""
        ts = self._ts + n
        if ts >= self._te:
            self._ts = self._te = 0
        else:
            self._ts = ts

    def room(self):
        """Bytes free in tx for publish/subscribe (publish_size() says what one needs)."""
        r = len(self._tx) - (self._te - self._ts) - _RESERVE
        return r if r > 0 else 0

    def waiting(self):
        """True while a PINGREQ awaits its PINGRESP (a shell on a virtual clock gives the
        broker real time then)."""
        return self._ping_out

    def can_take(self, nbytes):
        """True when tx has room for every PUBACK nbytes more of input could need (the
        smallest QoS 1 PUBLISH is 7 bytes): the owner reads no more than that, so a flood of
        messages waits in the socket instead of overrunning tx."""
        free = len(self._tx) - (self._te - self._ts)
        return free >= 4 * (nbytes // 7 + 1)

    def poll(self, now_ms):
        """Keep-alive and timeouts: 0, or the E_ code the session is dropped with."""
        st = self.state
        if st == HANDSHAKE:
            if elapsed_ms(now_ms, self._t_start) >= self.timeout_ms:
                return self._fail(E_CONNACK_TIMEOUT)
        elif st == UP:
            if self.sent_packets != self._seen_sent:
                self._seen_sent = self.sent_packets
                self._last_tx = now_ms
            if self._ping_out:
                if elapsed_ms(now_ms, self._ping_at) >= self.timeout_ms:
                    return self._fail(E_PING_TIMEOUT)
            elif self.keepalive_ms and (
                    elapsed_ms(now_ms, self._last_tx) >= self.keepalive_ms
                    or elapsed_ms(now_ms, self._last_rx) >= self.keepalive_ms):
                p = self._reserve(2)
                if p >= 0:
                    self._tx[p] = _PINGREQ
                    self._tx[p + 1] = 0
                    self._te = p + 2
                    self._ping_out = True
                    self._ping_at = self._last_tx = now_ms
                    self.pings += 1
                    self.sent_packets += 1
                    self._seen_sent = self.sent_packets
        return 0

    def publish(self, topic, payload, qos=1, retain=False):
        """Queue a PUBLISH (topic, payload: bytes-like, copied). Returns the message id (QoS 1),
        0 (QoS 0 queued) or -1 when it cannot be taken now (not UP, tx or window full)."""
        if qos != 0 and qos != 1:
            raise SettingError("E_QOS")
        _check_topic_name(topic)
        tl = len(topic)
        pl = len(payload)
        rl = 2 + tl + (2 if qos else 0) + pl
        size = 1 + remlen_size(rl) + rl
        if size + _RESERVE > len(self._tx):
            raise SettingError("E_TOO_LARGE")  # can never fit this tx buffer
        if self.state != UP or (qos and self.inflight >= self.window):
            return -1
        p = self._reserve(size + _RESERVE)
        if p < 0:
            return -1
        tx = self._tx
        tx[p] = _PUBLISH | (qos << 1) | (1 if retain else 0)
        p = encode_remlen(tx, p + 1, rl)
        p = _put_str(self._txmv, p, topic)
        mid = 0
        if qos:
            mid = self._take_mid(self._fly)
            self.inflight += 1
            tx[p] = mid >> 8
            tx[p + 1] = mid & 0xFF
            p += 2
        self._txmv[p:p + pl] = payload
        self._te = p + pl
        self.sent_packets += 1
        return mid

    def subscribe(self, topic, qos=1):
        """Queue a SUBSCRIBE of one topic filter; returns its message id or -1 (not now)."""
        if qos != 0 and qos != 1:
            raise SettingError("E_QOS")
        tl = len(topic)
        if not 0 < tl <= 65_535:
            raise SettingError("E_TOPIC")
        rl = 2 + 2 + tl + 1
        size = 1 + remlen_size(rl) + rl
        if size + _RESERVE > len(self._tx):
            raise SettingError("E_TOO_LARGE")
        if self.state != UP or 0 not in self._subs:
            return -1
        p = self._reserve(size + _RESERVE)
        if p < 0:
            return -1
        tx = self._tx
        tx[p] = _SUBSCRIBE
        p = encode_remlen(tx, p + 1, rl)
        mid = self._take_mid(self._subs)
        tx[p] = mid >> 8
        tx[p + 1] = mid & 0xFF
        p = _put_str(self._txmv, p + 2, topic)
        tx[p] = qos
        self._te = p + 1
        self.sent_packets += 1
        return mid

    def disconnect(self):
        """Queue DISCONNECT (the broker then discards the Will) and go DOWN; the owner writes
        outgoing() and closes the link. False when there is no session to end."""
        if self.state == DOWN:
            return False
        self.state = DOWN
        p = self._reserve(2)
        if p < 0:
            return False
        self._tx[p] = _DISCONNECT
        self._tx[p + 1] = 0
        self._te = p + 2
        self.sent_packets += 1
        return True

    def received(self, data, now_ms, n=-1):
        """Bytes from the link (data[:n], all of data when n < 0). Complete packets are
        handled at once. Returns 0, or the E_ code the session must be dropped with."""
        if n < 0:
            n = len(data)
        if self.state == DOWN:
            return self._fail(E_STATE) if n else 0
        i = 0
        while i < n:
            hs = self._hs
            if hs == _H_TYPE:
                b = data[i]
                i += 1
                e = _check_type(b)
                if e:
                    return self._fail(e)
                self._ptype = b
                self._rl = self._shift = 0
                self._hs = _H_LEN
            elif hs == _H_LEN:
                b = data[i]
                i += 1
                self._rl |= (b & 0x7F) << self._shift
                if b & 0x80:
                    self._shift += 7
                    if self._shift == 28:
                        return self._fail(E_REMLEN)
                    continue
                rl = self._rl
                self.last_remlen = rl
                e = self._check_length(rl)
                if e:
                    return self._fail(e)
                self._have = 0
                if rl:
                    self._hs = _H_BODY
                else:
                    self._hs = _H_TYPE
                    e = self._dispatch(now_ms)
                    if e:
                        return self._fail(e)
                    if self.state == DOWN:  # a callback ended the session
                        return 0
            else:
                h = self._have
                k = self._rl - h
                if k > n - i:
                    k = n - i
                if self._skip:  # keep the head (topic, packet id), drop the rest
                    keep = len(self._rx) - h
                    if keep > k:
                        keep = k
                    rx = self._rx
                    for j in range(keep if keep > 0 else 0):
                        rx[h + j] = data[i + j]
                    i += k
                    self._have = h + k
                    if self._have == self._rl:
                        self._hs = _H_TYPE
                        self._skip = False
                        e = self._oversize_in(now_ms)
                        if e:
                            return self._fail(e)
                    continue
                if k <= _COPY_LOOP:
                    rx = self._rx
                    for j in range(k):
                        rx[h + j] = data[i + j]
                else:
                    self._rxmv[h:h + k] = data[i:i + k]
                i += k
                self._have = h + k
                if self._have == self._rl:
                    self._hs = _H_TYPE
                    e = self._dispatch(now_ms)
                    if e:
                        return self._fail(e)
                    if self.state == DOWN:
                        return 0
        return 0

    # -- internals ---------------------------------------------------------------------------

    def _fail(self, e):
        self.errors[e] += 1
        if e not in _NOT_MALFORMED:
            self.malformed += 1
        self.last_error = e
        self.lost()
        return e

    def _reserve(self, need):
        """Position in tx for a packet when `need` bytes are free (compacting if the free
        space is split), else -1. The packet's own length is at most need."""
        ts, te = self._ts, self._te
        size = len(self._tx)
        if te - ts + need > size:
            return -1
        if te + need > size:  # room only once the pending bytes move to the front
            r = te - ts
            self._txmv[0:r] = self._txmv[ts:te]
            self._ts, self._te = 0, r
            self._vs = self._ve = -1
            return r
        return te

    def _take_mid(self, table):
        m = self._mid
        while True:
            m = m + 1 if m < 65_535 else 1
            if m not in self._fly and m not in self._subs:
                break
        self._mid = m
        table[table.index(0)] = m
        return m

    def _check_length(self, rl):
        t = self._ptype >> 4
        if t == 3:
            self._skip = rl > len(self._rx)
            return 0 if rl >= (5 if self._ptype & 0x06 else 3) else E_LENGTH
        if t == 2 or t == 4:
            return 0 if rl == 2 else E_LENGTH
        if t == 9:
            return 0 if rl == 3 else E_LENGTH  # one SUBACK return code: one filter per SUBSCRIBE
        return 0 if rl == 0 else E_LENGTH  # PINGRESP

    def _dispatch(self, now_ms):
        self.recv_packets += 1
        self._last_rx = now_ms
        t = self._ptype >> 4
        rx = self._rx
        if t == 2:
            return self._connack(rx[0], rx[1])
        if self.state != UP:
            return E_UNEXPECTED
        if t == 4:
            mid = (rx[0] << 8) | rx[1]
            if mid == 0:
                return E_MID
            if not _clear(self._fly, mid):
                self.stray += 1
                return 0
            self.inflight -= 1
            self.on_puback(mid)
            return 0
        if t == 13:
            if self._ping_out:
                self._ping_out = False
            else:
                self.stray += 1
            return 0
        if t == 9:
            mid = (rx[0] << 8) | rx[1]
            g = rx[2]
            if mid == 0:
                return E_MID
            if g > 2 and g != 0x80:
                return E_SUBACK
            if not _clear(self._subs, mid):
                self.stray += 1
                return 0
            self.on_suback(mid, g)
            return 0
        return self._publish_in(now_ms)

    def _connack(self, ack, rc):
        if self.state != HANDSHAKE:
            return E_UNEXPECTED
        if ack & 0xFE or (rc and ack):
            return E_FLAGS  # 3.2.2.1 reserved bits; 3.2.2-4 no session with a refusal
        self.session_present = bool(ack)
        if rc == RC_ACCEPTED:
            self.state = UP
        self.on_connack(self.session_present, rc)
        return E_REFUSED if rc else 0

    def _oversize_in(self, now_ms):
        """The end of a PUBLISH longer than rx_size: counted, not delivered, acknowledged
        when QoS 1 (E_OVERSIZE only when its topic and packet id did not fit in rx)."""
        self.recv_packets += 1
        self._last_rx = now_ms
        self.oversize += 1
        self.errors[E_OVERSIZE] += 1
        if self.state != UP:
            return E_UNEXPECTED
        qos = (self._ptype >> 1) & 3
        if not qos:
            return 0
        rx = self._rx
        end = 2 + ((rx[0] << 8) | rx[1])
        if end + 2 > len(rx):
            return E_OVERSIZE
        mid = (rx[end] << 8) | rx[end + 1]
        if mid == 0:
            return E_MID
        return self._puback(mid)

    def _puback(self, mid):
        p = self._reserve(4)
        if p < 0:
            return E_TXFULL
        tx = self._tx
        tx[p] = _PUBACK
        tx[p + 1] = 2
        tx[p + 2] = mid >> 8
        tx[p + 3] = mid & 0xFF
        self._te = p + 4
        self.sent_packets += 1
        return 0

    def _publish_in(self, now_ms):
        rx = self._rx
        rl = self._rl
        f = self._ptype & 0x0F
        qos = (f >> 1) & 3
        tl = (rx[0] << 8) | rx[1]
        end = 2 + tl
        if tl == 0 or end + (2 if qos else 0) > rl:
            return E_TOPIC
        for j in range(2, end):
            c = rx[j]
            if c == 0x23 or c == 0x2B or c == 0:
                return E_TOPIC
        mid = 0
        if qos:
            mid = (rx[end] << 8) | rx[end + 1]
            if mid == 0:
                return E_MID
            if self._reserve(4) < 0:
                return E_TXFULL
            pos = end + 2
        else:
            pos = end
        self.retain = f & 1
        mv = self._rxmv
        self.on_message(mv[2:end], mv[pos:rl], qos, (f >> 3) & 1)
        if qos and self.state == UP:  # the callback may have ended the session
            return self._puback(mid)
        return 0


def _check_type(b):
    """E_ code for a fixed header's first byte a client must not accept, else 0."""
    t = b >> 4
    f = b & 0x0F
    if t == 3:
        q = (f >> 1) & 3
        if q == 3:
            return E_QOS3
        if q == 2:
            return E_QOS2
        if q == 0 and f & 0x08:
            return E_FLAGS  # 3.3.1-2: DUP must be 0 on QoS 0
        return 0
    if t == 2 or t == 4 or t == 9 or t == 13:
        return E_FLAGS if f else 0
    if 5 <= t <= 7:
        return E_QOS2
    if t == 11:
        return E_UNEXPECTED  # UNSUBACK: this client never unsubscribes
    return E_TYPE


def _clear(table, mid):
    for i in range(len(table)):
        if table[i] == mid:
            table[i] = 0
            return True
    return False
