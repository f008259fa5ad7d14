# The A-route client's steady state allocates nothing under the MicroPython unix port: a
# Session and its MQTT Client over an in-memory broker link (allocation-free itself), polled
# every 100 ms of a virtual clock that wraps at 2**30, with a QoS 1 publish every 3 s
# acknowledged by PUBACK and a PINGREQ/PINGRESP 2 s (the keep-alive) after each: all under
# heap_lock.
# Also checks every malformed input class leaves the client DOWN, under heap_lock too
# (refusing bad input allocates nothing either). Prints the bytes a publish of a new size
# allocates (one memoryview of the pending bytes) and the client's RAM.

import gc
import micropython

gc.collect()
m0 = gc.mem_alloc()
from meter.aroute import mqtt  # noqa: E402
from meter.aroute.mqtt import Client  # noqa: E402
from meter.aroute.session import Backoff, Session  # noqa: E402
from meter.hal import LINK_CLOSED, LINK_OPEN  # noqa: E402
from meter.ticks import TICKS_MASK, add_ms  # noqa: E402


class MemoryBroker:
    """The broker side of a link, in preallocated memory: answers CONNECT with CONNACK,
    each QoS 1 PUBLISH with its PUBACK and PINGREQ with PINGRESP."""

    def __init__(self):
        self.state = LINK_CLOSED
        self.pending = bytearray(512)  # what the broker will send
        self.n = 0
        self.written = 0
        self.pubs = 0
        self.pings = 0

    def open(self):
        self.state = LINK_OPEN
        self.n = 0

    def status(self):
        return self.state

    def _say(self, a, b, c, d, size):
        p = self.pending
        n = self.n
        p[n] = a
        p[n + 1] = b
        if size == 4:
            p[n + 2] = c
            p[n + 3] = d
        self.n = n + size

    def write(self, buf):
        i = 0
        end = len(buf)
        while i < end:  # whole packets only (the client writes them whole here)
            t = buf[i]
            rl = shift = 0
            i += 1
            while True:
                b = buf[i]
                i += 1
                rl |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            if t == 0x10:
                self._say(0x20, 2, 0, 0, 4)
            elif t == 0x32:
                tl = (buf[i] << 8) | buf[i + 1]
                self._say(0x40, 2, buf[i + 2 + tl], buf[i + 3 + tl], 4)
                self.pubs += 1
            elif t == 0xC0:
                self._say(0xD0, 0, 0, 0, 2)
                self.pings += 1
            i += rl
        self.written += end
        return end

    def readinto(self, buf):
        n = self.n
        if not n:
            return 0
        p = self.pending
        for i in range(n):
            buf[i] = p[i]
        self.n = 0
        return n

    def close(self):
        self.state = LINK_CLOSED


def zero_random(n):
    return b"\x00" * n


gc.collect()
m1 = gc.mem_alloc()
client = Client(b"meter-heap", keepalive_s=2, tx_size=2048, rx_size=1024)
gc.collect()
client_ram = gc.mem_alloc() - m1
link = MemoryBroker()
now = TICKS_MASK - 30_000  # the clock wraps during the run
sess = Session(link, client, Backoff(zero_random, first_max_ms=0), now)
acked = [0]


def on_puback(mid):
    acked[0] += 1


client.on_puback = on_puback
topic = b"am/v1/2a/HEAP0001/up/series"
payload = bytes(range(100))

for _ in range(3):  # connect, then warm every path once (the cached tx view, the pings)
    sess.poll(now)
    now = add_ms(now, 100)
assert sess.up, sess.last_error
for k in range(60):
    if k % 30 == 0:
        client.publish(topic, payload)
    sess.poll(now)
    now = add_ms(now, 100)

pubs, pings, acks0 = link.pubs, link.pings, acked[0]
gc.collect()
a0 = gc.mem_alloc()
micropython.heap_lock()
try:
    for k in range(600):  # 60 s: 20 publishes and PUBACKs, 20 PINGREQ/PINGRESP between
        if k % 30 == 0:
            client.publish(topic, payload)
        sess.poll(now)
        sess.poll(now)
        now = add_ms(now, 100)
finally:
    micropython.heap_unlock()
steady = gc.mem_alloc() - a0
assert sess.up and sess.drops == 0, sess.last_error
assert link.pubs - pubs == 20 and acked[0] - acks0 == 20, (link.pubs - pubs, acked[0] - acks0)
assert link.pings - pings >= 15, link.pings - pings
assert client.inflight == 0 and client.malformed == 0

# a publish of a size not seen just before: one view of the pending bytes
short = payload[:37]
gc.collect()
a0 = gc.mem_alloc()
client.publish(topic, short)
sess.poll(now)  # written: the view of a new span
new_size = gc.mem_alloc() - a0

# malformed input: refused, DOWN, no allocation (each on a fresh session)
BAD = (b"\x36\x05\x00\x01t\x00\x01", b"\x34\x05\x00\x01t\x00\x01", b"\x30\xff\xff\xff\xff\x7f",
       b"\xd0\x01\x00", b"\x42\x02\x00\x01", b"\xb0\x02\x00\x01", b"\x30\x05\x00\x03a/#",
       b"\x20\x02\x00\x00")
codes = []
e = None  # the global exists before heap_lock (a new global would grow the module's dict)
for bad in BAD:
    client.lost()
    client.start(now)
    client.written(len(client.outgoing()))
    client.received(b"\x20\x02\x00\x00", now)
    micropython.heap_lock()
    try:
        e = client.received(bad, now)
    finally:
        micropython.heap_unlock()
    codes.append(e)
    assert client.state == mqtt.DOWN
assert codes == [mqtt.E_QOS3, mqtt.E_QOS2, mqtt.E_REMLEN, mqtt.E_LENGTH, mqtt.E_FLAGS,
                 mqtt.E_UNEXPECTED, mqtt.E_TOPIC, mqtt.E_UNEXPECTED], codes
# an oversize QoS 1 publish (longer than rx) is read through and acknowledged, allocation-free
client.lost()
client.start(now)
client.written(len(client.outgoing()))
client.received(b"\x20\x02\x00\x00", now)
big = bytearray(b"\x32\x85\x10\x00\x01t\x12\x34") + bytearray(2048)  # remaining length 2053
chunks = [memoryview(big)[i:i + 256] for i in range(0, len(big), 256)]  # views made first
micropython.heap_lock()
try:
    for c in chunks:
        e = client.received(c, now)
finally:
    micropython.heap_unlock()
assert e == 0 and client.state == mqtt.UP and client.oversize == 1, (e, client.oversize)
assert bytes(client.outgoing()) == b"\x40\x02\x12\x34"
print("mqtt client RAM", client_ram, "B; steady 60 s", steady, "B; new-size publish",
      new_size, "B")
assert steady == 0, steady
print("PASS")
