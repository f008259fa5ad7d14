# A non-blocking TCP link to the MQTT broker, TLS optional: the meter.hal.Link of the boards,
# written to the subset of socket/select/ssl that CPython, the MicroPython unix port and the
# ESP32 port share (hosthal.tcplink re-exports it for the host and the unix port).
#
# The address is resolved once, in the constructor: getaddrinfo() blocks (DNS), so give an IP
# address (an IP literal resolves without a query) or build the link before the loop runs.
#
# open() creates a non-blocking socket and starts connect() (EINPROGRESS); status() asks a
# preallocated select.poll, without waiting, whether the socket became writable: POLLERR or
# POLLHUP (or SO_ERROR, where getsockopt exists: CPython; MicroPython sockets have none) is a
# failed connect -> LINK_CLOSED. With a TLS context the socket is then wrapped without a
# handshake: CPython advances it by do_handshake() on each status() while it wants to read or
# write; MicroPython's SSL socket does the handshake inside its first writes and reads, so the
# link reports LINK_OPEN at once and write() takes 0 bytes until the handshake is through
# (the session's connect timeout bounds a handshake that never finishes).
#
# readinto()/write() never wait: 0 when the socket would block, -1 (readinto) when the
# broker closed the connection, OSError when it failed. On MicroPython an idle readinto() and
# an empty status() allocate nothing.

import errno

from meter.hal import LINK_CLOSED, LINK_OPEN, LINK_OPENING, Link

_WOULD_BLOCK = tuple(getattr(errno, n) for n in ("EAGAIN", "EWOULDBLOCK", "EINPROGRESS")
                     if hasattr(errno, n))
_TLS_WANT = (2, 3)  # SSL_ERROR_WANT_READ / _WANT_WRITE (CPython ssl; MicroPython's read)
_TCP = 0
_TLS = 1


def tls_context(cadata=None, server_auth=True):
    """A client SSLContext: cadata (DER bytes) the CA the broker's certificate is checked
    against (required: a board has no CA store, and TLS without checking the broker is no
    protection from a man in the middle); server_auth=False only for a bench broker."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not server_auth:
        if hasattr(ctx, "check_hostname"):
            ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if cadata is None:
        raise ValueError("E_TLS_CA")
    ctx.load_verify_locations(cadata=cadata)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class TcpLink(Link):
    def __init__(self, host, port, tls=None, server_hostname=None):
        import select
        import socket

        self._socket = socket
        self._select = select
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        self._family = ai[0]
        self._addr = ai[-1]
        self.tls = tls  # an SSLContext (tls_context()) or None
        self.server_hostname = server_hostname
        self._poll = select.poll()
        self._ipoll = getattr(self._poll, "ipoll", None)  # MicroPython: allocation-free
        self._sock = None
        self._cpython = False
        self._phase = _TCP
        self._state = LINK_CLOSED
        self.opens = 0
        self.failed = 0  # connects or handshakes that failed
        self.last_errno = 0

    def open(self):
        self.close()
        socket = self._socket
        s = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            s.setblocking(False)
            s.connect(self._addr)
        except OSError as e:
            if _errno(e) not in _WOULD_BLOCK:
                s.close()
                self.failed += 1
                self.last_errno = _errno(e)
                raise
        self._sock = s
        self._cpython = hasattr(s, "recv_into")
        self._poll.register(s, self._select.POLLOUT)
        self._phase = _TCP
        self._state = LINK_OPENING
        self.opens += 1

    def status(self):
        if self._state != LINK_OPENING:
            return self._state
        try:
            if self._phase == _TCP:
                if not self._connected():
                    return self._state
                if self.tls is None:
                    self._state = LINK_OPEN
                    return LINK_OPEN
                self._wrap()
            if self._phase == _TLS and self._handshake():
                self._state = LINK_OPEN
        except OSError as e:
            self._fail(e)
        return self._state

    def write(self, buf):
        s = self._sock
        if s is None or self._state != LINK_OPEN:
            raise OSError(107)  # ENOTCONN
        try:
            n = s.send(buf) if self._cpython else s.write(buf)
        except OSError as e:
            if self._blocked(e):
                return 0
            raise
        return n or 0

    def readinto(self, buf):
        s = self._sock
        if s is None or self._state != LINK_OPEN:
            raise OSError(107)
        try:
            n = s.recv_into(buf) if self._cpython else s.readinto(buf)
        except OSError as e:
            if self._blocked(e):
                return 0
            raise
        if n is None:
            return 0  # MicroPython: nothing to read now
        return n if n else -1

    def close(self):
        s = self._sock
        if s is not None:
            self._sock = None
            try:
                self._poll.unregister(s)
            except (OSError, KeyError, ValueError):
                pass
            try:
                s.close()
            except OSError:
                pass
        self._state = LINK_CLOSED

    def _connected(self):
        """True once the pending connect finished (OSError when it failed)."""
        sel = self._select
        ev = 0
        if self._ipoll is not None:
            for entry in self._ipoll(0):
                ev = entry[1]
        else:
            for entry in self._poll.poll(0):
                ev = entry[1]
        if not ev:
            return False
        if ev & (sel.POLLERR | sel.POLLHUP):
            raise OSError(self._so_error() or 111)  # ECONNREFUSED unless the stack says
        err = self._so_error()
        if err:
            raise OSError(err)
        self._poll.unregister(self._sock)
        return True

    def _so_error(self):
        s = self._sock
        if hasattr(s, "getsockopt"):
            try:
                return s.getsockopt(self._socket.SOL_SOCKET, self._socket.SO_ERROR)
            except OSError:
                return 0
        return 0

    def _wrap(self):
        kw = {"do_handshake_on_connect": False}
        if self.server_hostname:
            kw["server_hostname"] = self.server_hostname
        self._sock = self.tls.wrap_socket(self._sock, **kw)
        if not self._cpython:
            self._sock.setblocking(False)
        self._phase = _TLS

    def _handshake(self):
        """One step of the TLS handshake: True when it is done."""
        if not self._cpython:
            return True  # MicroPython: the handshake runs inside the first writes/reads
        try:
            self._sock.do_handshake()
        except OSError as e:
            if _errno(e) in _TLS_WANT or _errno(e) in _WOULD_BLOCK:
                return False
            raise
        return True

    def _blocked(self, e):
        n = _errno(e)
        return n in _WOULD_BLOCK or (self.tls is not None and n in _TLS_WANT)

    def _fail(self, e):
        self.failed += 1
        self.last_errno = _errno(e)
        self.close()


def _errno(e):
    n = getattr(e, "errno", None)
    if n is None and e.args and isinstance(e.args[0], int):
        n = e.args[0]
    return n if n is not None else 0
