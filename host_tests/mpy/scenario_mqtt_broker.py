# The A-route client on the MicroPython unix port's own sockets against a real Mosquitto
# (started by host_tests/test_mqtt_broker.py, its port in MQTT_PORT; without it: SKIP):
# Session + Client over esp32hal.tcplink.TcpLink (the board's link) connect, subscribe to
# their own topic, publish 20 QoS 1 messages, get every PUBACK and every message back once;
# then an idle session with keep-alive 1 s runs 3.5 s under heap_lock: the real socket's
# polls, PINGREQ and PINGRESP allocate nothing. Prints the longest poll (ms).
# scenario-runner: test_mqtt_broker.py (it starts the broker and runs this file)

import gc
import micropython
import os
import time

port = os.getenv("MQTT_PORT")
if not port:
    print("SKIP no broker: MQTT_PORT unset (test_mqtt_broker.py starts one)")
    raise SystemExit

from esp32hal.tcplink import TcpLink  # noqa: E402
from meter.aroute.mqtt import Client  # noqa: E402
from meter.aroute.session import Backoff, Session  # noqa: E402

TOPIC = b"am/v1/3c/MPY00001/down"
link = TcpLink("127.0.0.1", int(port))
client = Client(b"mpy-meter-1", keepalive_s=1, clean=True, timeout_ms=3_000)
sess = Session(link, client, Backoff(os.urandom, first_max_ms=0), time.ticks_ms())
got = []
acks = []
subacks = []
client.on_message = lambda t, p, q, d: got.append((bytes(t), bytes(p), q))
client.on_puback = acks.append
client.on_suback = lambda mid, g: subacks.append(g)
longest = 0


def run(cond, timeout_ms=5_000):
    global longest
    t0 = time.ticks_ms()
    while not cond():
        assert time.ticks_diff(time.ticks_ms(), t0) < timeout_ms, sess.last_error
        a = time.ticks_us()
        sess.poll(time.ticks_ms())
        d = time.ticks_diff(time.ticks_us(), a)
        if d > longest:
            longest = d
        time.sleep_ms(1)


run(lambda: sess.up)
assert client.subscribe(TOPIC, 1) > 0
run(lambda: subacks)
assert subacks == [1], subacks
mids = []
for i in range(20):
    mid = client.publish(TOPIC, b"reading %d" % i, 1)
    while mid < 0:  # window full: let PUBACKs come back
        sess.poll(time.ticks_ms())
        time.sleep_ms(1)
        mid = client.publish(TOPIC, b"reading %d" % i, 1)
    mids.append(mid)
    sess.poll(time.ticks_ms())
run(lambda: len(got) == 20 and len(acks) == 20)
assert sorted(acks) == sorted(mids)
assert [p for _, p, _ in got] == [b"reading %d" % i for i in range(20)]
assert client.inflight == 0 and client.malformed == 0

# idle: the keep-alive on the real socket, allocation-free
pings = client.pings
for _ in range(200):  # warm: every path once
    sess.poll(time.ticks_ms())
    time.sleep_ms(5)
gc.collect()
t0 = time.ticks_ms()
now = t0
micropython.heap_lock()
try:
    while time.ticks_diff(now, t0) < 3_500:
        sess.poll(now)
        time.sleep_ms(5)
        now = time.ticks_ms()
finally:
    micropython.heap_unlock()
assert sess.up and sess.drops == 0, sess.last_error
assert client.pings - pings >= 3, client.pings - pings
assert not client._ping_out or time.ticks_diff(time.ticks_ms(), client._ping_at) < 1_000
sess.close()
print("mpy broker scenario: longest poll", longest, "us; pings", client.pings)
print("PASS")
