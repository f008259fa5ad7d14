"""The A-route connection manager (meter.aroute.session): jittered exponential back-off and
the first-connect spread of a fleet, the Session's state machine on a scripted link, and on
real sockets: a broker that accepts and never answers, one that answers CONNACK and then
goes silent, a refused port and a connect that never completes. poll() never blocks: the
longest poll() is printed (the bench measures it); the tests assert behaviour."""

import random
import select
import socket
import threading
import time

import pytest

from broker import drive, ms
from hosthal.tcplink import TcpLink
from meter.aroute import mqtt, session as S
from meter.aroute.mqtt import Client
from meter.aroute.session import Backoff, Session
from meter.hal import LINK_CLOSED, LINK_OPEN, LINK_OPENING, Link
from meter.ticks import TICKS_MASK, add_ms


def seeded(seed):
    return random.Random(seed).randbytes


# -- back-off -------------------------------------------------------------------------------

def test_ceilings_double_from_the_base_up_to_the_cap():
    b = Backoff(seeded(1), base_ms=2_000, cap_ms=300_000)
    assert [b.ceiling(n) for n in range(10)] == [
        2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000]
    assert b.ceiling(10_000) == 300_000


def test_delays_grow_are_jittered_within_bounds_and_capped():
    b = Backoff(seeded(2), base_ms=2_000, cap_ms=60_000)
    runs = []
    for _ in range(200):
        b.reset()
        runs.append([b.next_delay() for _ in range(8)])
    for n in range(8):
        col = [r[n] for r in runs]
        assert min(col) >= 1_000 and max(col) <= b.ceiling(n)
        assert len(set(col)) > 50  # jittered, not a fixed schedule
    means = [sum(r[n] for r in runs) / len(runs) for n in range(8)]
    assert means[0] < means[2] < means[4] and max(max(r) for r in runs) <= 60_000
    assert abs(means[7] - (1_000 + 60_000) / 2) < 5_000  # capped: uniform in [base/2, cap]


def test_different_seeds_give_different_delays_and_the_same_seed_the_same():
    a = [Backoff(seeded(s)).next_delay() for s in range(20)]
    assert len(set(a)) >= 18
    same = [Backoff(seeded(5)).next_delay() for _ in range(3)]
    assert same == [same[0]] * 3


def test_uniform_is_unbiased_over_a_small_span():
    b = Backoff(seeded(3))
    counts = [0] * 7
    for _ in range(70_000):
        counts[b.uniform(10, 16) - 10] += 1
    assert all(9_400 < c < 10_600 for c in counts)
    assert b.uniform(5, 5) == 5


def test_the_first_connect_of_1000_meters_spreads_over_the_window():
    delays = sorted(Backoff(seeded(1000 + i)).first_delay() for i in range(1000))
    assert 0 <= delays[0] and delays[-1] <= 60_000
    worst = 0
    j = 0
    for i in range(len(delays)):  # the busiest 10 s window (sliding)
        while delays[i] - delays[j] > 10_000:
            j += 1
        worst = max(worst, i - j + 1)
    print("busiest 10 s window: %d of 1000 meters (uniform: ~167)" % worst)
    assert worst <= 250  # a sane share: no reconnect storm


def test_backoff_settings_are_checked():
    with pytest.raises(ValueError):
        Backoff(seeded(1), base_ms=0)
    with pytest.raises(ValueError):
        Backoff(seeded(1), base_ms=5_000, cap_ms=1_000)
    with pytest.raises(ValueError):
        Backoff(seeded(1), cap_ms=1 << 24)  # beyond one 24-bit draw (~4.6 h)
    assert Backoff(seeded(1), cap_ms=(1 << 24) - 1, first_max_ms=(1 << 24) - 1).first_delay() >= 0


# -- the Session on a scripted link ---------------------------------------------------------

class ScriptLink(Link):
    """A link whose connect takes `opening` status() calls; the broker side is scripted:
    `inbox` bytes to deliver, `written` what the client sent."""

    def __init__(self, opening=1, fail_open=False):
        self.opening = opening
        self.fail_open = fail_open
        self.state = LINK_CLOSED
        self.inbox = bytearray()
        self.written = bytearray()
        self.opens = self.closes = 0
        self.reads = 0
        self.flood = None  # bytes repeated forever
        self._at = 0
        self.eof = False
        self.write_error = False
        self._n = 0

    def open(self):
        self.opens += 1
        self.state = LINK_OPENING
        self._n = 0

    def status(self):
        if self.state == LINK_OPENING:
            self._n += 1
            if self.fail_open:
                self.state = LINK_CLOSED
            elif self._n >= self.opening:
                self.state = LINK_OPEN
        return self.state

    def write(self, buf):
        assert self.state == LINK_OPEN
        if self.write_error:
            raise OSError(104)
        self.written += bytes(buf)
        return len(buf)

    def readinto(self, buf):
        assert self.state == LINK_OPEN
        self.reads += 1
        if self.flood is not None:  # an endless stream of these bytes
            f = self.flood
            for i in range(len(buf)):
                buf[i] = f[self._at]
                self._at = (self._at + 1) % len(f)
            return len(buf)
        if not self.inbox:
            return -1 if self.eof else 0
        n = min(len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        del self.inbox[:n]
        return n

    def close(self):
        self.closes += 1
        self.state = LINK_CLOSED


def scripted(opening=1, **kw):
    link = ScriptLink(opening)
    kw.setdefault("timeout_ms", 5_000)
    client = Client(b"m", keepalive_s=kw.pop("keepalive_s", 30), **kw)
    back = Backoff(seeded(9), base_ms=1_000, cap_ms=8_000, first_max_ms=0)
    s = Session(link, client, back, 0, connect_timeout_ms=3_000, healthy_ms=10_000)
    return s, link, client


def test_session_opens_connects_and_reports_up_once_connack_arrives():
    s, link, c = scripted(opening=3)
    ups, downs = [], []
    s.on_up = lambda: ups.append(1)
    s.on_down = downs.append
    assert s.poll(0) is False and s.state == S.OPENING and link.opens == 1
    s.poll(1)
    assert s.state == S.OPENING
    s.poll(2)
    assert s.state == S.CONNECTING and bytes(link.written[:2]) == b"\x10\x0d"
    link.inbox += b"\x20\x02\x00\x00"
    assert s.poll(3) is True and s.up and ups == [1] and s.connects == 1
    link.eof = True
    assert s.poll(4) is False and downs == [S.E_PEER_CLOSED] and s.drops == 1
    assert s.state == S.WAIT and link.closes >= 1 and c.state == mqtt.DOWN
    assert 500 <= s.next_attempt_in(4) <= 1_000


def test_session_without_connack_times_out_and_backs_off():
    s, link, c = scripted()
    t = 0
    while link.opens < 4:
        s.poll(t)
        t += 50
    assert s.failures == 3 and s.connects == 0 and s.last_error in (
        S.E_CONNECT_TIMEOUT, mqtt.E_CONNACK_TIMEOUT)
    assert t > 3 * 3_000 + 500  # three timeouts and three back-off waits


def test_a_refused_connack_is_a_failure_not_a_session():
    s, link, c = scripted()
    s.poll(0)
    link.inbox += b"\x20\x02\x00\x05"
    s.poll(1)
    assert not s.up and s.failures == 1 and s.last_error == mqtt.E_REFUSED


def test_malformed_input_drops_the_session_and_counts():
    s, link, c = scripted()
    s.poll(0)
    link.inbox += b"\x20\x02\x00\x00"
    s.poll(1)
    link.inbox += b"\x34\x05\x00\x01t\x00\x01"  # QoS 2
    s.poll(2)
    assert not s.up and s.drops == 1 and s.last_error == mqtt.E_QOS2 and c.malformed == 1


def test_a_write_error_drops_the_session():
    s, link, c = scripted()
    s.poll(0)
    link.inbox += b"\x20\x02\x00\x00"
    s.poll(1)
    link.write_error = True
    c.publish(b"t", b"x")
    s.poll(2)
    assert not s.up and s.last_error == S.E_LINK


def test_a_flood_is_read_in_bounded_slices_per_poll():
    s, link, c = scripted()
    s.poll(0)
    link.inbox += b"\x20\x02\x00\x00"
    s.poll(1)
    got = []
    c.on_message = lambda t, p, q, d: got.append(1)
    link.flood = b"\x30\x05\x00\x01txy" * 64  # QoS 0 messages, endless
    for t in range(2, 12):
        before = link.reads
        s.poll(t)
        assert link.reads - before <= S._READS
    assert s.up and len(got) <= 10 * S._READS * 256 // 7 + 1


def test_a_qos1_flood_waits_in_the_socket_while_the_link_does_not_drain():
    s, link, c = scripted(tx_size=256)
    s.poll(0)
    link.inbox += b"\x20\x02\x00\x00"
    s.poll(1)
    link.write = lambda buf: 0  # the broker reads nothing: our PUBACKs pile up
    link.flood = b"\x32\x05\x00\x01t\x00\x07" * 64
    for t in range(2, 50):
        s.poll(t)
    assert s.up and c.errors[mqtt.E_TXFULL] == 0  # read stops before tx overflows


def test_a_healthy_session_resets_the_backoff_and_a_short_one_does_not():
    s, link, c = scripted()
    s.poll(0)
    link.inbox += b"\x20\x02\x00\x00"
    s.poll(1)
    s.backoff.failures = 5
    link.eof = True
    s.poll(2)  # up for 1 ms: not healthy
    assert s.backoff.failures == 6
    t = 2 + s.next_attempt_in(2)
    link.eof = False
    while not s.up:
        s.poll(t)
        if s.state == S.CONNECTING and not link.inbox:
            link.inbox += b"\x20\x02\x00\x00"
        t += 1
    up_at = t
    while t < up_at + 10_000:
        s.poll(t)
        link.inbox += b"\xd0\x00" if c._ping_out else b""
        t += 100
    link.eof = True
    s.poll(t)
    assert s.backoff.failures == 1  # reset, then this drop counted
    assert 500 <= s.next_attempt_in(t) <= 1_000


def test_timing_holds_across_the_tick_wrap():
    t0 = TICKS_MASK - 1_500
    link = ScriptLink(opening=1)
    client = Client(b"m", keepalive_s=1, timeout_ms=2_000)
    back = Backoff(seeded(9), base_ms=1_000, cap_ms=8_000, first_max_ms=5_000)
    s = Session(link, client, back, t0, connect_timeout_ms=3_000)
    wait = s.next_attempt_in(t0)
    assert 0 <= wait <= 5_000
    if wait:
        s.poll(add_ms(t0, wait - 1))
        assert link.opens == 0  # not before the first-connect delay
    t = add_ms(t0, wait)
    s.poll(t)
    assert link.opens == 1
    link.inbox += b"\x20\x02\x00\x00"
    t = add_ms(t, 10)
    assert s.poll(t)
    for _ in range(40):  # 4 s across the wrap: a ping a second, answered
        t = add_ms(t, 100)
        s.poll(t)
        if client._ping_out and not link.inbox:
            link.inbox += b"\xd0\x00"
    assert s.up and client.pings >= 3 and s.drops == 0
    for _ in range(40):  # now unanswered: dropped 2 s after the next ping
        t = add_ms(t, 100)
        s.poll(t)
    assert not s.up and s.last_error == mqtt.E_PING_TIMEOUT


def test_close_sends_disconnect_and_no_attempt_follows_until_resume():
    s, link, c = scripted()
    s.poll(0)
    link.inbox += b"\x20\x02\x00\x00"
    s.poll(1)
    downs = []
    s.on_down = downs.append
    s.close()
    assert bytes(link.written).endswith(b"\xe0\x00") and link.state == LINK_CLOSED
    assert s.state == S.CLOSED and downs == [S.E_CLOSED]
    opens = link.opens
    for t in range(2, 100_000, 1_000):
        s.poll(t)
    assert link.opens == opens
    s.resume(100_000)
    s.poll(100_000)
    assert link.opens == opens + 1


# -- real sockets: dead, half-open and unreachable brokers ------------------------------------

class FakeBroker:
    """A TCP listener on loopback: mode "silent" accepts and never answers; "connack"
    answers the first bytes of each connection with CONNACK, then stays silent."""

    def __init__(self, mode):
        self.mode = mode
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        conns = {}
        while not self.stop.is_set():
            r, _, _ = select.select([self.srv] + list(conns), [], [], 0.05)
            for s in r:
                if s is self.srv:
                    c, _ = self.srv.accept()
                    conns[c] = False
                    self.accepted += 1
                    continue
                data = s.recv(4096)
                if not data:
                    conns.pop(s)
                    s.close()
                    continue
                if self.mode == "connack" and not conns[s]:
                    s.sendall(b"\x20\x02\x00\x00")
                    conns[s] = True
        for c in conns:
            c.close()
        self.srv.close()

    def close(self):
        self.stop.set()
        self.t.join(2)


def real_session(port, keepalive_s=1, timeout_ms=1_000, connect_timeout_ms=1_000):
    client = Client(b"meter-x", keepalive_s=keepalive_s, timeout_ms=timeout_ms)
    back = Backoff(seeded(4), base_ms=200, cap_ms=800, first_max_ms=0)
    return Session(TcpLink("127.0.0.1", port), client, back, ms(),
                   connect_timeout_ms=connect_timeout_ms)


def test_a_broker_that_accepts_and_never_answers_times_out_and_is_retried():
    fb = FakeBroker("silent")
    try:
        s = real_session(fb.port)
        longest = drive(s, lambda: s.failures >= 3, timeout_s=15)
        print("silent broker: longest poll %.2f ms" % longest)
        assert s.connects == 0 and fb.accepted >= 3
        assert s.last_error in (S.E_CONNECT_TIMEOUT, mqtt.E_CONNACK_TIMEOUT)
    finally:
        fb.close()


def test_a_broker_that_goes_silent_after_connack_is_dropped_by_the_ping_timeout():
    fb = FakeBroker("connack")
    try:
        s = real_session(fb.port, keepalive_s=1, timeout_ms=800)
        downs = []
        s.on_down = downs.append
        longest = drive(s, lambda: s.connects >= 2 and s.drops >= 2, timeout_s=15)
        print("half-open broker: longest poll %.2f ms" % longest)
        assert downs[:2] == [mqtt.E_PING_TIMEOUT] * 2 and s.client.pings >= 2
    finally:
        fb.close()


def test_a_refused_port_fails_fast_and_backs_off():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.close()  # nothing listens there now
    s = real_session(port)
    t0 = time.monotonic()
    longest = drive(s, lambda: time.monotonic() - t0 > 2.0, timeout_s=5)
    print("refused: longest poll %.2f ms, %d attempts in 2 s" % (longest, s.attempts))
    assert s.connects == 0 and s.attempts - 1 <= s.failures <= s.attempts
    assert 2 <= s.attempts <= 12  # back-off: delays of 100..800 ms, never a busy loop
    assert s.last_error == S.E_LINK


def test_a_connect_that_never_completes_is_abandoned_after_the_connect_timeout():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    filler = socket.socket()  # fills the accept queue: later SYNs get no answer
    filler.setblocking(False)
    try:
        filler.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    try:
        s = real_session(port, connect_timeout_ms=700)
        states = set()
        longest = drive(s, lambda: (states.add(s.state), s.failures >= 2)[1], timeout_s=10)
        print("blackhole: longest poll %.2f ms" % longest)
        assert s.connects == 0 and S.OPENING in states
        assert s.last_error == S.E_CONNECT_TIMEOUT
    finally:
        filler.close()
        srv.close()
