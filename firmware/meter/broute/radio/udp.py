# A non-blocking UDP endpoint on port 3610 with the ECHONET multicast group joined: the
# datagram service of the IP radio modules (Wi-Fi, Ethernet) and of the host UDP module.
# `socket` is imported when an endpoint is created, never when this file is imported.

GROUP = "224.0.23.0"
PORT = 3610
_EAGAIN = (11, 35)  # Linux/ESP-IDF, BSD


def _ip4(text):
    return bytes(int(p) for p in text.split("."))


class UdpEndpoint:
    def __init__(self, host="0.0.0.0", port=PORT, group=GROUP, iface="0.0.0.0"):
        import socket

        self._socket = socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(socket.getaddrinfo(host, port)[0][-1])
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        self.sock = s
        self.group_addr = None
        self.multicast = False
        if group:
            self.group_addr = socket.getaddrinfo(group, port)[0][-1]
            try:
                mreq = _ip4(group) + _ip4(iface)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
                self.multicast = True
            except (OSError, AttributeError):
                self.multicast = False  # still usable for unicast
        self._into = hasattr(s, "recvfrom_into")

    def recvfrom_into(self, buf):
        """(n, addr) of one pending datagram, (0, None) when none is pending. A datagram
        longer than buf fills it completely (the caller sees an oversize frame)."""
        try:
            if self._into:
                return self.sock.recvfrom_into(buf)
            data, addr = self.sock.recvfrom(len(buf))  # MicroPython: no recvfrom_into
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
        self.sock.close()
