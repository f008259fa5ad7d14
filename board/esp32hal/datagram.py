# A non-blocking UDP socket behind the HAL's Datagram contract (a generic endpoint, e.g. for
# an A-route transport over UDP; the ECHONET B-route endpoint is meter.radio.udp).
# MicroPython sockets have no recvfrom_into: recvfrom() allocates, then copies into buf.

import socket

from meter.hal import Datagram

_EAGAIN = (11, 35)  # ESP-IDF/Linux, BSD


class UdpDatagram(Datagram):
    def __init__(self, port, host="0.0.0.0"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(socket.getaddrinfo(host, port)[0][-1])
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        self._s = s

    def sendto(self, buf, addr):
        try:
            return self._s.sendto(buf, addr)
        except OSError as e:
            if e.args and e.args[0] in _EAGAIN:
                return 0  # the stack's buffers are full: the datagram is dropped
            raise

    def recvfrom_into(self, buf):
        try:
            data, addr = self._s.recvfrom(len(buf))
        except OSError as e:
            if e.args and e.args[0] in _EAGAIN:
                return 0, None
            raise
        n = len(data)
        buf[:n] = data
        return n, addr

    def close(self):
        self._s.close()
