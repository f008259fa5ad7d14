# An idle B-route UDP endpoint allocates nothing under the MicroPython unix port: a real
# non-blocking socket on loopback (the group joined when the stack allows it), polled
# under heap_lock as serve() polls it every 20 ms on the board; a datagram sent to it is
# received whole, and polling is heap-free again afterwards. Prints the bytes one idle
# poll allocates (0; recvfrom(513) with EAGAIN allocated ~576 B per serve()).

import gc
import micropython
import socket

from meter.broute.radio.udp import UdpEndpoint

PORT = 47_610  # not 3610: runs beside simulated meters (the unix port has no getsockname)
ep = UdpEndpoint("127.0.0.1", PORT)
buf = bytearray(513)
n = addr = None
for _ in range(3):  # first calls: lazily created state (the poller's result tuple)
    n, addr = ep.recvfrom_into(buf)
assert n == 0 and addr is None

gc.collect()
a0 = gc.mem_alloc()
for _ in range(100):
    n, addr = ep.recvfrom_into(buf)
idle_bytes = (gc.mem_alloc() - a0) // 100
micropython.heap_lock()
try:
    for _ in range(1000):
        n, addr = ep.recvfrom_into(buf)
finally:
    micropython.heap_unlock()
assert n == 0 and addr is None and idle_bytes == 0, idle_bytes

# a datagram arrives: received whole
peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dest = socket.getaddrinfo("127.0.0.1", PORT)[0][-1]
peer.sendto(b"\x10\x81\x00\x01hello", dest)
for _ in range(1000):
    n, addr = ep.recvfrom_into(buf)
    if n:
        break
assert n == 9 and bytes(buf[:n]) == b"\x10\x81\x00\x01hello", (n, bytes(buf[:n]))
micropython.heap_lock()
try:
    for _ in range(1000):
        n, addr = ep.recvfrom_into(buf)
finally:
    micropython.heap_unlock()
assert n == 0
peer.close()
ep.close()
print("udp idle poll bytes", idle_bytes, "multicast", ep.multicast)
print("PASS")
