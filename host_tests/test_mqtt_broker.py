"""The meter's MQTT client (meter.aroute: Client + Session over hosthal.tcplink.TcpLink)
against a real Mosquitto 2.0 and the head-end's paho-mqtt 2.1: publish and acknowledge both
ways, the persistent session, the Will, keep-alive and a broker restart."""

import os
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

from broker import Mosquitto, drive, ms
from hosthal.tcplink import TcpLink, tls_context
from meter.aroute import mqtt
from meter.aroute.mqtt import Client
from meter.aroute.session import Backoff, Session
from mosquitto import make_certs
from paths import MPY_SCENARIOS, ROOT, build_mpy, micropython_env, tool


@pytest.fixture
def mosquitto():
    with Mosquitto() as b:
        yield b


class Meter:
    """A Session with its Client and TcpLink, recording what the callbacks report."""

    def __init__(self, broker, cid=b"meter-1", clean=False, keepalive_s=30, will=None,
                 base_ms=200, cap_ms=2_000):
        self.client = Client(cid, keepalive_s=keepalive_s, clean=clean, will=will)
        self.link = TcpLink(broker.host, broker.port)
        self.session = Session(self.link, self.client,
                               Backoff(os.urandom, base_ms=base_ms, cap_ms=cap_ms,
                                       first_max_ms=0), ms(), connect_timeout_ms=3_000)
        self.msgs, self.acks, self.subacks, self.connacks = [], [], [], []
        self.client.on_message = lambda t, p, q, d: self.msgs.append(
            (bytes(t), bytes(p), q, d))
        self.client.on_puback = self.acks.append
        self.client.on_suback = lambda mid, g: self.subacks.append((mid, g))
        self.client.on_connack = lambda sp, rc: self.connacks.append((sp, rc))

    def run(self, until, timeout_s=10.0):
        return drive(self.session, until, timeout_s)

    def connect(self):
        self.run(lambda: self.session.up)

    def subscribe(self, topic, qos=1):
        mid = self.client.subscribe(topic, qos)
        assert mid > 0
        self.run(lambda: any(m == mid for m, _ in self.subacks))

    def settle(self, seconds):
        end = time.monotonic() + seconds
        self.run(lambda: time.monotonic() > end, seconds + 5)


class HeadEnd:
    """A paho-mqtt 2.1 client (CallbackAPIVersion.VERSION2) on its own network thread."""

    def __init__(self, broker, subs=(), cid="headend"):
        self.got = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid)
        self.c.on_message = self._message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        connected = threading.Event()
        self.c.on_connect = lambda *a: connected.set()
        self.c.connect(broker.host, broker.port, keepalive=30)
        self.c.loop_start()
        assert connected.wait(5)
        for t in subs:
            self.subscribed.clear()
            self.c.subscribe(t, qos=1)
            assert self.subscribed.wait(5)

    def _message(self, client, userdata, msg):
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload), msg.qos))

    def received(self):
        with self.lock:
            return list(self.got)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def test_connect_subscribe_and_publish_qos1_to_itself(mosquitto):
    m = Meter(mosquitto)
    m.connect()
    assert m.connacks == [(False, 0)] and m.session.connects == 1
    m.subscribe(b"am/v1/00/m1/down")
    assert m.subacks[0][1] == 1
    mid = m.client.publish(b"am/v1/00/m1/down", b"\x01\x02 hello", qos=1)
    m.run(lambda: mid in m.acks and m.msgs)
    assert m.msgs == [(b"am/v1/00/m1/down", b"\x01\x02 hello", 1, 0)]
    assert m.client.inflight == 0 and m.client.malformed == 0
    m.session.close()


def test_paho_receives_the_meters_publishes_once_and_the_meter_acks_paho(mosquitto):
    he = HeadEnd(mosquitto, subs=["am/v1/+/+/up/#"])
    m = Meter(mosquitto)
    m.connect()
    m.subscribe(b"am/v1/07/m1/down")
    mids = [m.client.publish(b"am/v1/07/m1/up/series", b"s%d" % i, qos=1) for i in range(5)]
    assert all(mid > 0 for mid in mids)
    m.client.publish(b"am/v1/07/m1/up/snap", b"q0", qos=0)
    m.run(lambda: set(mids) <= set(m.acks) and len(he.received()) == 6)
    # paho publishes to the meter: QoS 1 and QoS 0
    infos = [he.c.publish("am/v1/07/m1/down", b"cmd%d" % i, qos=1) for i in range(3)]
    he.c.publish("am/v1/07/m1/down", b"cmd-q0", qos=0)
    m.run(lambda: len(m.msgs) == 4 and all(i.is_published() for i in infos))
    m.settle(0.5)  # nothing comes twice
    got = he.received()
    assert sorted(p for _, p, _ in got) == [b"q0", b"s0", b"s1", b"s2", b"s3", b"s4"]
    assert {(t, q) for t, p, q in got if p == b"s0"} == {("am/v1/07/m1/up/series", 1)}
    assert sorted(p for _, p, _, _ in m.msgs) == [b"cmd-q0", b"cmd0", b"cmd1", b"cmd2"]
    assert {q for _, p, q, _ in m.msgs if p.startswith(b"cmd") and p != b"cmd-q0"} == {1}
    assert all(i.is_published() for i in infos)  # the meter's PUBACKs reached paho
    assert m.client.stray == 0 and m.client.malformed == 0
    m.session.close()
    he.close()


def test_persistent_session_delivers_what_came_while_disconnected(mosquitto):
    m = Meter(mosquitto, cid=b"meter-persist", clean=False)
    m.connect()
    m.subscribe(b"am/v1/01/mp/down")
    m.session.close()  # orderly: DISCONNECT, the session stays on the broker
    he = HeadEnd(mosquitto)
    infos = [he.c.publish("am/v1/01/mp/down", b"while-away-%d" % i, qos=1) for i in range(3)]
    for i in infos:
        i.wait_for_publish(5)
    m.session.resume(ms())
    m.run(lambda: len(m.msgs) == 3)
    assert m.connacks[-1] == (True, 0) and m.client.session_present
    assert [p for _, p, _, _ in m.msgs] == [b"while-away-0", b"while-away-1", b"while-away-2"]
    m.settle(0.5)
    assert len(m.msgs) == 3  # acknowledged: not redelivered
    m.session.close()
    he.close()


def test_the_will_comes_when_the_link_is_cut_and_not_after_disconnect(mosquitto):
    he = HeadEnd(mosquitto, subs=["am/v1/+/+/up/will"])
    will = (b"am/v1/02/mw/up/will", b"\xa1\x2fMW000001", 1)
    m = Meter(mosquitto, cid=b"meter-will", will=will)
    m.connect()
    m.link.close()  # the TCP connection dies without DISCONNECT (Wi-Fi gone, power cut)
    m.client.lost()
    deadline = time.monotonic() + 5
    while not he.received() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert he.received() == [("am/v1/02/mw/up/will", b"\xa1\x2fMW000001", 1)]

    m2 = Meter(mosquitto, cid=b"meter-will2", will=(b"am/v1/02/mw2/up/will", b"x", 1))
    m2.connect()
    m2.session.close()  # DISCONNECT first: the broker discards the Will
    time.sleep(1.0)
    assert [p for _, p, _ in he.received()] == [b"\xa1\x2fMW000001"]
    he.close()


def test_keepalive_holds_an_idle_session_beyond_one_and_a_half_keepalives(mosquitto):
    m = Meter(mosquitto, cid=b"meter-idle", keepalive_s=2)
    m.connect()
    m.settle(4.5)  # > 1.5 x 2 s: the broker would have dropped a silent client at 3 s
    assert m.session.up and m.session.connects == 1 and m.session.drops == 0
    assert m.client.pings >= 2 and m.client.errors[mqtt.E_PING_TIMEOUT] == 0
    assert "exceeded timeout" not in mosquitto.log_text()
    m.session.close()


def test_broker_restart_is_detected_backed_off_and_reconnected(mosquitto):
    m = Meter(mosquitto, cid=b"meter-restart", keepalive_s=5, base_ms=300)
    downs = []
    m.session.on_down = downs.append
    m.connect()
    m.subscribe(b"am/v1/03/mr/down")
    mosquitto.stop()
    m.run(lambda: not m.session.up, 5)
    assert m.session.drops == 1 and downs and downs[0] in (
        "E_PEER_CLOSED", "E_LINK")
    tried = m.session.attempts
    m.settle(1.0)  # broker down: attempts fail (refused) and back off
    assert 1 <= m.session.attempts - tried <= 8 and m.session.failures >= 1  # no busy loop
    mosquitto.start()
    m.run(lambda: m.session.up, 10)
    assert m.session.connects == 2 and m.client.session_present  # persistence kept it
    he = HeadEnd(mosquitto)
    he.c.publish("am/v1/03/mr/down", b"after-restart", qos=1).wait_for_publish(5)
    m.run(lambda: m.msgs)
    assert m.msgs[0][1] == b"after-restart"
    m.session.close()
    he.close()


@pytest.mark.parametrize("qos", [0, 1])
def test_a_burst_larger_than_the_window_goes_out_as_acks_free_it(mosquitto, qos):
    he = HeadEnd(mosquitto, subs=["am/v1/04/mb/up/#"])
    m = Meter(mosquitto, cid=b"meter-burst")
    m.connect()
    sent = 0
    deadline = time.monotonic() + 10
    while sent < 200 and time.monotonic() < deadline:
        if m.client.publish(b"am/v1/04/mb/up/series", b"%04d" % sent + b"x" * 100, qos) >= 0:
            sent += 1
        m.session.poll(ms())
    assert sent == 200
    m.run(lambda: len(he.received()) == 200 and m.client.inflight == 0)
    assert [p[:4] for _, p, _ in he.received()] == [b"%04d" % i for i in range(200)]
    m.session.close()
    he.close()


@pytest.fixture(scope="module")
def mpy_dir(tmp_path_factory):
    return build_mpy(str(tmp_path_factory.mktemp("mpy")))


def test_the_micropython_unix_port_client_talks_to_mosquitto_heap_free_when_idle(
        mosquitto, mpy_dir):
    """host_tests/mpy/scenario_mqtt_broker.py on the real unix port, the broker's port in
    MQTT_PORT (test_micropython_unix runs it without one: SKIP)."""
    env = micropython_env(mpy_dir)
    env["MQTT_PORT"] = str(mosquitto.port)
    r = subprocess.run([tool("micropython"), "-X", "heapsize=160k",
                        os.path.join(MPY_SCENARIOS, "scenario_mqtt_broker.py")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    print(r.stdout)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and lines and lines[-1] == "PASS", r.stdout[-3000:] + r.stderr
    assert "New client connected from 127.0.0.1" in mosquitto.log_text()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def tls_broker(certs):
    with Mosquitto(tls=certs) as b:
        yield b


def test_tls_handshake_without_blocking_then_publish_and_ack(tls_broker, certs):
    with open(certs["ca_der"], "rb") as f:
        ca = f.read()
    m = Meter(tls_broker, cid=b"meter-tls")
    m.link = m.session.link = TcpLink(tls_broker.host, tls_broker.port, tls_context(ca),
                                      server_hostname="localhost")
    longest = m.run(lambda: m.session.up)
    print("TLS connect: longest poll %.2f ms" % longest)
    mid = m.client.publish(b"am/v1/05/mt/up/series", b"sealed", qos=1)
    m.run(lambda: mid in m.acks)
    m.session.close()


def test_tls_with_the_wrong_ca_never_comes_up(tls_broker, tmp_path):
    other = make_certs(str(tmp_path))  # a CA the broker's certificate is not from
    with open(other["ca_der"], "rb") as f:
        ca = f.read()
    m = Meter(tls_broker, cid=b"meter-badca")
    m.link = m.session.link = TcpLink(tls_broker.host, tls_broker.port, tls_context(ca),
                                      server_hostname="localhost")
    m.run(lambda: m.session.failures >= 2)
    assert m.session.connects == 0 and m.link.failed >= 2
    assert m.session.last_error == "E_LINK"


def test_the_micropython_unix_port_connects_over_tls(tls_broker, certs, mpy_dir):
    env = micropython_env(mpy_dir)
    env["MQTT_PORT"] = str(tls_broker.port)
    env["MQTT_CA"] = certs["ca_der"]
    r = subprocess.run([tool("micropython"), "-X", "heapsize=160k",
                        os.path.join(MPY_SCENARIOS, "scenario_mqtt_tls.py")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    print(r.stdout)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and lines and lines[-1] == "PASS", r.stdout[-3000:] + r.stderr


def test_tls_without_a_ca_is_refused_not_left_unchecked():
    with pytest.raises(ValueError, match="E_TLS_CA"):
        tls_context()
    assert tls_context(server_auth=False) is not None  # a bench broker only, said so


def test_an_oversize_message_on_a_persistent_session_is_skipped_not_redelivered(mosquitto):
    # Refusing a message larger than rx would leave it unacknowledged: the broker would
    # redeliver it at every reconnect and the meter would never get back up.
    m = Meter(mosquitto, cid=b"meter-big", clean=False)
    downs = []
    m.session.on_down = downs.append
    m.connect()
    m.subscribe(b"am/v1/06/mo/down")
    he = HeadEnd(mosquitto)
    he.c.publish("am/v1/06/mo/down", b"x" * 100_000, qos=1).wait_for_publish(5)
    he.c.publish("am/v1/06/mo/down", b"small", qos=1).wait_for_publish(5)
    m.run(lambda: m.msgs)
    assert m.msgs[0][1] == b"small" and len(m.msgs) == 1  # the big one never delivered
    assert m.client.oversize == 1 and m.client.errors[mqtt.E_OVERSIZE] == 1
    assert downs == [] and m.session.up and len(m.client._rx) == 1024  # nothing grew
    m.settle(0.3)
    m.session.close()  # a clean DISCONNECT keeps the persistent session at the broker
    m2 = Meter(mosquitto, cid=b"meter-big", clean=False)
    m2.connect()
    assert m2.client.session_present
    m2.settle(0.5)
    assert m2.msgs == [] and m2.client.oversize == 0  # both were acknowledged: no redelivery
    m2.session.close()
    he.close()
