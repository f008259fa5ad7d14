# The A-route link over TLS on the MicroPython unix port (mbedtls) against a real Mosquitto
# TLS listener (started by host_tests/test_mqtt_broker.py: MQTT_PORT, MQTT_CA the CA in DER;
# without them: SKIP): the non-blocking handshake runs inside the link's first writes and
# reads, the session comes up, a QoS 1 publish is acknowledged. Prints the GC heap the TLS
# connect takes at its peak and while the session is up (the unix port's mbedtls allocates
# its contexts and record buffers with the C library, outside the GC heap, so this is the
# Python side only), and the longest poll (a handshake step is CPU time inside mbedtls).
# scenario-runner: test_mqtt_broker.py (it starts the broker and runs this file)

import gc
import os
import time

port = os.getenv("MQTT_PORT")
ca_path = os.getenv("MQTT_CA")
if not port or not ca_path:
    print("SKIP no TLS broker: MQTT_PORT/MQTT_CA unset (test_mqtt_broker.py starts one)")
    raise SystemExit

from esp32hal.tcplink import TcpLink, tls_context  # noqa: E402
from meter.aroute.mqtt import Client  # noqa: E402
from meter.aroute.session import Backoff, Session  # noqa: E402

with open(ca_path, "rb") as f:
    ca = f.read()
client = Client(b"mpy-tls-1", keepalive_s=30, clean=True)
link = TcpLink("127.0.0.1", int(port), tls_context(ca), server_hostname="localhost")
sess = Session(link, client, Backoff(os.urandom, first_max_ms=0), time.ticks_ms())
acks = []
client.on_puback = acks.append
gc.collect()
base = gc.mem_alloc()
peak = 0
longest = 0


def run(cond, timeout_ms=10_000):
    global peak, longest
    t0 = time.ticks_ms()
    while not cond():
        assert time.ticks_diff(time.ticks_ms(), t0) < timeout_ms, (sess.last_error,
                                                                   link.last_errno)
        a = time.ticks_us()
        sess.poll(time.ticks_ms())
        d = time.ticks_diff(time.ticks_us(), a)
        longest = max(longest, d)
        peak = max(peak, gc.mem_alloc() - base)
        time.sleep_ms(1)


run(lambda: sess.up)
gc.collect()
held = gc.mem_alloc() - base
mid = client.publish(b"am/v1/06/MPYTLS01/up/series", b"over tls", 1)
assert mid > 0
run(lambda: mid in acks)
sess.close()
print("mpy TLS: GC heap peak during connect", peak, "B; held while up", held,
      "B (mbedtls's own buffers are outside the GC heap on this port); longest poll",
      longest, "us")
print("PASS")
