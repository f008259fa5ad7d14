# A non-blocking UDP endpoint on port 3610 with the ECHONET multicast group joined: the
# datagram service of the IP radio modules (Wi-Fi, Ethernet) and of the host UDP module.
# `socket` is imported when an endpoint is created, never when this file is imported.
#
# Multicast (a HEMS discovers meters by a Get to 224.0.23.0:3610, and the meter announces
# its instances there): the group is joined on the interface whose address is `iface`
# (0.0.0.0 lets the stack choose by route: on a host that is the default route, not the
# loopback, so a host simulation passes its 127.x address). Notifications leave by the
# same interface (IP_MULTICAST_IF). A socket bound to a unicast address never receives a
# datagram sent to the group, so an endpoint bound to one (the host simulation at
# 127.0.0.2) opens a second socket bound to the group that only receives; replies always
# go out of the unicast socket, so their source is the meter's own address. Bound to
# 0.0.0.0 (the boards) one socket receives both.
#
# Idle reads allocate nothing: MicroPython's sockets have no recvfrom_into, and recvfrom(n)
# allocates its n-byte buffer before it finds nothing and raises EAGAIN (~576 B per idle
# serve(), a collection about every second at one serve per 20 ms). So without
# recvfrom_into each socket is asked first through a preallocated select.poll with
# ipoll(0) (allocation-free); recvfrom runs only when a datagram is pending.

GROUP = "224.0.23.0"
PORT = 3610
_ANY = "0.0.0.0"
_EAGAIN = (11, 35)  # Linux/ESP-IDF, BSD


def _IPPROTO_IP(socket):
    return getattr(socket, "IPPROTO_IP", 0)  # 0 everywhere; the unix port does not name it


def _ip4(text):
    return bytes(int(p) for p in text.split("."))


def _socket(socket, addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def _pending(ready):
    """True when a socket is readable (or in error: recvfrom then says why). ready is its
    poller's ipoll (MicroPython: yields a tuple the poller owns, allocating nothing) or
    poll."""
    for _ in ready(0):
        return True
    return False


class UdpEndpoint:
    def __init__(self, host=_ANY, port=PORT, group=GROUP, iface=_ANY):
        import socket

        self._socket = socket
        self.sock = _socket(socket, socket.getaddrinfo(host, port)[0][-1])
        self.group_sock = None  # receives what is sent to the group (unicast-bound host)
        self.group_addr = None
        self.multicast = False
        if group:
            self.group_addr = socket.getaddrinfo(group, port)[0][-1]
            self.multicast = self._join(group, host, iface)
        self._into = hasattr(self.sock, "recvfrom_into")
        self._polls = None  # without recvfrom_into: (unicast, group or None) pollers' ipoll
        if not self._into:
            self._polls = (self._poller(self.sock), self._poller(self.group_sock))

    @staticmethod
    def _poller(s):
        if s is None:
            return None
        import select

        p = select.poll()
        p.register(s, select.POLLIN)
        return getattr(p, "ipoll", p.poll)  # a bound method made once

    def _join(self, group, host, iface):
        """Join the group on `iface`; False (unicast only) when the stack cannot."""
        socket = self._socket
        add = getattr(socket, "IP_ADD_MEMBERSHIP", None)
        if add is None:
            return False
        rx = self.sock
        try:
            if host != _ANY:
                rx = _socket(socket, self.group_addr)
                self.group_sock = rx
            rx.setsockopt(_IPPROTO_IP(socket), add, _ip4(group) + _ip4(iface))
        except OSError:
            self._drop_group()
            return False
        out_if = getattr(socket, "IP_MULTICAST_IF", None)
        if out_if is not None and iface != _ANY:
            try:
                self.sock.setsockopt(_IPPROTO_IP(socket), out_if, _ip4(iface))
            except OSError:
                pass  # notifications follow the route; reception still works
        return True

    def _drop_group(self):
        if self.group_sock is not None:
            self.group_sock.close()
            self.group_sock = None

    def recvfrom_into(self, buf):
        """(n, addr) of one pending datagram (unicast first, then the group), (0, None)
        when none is pending. A datagram longer than buf fills it completely (the caller
        sees an oversize frame)."""
        polls = self._polls  # (the result tuples are passed on, never rebuilt)
        r = self._recv(self.sock, buf, polls[0] if polls else None)
        if r[0] == 0 and self.group_sock is not None:
            r = self._recv(self.group_sock, buf, polls[1] if polls else None)
        return r

    def _recv(self, s, buf, poller):
        try:
            if self._into:
                return s.recvfrom_into(buf)
            if not _pending(poller):
                return 0, None
            data, addr = s.recvfrom(len(buf))  # MicroPython: no recvfrom_into
            n = len(data)
            buf[:n] = data
            return n, addr
        except OSError as e:
            if e.args and e.args[0] in _EAGAIN:
                return 0, None
            raise

    def sendto(self, buf, addr):
        return self.sock.sendto(buf, addr)

    def close(self):
        self._drop_group()
        self.sock.close()
