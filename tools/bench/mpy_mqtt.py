# Benchmark under the MicroPython unix port: the A-route transport (meter.aroute.mqtt Client,
# meter.aroute.session Session, esp32hal.tcplink TcpLink). Prints "figure: name value unit":
# the RAM a client and a session hold, heap bytes per steady-state poll and per publish, the
# time of an idle poll, the longest Session.poll() while the broker is unreachable (refused),
# half-open (accepts, never answers) and black-holed (the SYN gets no answer), and QoS 1
# publishes/s to a local Mosquitto, which this script starts through tools/mosquitto.py (the
# CPython next to this interpreter) and stops by its pid; without it that figure is skipped.

import gc
import os
import socket
import sys
import time

from meter.aroute.mqtt import Client
from meter.aroute.session import Backoff, Session
from meter.hal import LINK_CLOSED, LINK_OPEN
from esp32hal.tcplink import TcpLink


def figure(name, value, unit):
    print("figure:", name, value, unit)


class MemoryBroker:
    """An in-memory broker link: CONNACK to CONNECT, PUBACK to QoS 1 PUBLISH, PINGRESP."""

    def __init__(self):
        self.state = LINK_CLOSED
        self.pending = bytearray(1024)
        self.n = 0

    def open(self):
        self.state = LINK_OPEN

    def status(self):
        return self.state

    def write(self, buf):
        i = 0
        end = len(buf)
        p = self.pending
        while i < end:
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
            n = self.n
            if t == 0x10:
                p[n] = 0x20
                p[n + 1] = 2
                p[n + 2] = p[n + 3] = 0
                self.n = n + 4
            elif t == 0x32:
                tl = (buf[i] << 8) | buf[i + 1]
                p[n] = 0x40
                p[n + 1] = 2
                p[n + 2] = buf[i + 2 + tl]
                p[n + 3] = buf[i + 3 + tl]
                self.n = n + 4
            elif t == 0xC0:
                p[n] = 0xD0
                p[n + 1] = 0
                self.n = n + 2
            i += rl
        return end

    def readinto(self, buf):
        n = self.n
        p = self.pending
        for i in range(n):
            buf[i] = p[i]
        self.n = 0
        return n

    def close(self):
        self.state = LINK_CLOSED


def zeros(n):
    return b"\x00" * n


TOPIC = b"am/v1/2a/BENCH001/up/series"
PAYLOAD = bytes(range(100))
PAYLOAD2 = PAYLOAD[:61]

# -- RAM --------------------------------------------------------------------------------------
gc.collect()
a = gc.mem_alloc()
client = Client(b"BENCH001", keepalive_s=60)
gc.collect()
figure("mqtt_client_ram_tx2048_rx1024", gc.mem_alloc() - a, "B")
link = MemoryBroker()
now = 1_000
gc.collect()
a = gc.mem_alloc()
sess = Session(link, client, Backoff(zeros, first_max_ms=0), now)
gc.collect()
figure("mqtt_session_ram_rx256", gc.mem_alloc() - a, "B")

# -- steady state on the in-memory link ---------------------------------------------------
for _ in range(5):
    sess.poll(now)
    now += 100
assert sess.up
for _ in range(3):
    client.publish(TOPIC, PAYLOAD)
    sess.poll(now)
    sess.poll(now)
N = 5_000
gc.collect()
a = gc.mem_alloc()
t0 = time.ticks_us()
for _ in range(N):
    sess.poll(now)
    now += 20
dt = time.ticks_diff(time.ticks_us(), t0)
figure("mqtt_heap_bytes_per_idle_poll", (gc.mem_alloc() - a) // N, "B")
figure("mqtt_us_per_idle_poll", dt // N, "us")
gc.collect()
a = gc.mem_alloc()
t0 = time.ticks_us()
for _ in range(1_000):
    client.publish(TOPIC, PAYLOAD)
    sess.poll(now)  # written
    sess.poll(now)  # PUBACK read
    now += 20
dt = time.ticks_diff(time.ticks_us(), t0)
figure("mqtt_heap_bytes_per_publish_acked", (gc.mem_alloc() - a) // 1_000, "B")
figure("mqtt_us_per_publish_acked_100B", dt // 1_000, "us")
gc.collect()
a = gc.mem_alloc()
for k in range(1_000):
    client.publish(TOPIC, PAYLOAD if k & 1 else PAYLOAD2)  # sizes alternate: a new view
    sess.poll(now)
    sess.poll(now)
    now += 20
figure("mqtt_heap_bytes_per_publish_new_size", (gc.mem_alloc() - a) // 1_000, "B")
assert client.inflight == 0 and sess.drops == 0


# -- dead, half-open and black-holed brokers (real sockets) ---------------------------------
def listener(port, backlog):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    s.listen(backlog)
    return s


def longest_poll(port, seconds=3):
    c = Client(b"BENCH-DEAD", keepalive_s=2, timeout_ms=1_000)
    s = Session(TcpLink("127.0.0.1", port), c, Backoff(os.urandom, base_ms=200, cap_ms=800,
                                                       first_max_ms=0),
                time.ticks_ms(), connect_timeout_ms=1_000)
    worst = 0
    t_end = time.ticks_add(time.ticks_ms(), seconds * 1000)
    while time.ticks_diff(t_end, time.ticks_ms()) > 0:
        t0 = time.ticks_us()
        s.poll(time.ticks_ms())
        worst = max(worst, time.ticks_diff(time.ticks_us(), t0))
        time.sleep_ms(1)
    s.close()
    return worst, s.attempts, s.connects


# ports below the usual ephemeral range (the unix port has no getsockname to ask for one)
w, tries, ups = longest_poll(47_881)  # nothing listens: refused
assert ups == 0
figure("mqtt_longest_poll_unreachable", w, "us")
figure("mqtt_attempts_in_3s_unreachable", tries, "")
half = listener(47_882, 4)  # the kernel completes the handshake; nobody ever answers
w, tries, ups = longest_poll(47_882)
half.close()
assert ups == 0
figure("mqtt_longest_poll_half_open", w, "us")
hole = listener(47_883, 0)
filler = socket.socket()
filler.setblocking(False)
try:
    filler.connect(socket.getaddrinfo("127.0.0.1", 47_883)[0][-1])
except OSError:
    pass
time.sleep_ms(50)
w, tries, ups = longest_poll(47_883)  # the accept queue is full: SYNs unanswered
filler.close()
hole.close()
figure("mqtt_longest_poll_blackhole", w, "us")


# -- publishes/s to a local Mosquitto ---------------------------------------------------------
def start_broker():
    here = os.getcwd()
    py = sys.executable.rsplit("/", 1)[0] + "/python"
    try:
        os.stat(py)
    except OSError:
        py = "python3"
    tag = "/tmp/mpy-mqtt-bench-%d" % (time.ticks_us() & 0xFFFFFF)
    os.system("%s %s/tools/mosquitto.py serve --port-file %s.port >/dev/null 2>&1 & "
              "echo $! > %s.pid" % (py, here, tag, tag))
    for _ in range(500):
        try:
            with open(tag + ".port") as f:
                port = int(f.read())
            with open(tag + ".pid") as f:
                return tag, port, int(f.read())
        except (OSError, ValueError):
            time.sleep_ms(20)
    return tag, None, None


tag, port, pid = start_broker()
try:
    if port is None:
        print("no broker (tools/mosquitto.py did not start one): publishes/s skipped")
    else:
        c = Client(b"BENCH-PUB", keepalive_s=30, clean=True)
        s = Session(TcpLink("127.0.0.1", port), c, Backoff(os.urandom, first_max_ms=0),
                    time.ticks_ms())
        acks = [0]

        def acked(mid):
            acks[0] += 1

        c.on_puback = acked
        while not s.poll(time.ticks_ms()):
            time.sleep_ms(1)
        M = 3_000
        sent = 0
        t0 = time.ticks_ms()
        while acks[0] < M:
            if sent < M and c.publish(TOPIC, PAYLOAD, 1) > 0:
                sent += 1
            s.poll(time.ticks_ms())
        dt = time.ticks_diff(time.ticks_ms(), t0)
        figure("mqtt_qos1_publishes_per_s_100B_window8", M * 1000 // max(dt, 1), "msg/s")
        s.close()
finally:
    if pid:
        os.system("kill %d" % pid)
    for ext in (".port", ".pid"):
        try:
            os.remove(tag + ext)
        except OSError:
            pass
