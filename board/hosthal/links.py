# In-memory byte and datagram links: a UART with a scripted peer, a pair of datagram ends.

from meter.hal import Uart, Datagram


class LoopUart(Uart):
    """The firmware's side of a serial line; the test plays the peer with feed()/take()."""

    def __init__(self):
        self.rx = bytearray()  # bytes waiting for the firmware
        self.tx = bytearray()  # bytes the firmware wrote

    def feed(self, data):
        self.rx.extend(data)

    def take(self):
        out = bytes(self.tx)
        self.tx[:] = b""
        return out

    def write(self, buf):
        self.tx.extend(buf)
        return len(buf)

    def any(self):
        return len(self.rx)

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx[:n] = b""
        return n


class MemoryDatagram(Datagram):
    """One end of an in-memory datagram link; connect two with pair()."""

    def __init__(self, addr):
        self.addr = addr
        self.peer = None
        self.queue = []
        self.closed = False

    def sendto(self, buf, addr):
        if self.closed:
            raise OSError("closed")
        if self.peer is not None and not self.peer.closed:
            self.peer.queue.append((bytes(buf), self.addr))
        return len(buf)

    def recvfrom_into(self, buf):
        if not self.queue:
            return 0, None
        data, addr = self.queue.pop(0)
        n = min(len(buf), len(data))
        buf[:n] = data[:n]
        return n, addr

    def close(self):
        self.closed = True


def pair(addr_a="a", addr_b="b"):
    a = MemoryDatagram(addr_a)
    b = MemoryDatagram(addr_b)
    a.peer = b
    b.peer = a
    return a, b
