# The Last Gasp collector's UDP endpoint (meter.hal.Datagram) for the A-route.
#
# A TCP/TLS reconnect does not fit a hold-up window, so the A-route also sends the Last
# Gasp alarm as one sealed datagram to a collector the head-end configured (COLLECTOR
# command). The socket is made at the first send (not at boot: it costs a lwIP socket while
# no collector is set), non-blocking, and a send that cannot go now raises OSError, which
# the A-route counts. The same code runs on the ESP32, the unix port and CPython.

import socket

from meter.hal import Datagram


class UdpCollector(Datagram):
    def __init__(self):
        self._sock = None

    def sendto(self, buf, addr):
        """addr: (IPv4 address string, port) as the A-route holds it."""
        s = self._sock
        if s is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            self._sock = s
        try:
            return s.sendto(buf, addr)
        except OSError:
            self.close()  # a new socket at the next send (the interface may have changed)
            raise

    def recvfrom_into(self, buf):
        return 0, None  # send-only

    def close(self):
        s = self._sock
        self._sock = None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass
