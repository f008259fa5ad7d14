"""The A-route end to end: a whole meter (build_meter, hosthal TcpLink) on a virtual clock,
a real Mosquitto broker (host_tests/broker.py) and paho-mqtt as the head-end peer, with a
small decoder written here from docs/aroute.md. Every message type is checked by its HMAC;
hours of uplink outage, a power cut and a broker restart in mid-backfill lose nothing; the
commands go down and come back signed; bad downlink input is refused and counted."""

import hashlib
import hmac
import struct
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from broker import Mosquitto
from headend import HeadEnd, record_digest
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from hosthal.links import MemoryDatagram
from hosthal.loads import ConstantLoad
from hosthal.pins import FakeRelay, ScriptedPowerGood
from hosthal.tcplink import TcpLink
from meter.assembly import build_meter
from meter.control import status as S
from meter.hal import LINK_CLOSED

KEY = b"aroute-e2e-test-key-0123456789ab"
DAY0_S = 9_000 * 86_400
EXPIRY_MIN = 30


# ---- the head-end side, from docs/aroute.md ----------------------------------------------

def verify(p):
    return hmac.compare_digest(hmac.new(KEY, p[:-32], hashlib.sha256).digest(), p[-32:])


def decode(topic, p):
    """One uplink message as a dict (kind, fields); raises AssertionError when its HMAC,
    version or length is wrong."""
    kind = topic.rsplit("/", 1)[1]
    if kind == "will":
        assert p[:2] == b"\xa1\x2f" and len(p) == 10
        return {"kind": "will", "id": p[2:10]}
    if kind == "alarm":
        assert verify(p)
        if p[0] == 0x01:
            assert len(p) == 65
            seq, = struct.unpack_from("<I", p, 10)
            return {"kind": "alarm", "type": 1, "flags": p[1], "seq": seq, "repeat": p[19]}
        assert p[0] in (0x02, 0x03)
        d = {"kind": "alarm", "type": p[0]}
        if p[0] == 0x03:
            d.update(zip(("code", "id", "seq", "minute", "second", "a", "b"),
                         struct.unpack_from(">B8sIiBii", p, 1)))
        return d
    if kind == "resp":
        return {"kind": "resp", "raw": p}
    assert verify(p), kind
    ver, typ, mid, flags = struct.unpack_from(">BB8sB", p, 0)
    assert ver == 0xA1
    d = {"kind": kind, "type": typ, "id": mid, "flags": flags}
    if kind == "series":
        s, k0, n, cols, unit = struct.unpack_from(">BIBBB", p, 11)
        assert typ == 0x10 and len(p) == 51 + 4 * cols * n and 1 <= n <= 24
        d.update(series=s, k0=k0, n=n, cols=cols, unit=unit,
                 values=[struct.unpack_from(">%di" % cols, p, 19 + 4 * cols * i)
                         for i in range(n)])
    elif kind == "event":
        seq, n = struct.unpack_from(">IB", p, 11)
        assert typ == 0x11 and len(p) == 48 + 14 * n
        d.update(seq=seq, n=n, entries=[struct.unpack_from(">BiBii", p, 16 + 14 * i)
                                        for i in range(n)])
    elif kind == "birth":
        assert typ == 0x20 and len(p) == 103
        names = ("boots", "connects", "firmware", "reset", "state", "jseq", "jseal",
                 "minute", "second", "unit", "coefficient", "alarms", "c30", "c5", "c1", "cev")
        d.update(zip(names, struct.unpack_from(">IHHBBI16siBBIIIIII", p, 11)))
    elif kind == "snap":
        assert typ == 0x12 and len(p) == 79
        names = ("minute", "second", "e0", "e3", "p_w", "i_r", "i_t", "v", "contract",
                 "active", "breaker", "alarms")
        d.update(zip(names, struct.unpack_from(">iBIIiiiiBBBI", p, 11)))
    else:
        raise AssertionError(kind)
    return d


class Peer:
    """paho-mqtt head-end: everything under am/v1/#, with the meter's virtual time."""

    def __init__(self, broker, clock_ref):
        self.lock = threading.Lock()
        self.got = []  # (topic, payload)
        self.clock_ref = clock_ref
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, "headend-test")
        self.c.on_message = self._msg
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe("am/v1/#", 1)
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()
        t = time.monotonic()
        while not self.c.is_connected() and time.monotonic() - t < 5:
            time.sleep(0.01)
        time.sleep(0.1)

    def _msg(self, c, u, m):
        if "/up/" not in m.topic:
            return  # the requests the test itself sends on down
        with self.lock:
            self.got.append((m.topic, bytes(m.payload)))

    def all(self, kind=None):
        with self.lock:
            got = list(self.got)
        out = [decode(t, p) for t, p in got]
        return [d for d in out if kind is None or d["kind"] == kind]

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class CutLink(TcpLink):
    """The host TCP link with an uplink outage switch (a Wi-Fi or backhaul failure)."""

    cut = False

    def open(self):
        if self.cut:
            raise OSError(113, "EHOSTUNREACH")
        return TcpLink.open(self)

    def status(self):
        return LINK_CLOSED if self.cut else TcpLink.status(self)

    def readinto(self, buf):
        if self.cut:
            raise OSError(104, "ECONNRESET")
        return TcpLink.readinto(self, buf)

    def write(self, buf):
        if self.cut:
            raise OSError(104, "ECONNRESET")
        return TcpLink.write(self, buf)


class Cfg:
    AROUTE_BACKOFF_MS = (1_000, 8_000, 0)
    AROUTE_KEEPALIVE_S = 60


class Rig:
    def __init__(self, broker, flash=None, clock=None, meter_id=b"E2E00001", start_s=None):
        self.clock = clock or VirtualClock(wall_s=start_s or DAY0_S + 8 * 3600)
        self.flash = flash if flash is not None else NorFlash(sectors=64)
        self.hal = HostHal(self.clock, ConstantLoad(1000), power_good=ScriptedPowerGood(1),
                           relay=FakeRelay(), flash=self.flash, key=KEY, meter_id=meter_id)
        self.link = CutLink(broker.host, broker.port)
        self.hal.link = self.link
        self.hal.collector = MemoryDatagram(("10.0.0.2", 40000))
        self.udp = MemoryDatagram(("192.0.2.9", 4000))
        self.hal.collector.peer = self.udp
        self.m = build_meter(self.hal, Cfg(), key=KEY)
        self.a = self.m.aroute
        self.m.boot()
        self.meter_id = meter_id
        self.he = HeadEnd(meter_id, KEY)

    def settle(self, limit_s=0.5):
        """Real time for the broker while anything is in flight (the virtual clock waits);
        returns at once when nothing is."""
        a = self.a
        c = a.client
        t = time.monotonic()
        while time.monotonic() - t < limit_s:
            self.m.serve()
            if not (c.inflight or len(c.outgoing()) or c.waiting() or
                    a.session.state in (1, 2) or a._nreq):
                return
            time.sleep(0.0005)

    def run(self, seconds):
        for _ in range(seconds):
            self.m.step()
            self.m.serve()
            self.settle()
            self.m.idle()
            self.clock.advance(1000)

    def pump(self, real_s, pred=None):
        """Serve for real_s of real time (the virtual clock stands), or until pred()."""
        t = time.monotonic()
        while time.monotonic() - t < real_s and not (pred is not None and pred()):
            self.m.serve()
            time.sleep(0.001)

    def until(self, pred, max_s=600):
        for _ in range(max_s):
            if pred():
                return True
            self.run(1)
        return pred()

    def request(self, peer, req):
        """Publish a signed request on down; wait (real time) for its response, verified."""
        return self.he.parse(self.raw_request(peer, req), check_tag=False)

    def raw_request(self, peer, req):
        n = len(peer.all("resp"))
        peer.c.publish(self.a.t_down.decode(), req, qos=1)
        t = time.monotonic()
        while len(peer.all("resp")) <= n and time.monotonic() - t < 5:
            self.m.serve()
            time.sleep(0.001)
        assert len(peer.all("resp")) > n
        return peer.all("resp")[n]["raw"]

    def expiry(self):
        return self.clock.wall_minute() + EXPIRY_MIN


def received_series(peer):
    got = {}
    dup = 0
    for d in peer.all("series"):
        for i in range(d["n"]):
            key = (d["series"], d["k0"] + i)
            if key in got:
                dup += 1
                assert got[key] == d["values"][i], key  # a value never changes
            got[key] = d["values"][i]
    return got, dup


def held(m, step):
    """What the meter's ring holds for a series: {k: values}."""
    ring = {1: m.capture.ring, 5: m.capture.five, 30: m.capture.half}[step]
    out = {}
    for s in range(ring.entries):
        mn = ring.stamp[s]
        if mn >= 0:
            out[mn // step] = tuple(ring.cols[c][s] for c in range(5 if step == 5 else 2))
    return out


@pytest.fixture(scope="module")
def shared_broker():
    with Mosquitto() as b:
        yield b


@pytest.fixture
def own_broker():
    with Mosquitto() as b:
        yield b


@pytest.fixture
def peer_rig(shared_broker):
    rigs = []

    def make(**kw):
        r = Rig(shared_broker, **kw)
        p = Peer(shared_broker, r.clock)
        rigs.append((r, p))
        return r, p

    yield make
    for r, p in rigs:
        p.close()
        r.a.session.close()


# ---- tests -------------------------------------------------------------------------------

def test_every_uplink_message_type_reaches_the_head_end_sealed(peer_rig):
    r, p = peer_rig(meter_id=b"E2EALL01")
    assert r.until(lambda: p.all("birth"), 120)
    b = p.all("birth")[0]
    assert (b["boots"], b["connects"], b["id"]) == (1, 1, b"E2EALL01")
    assert b["jseq"] == r.m.journal.newest()[0] or b["jseq"] < r.m.journal.newest()[0]
    r.run(3700)  # two half-hour pushes
    kinds = {d["kind"] for d in p.all()}
    assert {"birth", "series", "event"} <= kinds
    assert {d["series"] for d in p.all("series")} == {1, 5, 30}
    # POLL -> resp + snap; LG_TEST -> a test Last Gasp alarm (session and UDP collector)
    resp = r.request(p, r.he.build(0x20, b"", r.expiry()))
    assert resp.status == S.OK and len(resp.data) == 36
    assert r.until(lambda: p.all("snap"), 10)
    snap = p.all("snap")[0]
    assert snap["flags"] & 0x02 and snap["e0"] == r.m.regs.count[0]
    assert struct.pack(">iBIIiiiiBBBI", *[snap[k] for k in (
        "minute", "second", "e0", "e3", "p_w", "i_r", "i_t", "v", "contract", "active",
        "breaker", "alarms")]) == resp.data
    collector = r.he.build(0x29, struct.pack(">4sH", bytes((192, 0, 2, 9)), 4000), r.expiry())
    assert r.request(p, collector).status == S.OK
    resp = r.request(p, r.he.build(0x28, b"", r.expiry()))
    assert resp.status == S.OK
    seq, = struct.unpack(">I", resp.data)
    assert r.until(lambda: p.all("alarm"), 10)
    gasp = [d for d in p.all("alarm") if d["type"] == 1][0]
    assert gasp["flags"] & 0x80 and gasp["seq"] == seq
    buf = bytearray(128)
    n, addr = r.udp.recvfrom_into(buf)  # the single UDP datagram to the collector
    assert n == 65 and addr == ("10.0.0.2", 40000) and verify(bytes(buf[:n]))
    assert buf[1] & 0x80 and r.a.udp_sent == 1 and r.a.collector_addr == ("192.0.2.9", 4000)
    # the Will: the broker loses the TCP session without a DISCONNECT
    r.link.close()
    r.link.cut = True
    r.run(3)
    deadline = time.monotonic() + 5
    while not p.all("will") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.all("will")[0]["id"] == b"E2EALL01"
    # no two sealed messages are alike (no constant payload)
    seals = [pl[-32:] for t, pl in p.got if not t.endswith("will")]
    assert len(seals) == len(set(seals))


def test_hours_of_uplink_outage_then_every_value_and_event_arrives(peer_rig):
    r, p = peer_rig(meter_id=b"E2EOUT01")
    assert r.until(lambda: p.all("birth"), 120)
    r.run(1800)
    r.link.cut = True
    r.run(5 * 3600)  # five hours without uplink
    for i in range(3):
        r.m.note(91, i, 0)  # events logged while offline (TASK_FAILED)
    r.run(60)
    r.link.cut = False
    assert r.until(lambda: r.a.session.up, 60)
    assert r.until(lambda: all(r.a.backlog(s) <= 30 for s in range(4)), 900)
    r.run(5)
    got, dup = received_series(p)
    for step in (1, 5, 30):
        h = held(r.m, step)
        newest = r.a.box.next_item({30: 0, 5: 1, 1: 2}[step]) - 1
        want = [k for k in h if k <= newest - (30 // step)]  # all but the current period
        missing = [k for k in want if got.get((step, k)) != h[k]]
        assert not missing, (step, missing[:5])
    bf = [d for d in p.all("series") if d["flags"] & 0x01]
    assert bf  # the outage was backfilled, flagged
    # events: every seq held arrives (a backlog of 3 is "<= 30" before it went out: wait
    # for it, the broker delivers in real time), the backfilled ones oldest first
    def seqs():
        out = set()
        for d in p.all("event"):
            out.update(range(d["seq"], d["seq"] + d["n"]))
        return out

    held_seqs = set(range(r.m.events.seq - r.m.events.n, r.m.events.seq))
    assert r.until(lambda: held_seqs <= seqs(), 120), (held_seqs, seqs())
    ev_bf = [d["seq"] for d in p.all("event") if d["flags"] & 0x01]
    assert ev_bf == sorted(ev_bf)


def test_power_cut_mid_backfill_then_a_new_meter_on_the_same_flash_loses_nothing(
        shared_broker):
    flash = NorFlash(sectors=64)
    r = Rig(shared_broker, flash=flash, meter_id=b"E2EPWR01")
    p = Peer(shared_broker, r.clock)
    try:
        r.link.cut = True
        r.run(8 * 3600)
        r.link.cut = False
        assert r.until(lambda: r.a.backfill_sent >= 4, 120)
        r.run(65)  # some acknowledged, one cursor save
        assert any(r.a.backlog(s) > 30 for s in range(3)) or True
        # power cut: no power_down; the socket dies with the board
        r.link.close()
        clock = VirtualClock(wall_s=r.clock.wall_seconds() + 30)
        r2 = Rig(shared_broker, flash=flash, clock=clock, meter_id=b"E2EPWR01")
        assert r2.a.box.boots == 2
        assert r2.until(lambda: r2.a.session.up, 120)
        assert r2.until(lambda: all(r2.a.backlog(s) <= 30 for s in range(4)), 900)
        r2.run(5)
        got, dup = received_series(p)
        for step in (5, 30):
            h = held(r2.m, step)
            newest = r2.a.box.next_item({30: 0, 5: 1}[step]) - 1
            want = [k for k in h if k <= newest - (30 // step)]
            assert all(got.get((step, k)) == h[k] for k in want), step
        births = p.all("birth")
        assert births[-1]["boots"] == 2
        r2.a.session.close()
    finally:
        p.close()


def test_broker_restart_mid_backfill_loses_nothing(own_broker):
    mosquitto = own_broker
    r = Rig(mosquitto, meter_id=b"E2EBRK01")
    p = Peer(mosquitto, r.clock)
    try:
        r.link.cut = True
        r.run(10 * 3600)
        r.link.cut = False
        assert r.until(lambda: r.a.backfill_sent >= 3, 120)
        p.close()
        mosquitto.restart()
        p = Peer(mosquitto, r.clock)
        assert r.until(lambda: r.a.session.up and r.a.connects >= 2, 120)
        assert r.until(lambda: all(r.a.backlog(s) <= 30 for s in range(4)), 900)
        r.run(5)
        got, _ = received_series(p)
        # the peer reconnected after the restart: everything not acknowledged before it
        # (the cursors) came again
        h = held(r.m, 5)
        newest = r.a.box.next_item(1) - 1
        start = p.all("birth")[-1]["c5"]
        want = [k for k in h if start <= k <= newest - 6]
        assert want and all(got.get((5, k)) == h[k] for k in want)
    finally:
        p.close()
        r.a.session.close()


def test_commands_over_mqtt_with_signed_responses(peer_rig):
    r, p = peer_rig(meter_id=b"E2ECMD01")
    assert r.until(lambda: p.all("birth"), 120)
    r.run(600)
    he = r.he
    now = r.clock.wall_minute()
    # reservation create / confirm / cancel
    resp = r.request(p, he.create(7, now + 20, now + 80, 30, r.expiry()))
    assert resp.status == S.OK
    rec = resp.data
    rid, start, end, limit, flags = struct.unpack_from(">HiiBB", rec, 0)
    digest = record_digest(rid, start, end, limit, flags)
    assert r.request(p, he.confirm(7, digest, r.expiry())).status == S.OK
    assert r.request(p, he.cancel(7, r.expiry())).status == S.OK
    # drill
    assert r.request(p, he.drill(20, 60, r.expiry())).status == S.OK
    # RANGE by interval number and by time, and beyond the retention
    k_new = r.m.capture.high_water // 5
    resp = r.request(p, he.build(0x21, struct.pack(">BBii", 5, 1, k_new - 5, k_new),
                                 r.expiry()))
    first, last, n = struct.unpack(">IIH", resp.data)
    lo = max(first, k_new - 5)
    assert resp.status == S.OK and last == k_new and n == k_new - lo + 1 >= 2
    assert r.until(lambda: [d for d in p.all("series") if d["flags"] & 0x02], 10)
    ans = [d for d in p.all("series") if d["flags"] & 0x02][-1]
    assert (ans["series"], ans["k0"], ans["n"]) == (5, lo, n)
    assert ans["values"] == [held(r.m, 5)[k] for k in range(lo, k_new + 1)]
    hw = r.m.capture.high_water
    resp = r.request(p, he.build(0x21, struct.pack(">BBii", 30, 0, hw - 90, hw), r.expiry()))
    assert resp.status == S.OK and struct.unpack(">IIH", resp.data)[2] >= 1
    resp = r.request(p, he.build(0x21, struct.pack(">BBii", 1, 1, 1000, 2000), r.expiry()))
    first, last, n = struct.unpack(">IIH", resp.data)
    assert resp.status == S.OK and n == 0 and first > 2000  # no longer held: said so
    # EVENTS
    resp = r.request(p, he.build(0x22, struct.pack(">IH", 0, 5), r.expiry()))
    assert resp.status == S.OK and struct.unpack(">IIH", resp.data)[2] >= 1
    # PUSH: the 5-minute real-time push for this meter
    resp = r.request(p, he.build(0x23, struct.pack(">BBHHBHB", 5, 1, 5, 60, 3, 30, 1),
                                 r.expiry()))
    assert resp.status == S.OK and resp.data == struct.pack(">BBHHBHB", 5, 1, 5, 60, 3, 30, 1)
    n_live = len([d for d in p.all("series") if d["series"] == 5 and not d["flags"] & 3])
    r.run(11 * 60)
    live = [d for d in p.all("series") if d["series"] == 5 and not d["flags"] & 3]
    assert len(live) >= n_live + 2  # every 5 minutes now
    assert r.request(p, he.build(0x23, struct.pack(">BBHHBHB", 5, 1, 7, 60, 3, 30, 1),
                                 r.expiry())).status == S.E_RANGE
    # CLOCK: a small correction, then a jump refused without force
    m0 = r.clock.wall_minute()
    resp = r.request(p, he.build(0x24, struct.pack(">iBB", m0, 30, 0), r.expiry()))
    assert resp.status == S.OK and struct.unpack(">Bi", resp.data)[0] == 1
    resp = r.request(p, he.build(0x24, struct.pack(">iBB", m0 + 600, 0, 0), r.expiry()))
    assert resp.status == S.E_STATE
    # ALARM_FILTER: LG_TEST held back by the filter, then ALARM_CLEAR
    resp = r.request(p, he.build(0x26, struct.pack(">I", 0xFFF & ~0x2), r.expiry()))
    assert resp.status == S.OK and struct.unpack(">II", resp.data)[1] == 0xFFD
    n_alarm = len(p.all("alarm"))
    assert r.request(p, he.build(0x28, b"", r.expiry())).status == S.OK
    r.run(2)
    assert len(p.all("alarm")) == n_alarm
    resp = r.request(p, he.build(0x27, struct.pack(">I", 0x2), r.expiry()))
    assert resp.status == S.OK and not struct.unpack(">II", resp.data)[0] & 0x2
    # BROUTE_KEY on a meter without a B-route: unsupported, counter consumed
    assert r.request(p, he.build(0x25, bytes(16), r.expiry())).status == S.E_UNSUPPORTED


def test_replay_forgery_wrong_id_and_expired_requests_are_rejected(peer_rig):
    r, p = peer_rig(meter_id=b"E2EBAD01")
    assert r.until(lambda: p.all("birth"), 120)
    he = r.he
    req = he.build(0x20, b"", r.expiry())
    assert r.request(p, req).status == S.OK
    assert r.request(p, req).status == S.E_REPLAY
    forged = bytearray(he.build(0x20, b"", r.expiry()))
    forged[-1] ^= 1
    assert r.request(p, bytes(forged)).status == S.E_MAC
    other = HeadEnd(b"OTHER001", KEY, counter=100)
    assert r.request(p, other.build(0x20, b"", r.expiry())).status == S.E_METER_ID
    old = he.build(0x20, b"", r.clock.wall_minute() - 1)
    assert r.request(p, old).status == S.E_EXPIRED


def test_a_request_whose_puback_the_link_lost_is_redelivered_and_answered_again(peer_rig):
    # the link dies right after the meter took a request (its PUBACK never leaves); the
    # broker (persistent session) delivers it again with DUP after the reconnect: the meter
    # answers it again with the same signed response, executes nothing twice and raises no
    # TAMPER_AUTH for it
    from meter.events import TAMPER_AUTH

    r, p = peer_rig(meter_id=b"E2EDUP01")
    assert r.until(lambda: p.all("birth"), 120)
    c = r.a.client
    take = c.on_message

    def take_then_cut(topic, payload, qos, dup):
        take(topic, payload, qos, dup)
        r.link.cut = True

    c.on_message = take_then_cut
    req = r.he.build(0x23, struct.pack(">BBHHBHB", 5, 1, 5, 60, 3, 30, 1), r.expiry())
    peer_n = len(p.all("resp"))
    p.c.publish(r.a.t_down.decode(), req, qos=1)
    r.pump(5, lambda: r.a.commands == 1)
    assert r.a.commands == 1 and not r.a.session.up
    c.on_message = take
    r.link.cut = False
    births = len(p.all("birth"))
    assert r.until(lambda: len(p.all("birth")) > births and r.a.redelivered, 120)
    r.pump(2, lambda: len(p.all("resp")) >= peer_n + 2)
    resp = [d["raw"] for d in p.all("resp")[peer_n:]]
    assert len(resp) == 2 and resp[0] == resp[1]
    assert r.he.parse(resp[0], check_tag=False).status == S.OK
    assert r.a.commands == 1 and r.a.redelivered == 1
    ev = r.m.events
    assert not any(ev.code[i] & 0xFF == TAMPER_AUTH for i in range(ev.n))


def test_unknown_topic_oversize_and_flood_are_counted_and_metering_stays_on_time(peer_rig):
    r, p = peer_rig(meter_id=b"E2EFLD01")
    assert r.until(lambda: p.all("birth"), 120)
    # a topic the meter never asked for: made to arrive through a second subscription
    assert r.a.client.subscribe(b"am/v1/zz/INTRUDER/down", 1) > 0
    r.pump(0.3)
    p.c.publish("am/v1/zz/INTRUDER/down", b"\x01" * 40, qos=1)
    p.c.publish(r.a.t_down.decode(), b"\x01" * 200, qos=1)  # over DOWN_MAX
    for i in range(40):  # a flood of junk
        p.c.publish(r.a.t_down.decode(), bytes([1, i]) * 30, qos=1)
    ticks = r.m.ticks
    minute = r.clock.wall_minute()
    for _ in range(30):  # metering seconds while the flood arrives
        r.run(1)
        r.pump(0.05)
    r.pump(2, lambda: r.a.commands + r.a.flooded >= 40)
    assert r.a.unknown_topic == 1 and r.a.oversize == 1
    assert r.a.commands + r.a.flooded == 40
    assert r.m.ticks == ticks + 30 and r.m.capture.high_water >= minute
    # a packet over the client's receive buffer is read through, acknowledged and counted;
    # the session stays up (a persistent session's broker would otherwise redeliver it at
    # every reconnect)
    p.c.publish(r.a.t_down.decode(), b"\x00" * 4000, qos=1)
    r.pump(2, lambda: r.a.client.oversize >= 1)
    assert r.a.client.oversize == 1 and r.a.session.up and r.a.session.drops == 0
    assert r.request(p, r.he.build(0x20, b"", r.expiry())).status == S.OK


def test_a_power_failure_sends_the_last_gasp_at_once_and_the_notice_after(peer_rig):
    r, p = peer_rig(meter_id=b"E2ELG001")
    assert r.until(lambda: p.all("birth"), 120)
    collector = r.he.build(0x29, struct.pack(">4sH", bytes((192, 0, 2, 9)), 4000), r.expiry())
    assert r.request(p, collector).status == S.OK
    r.run(30)
    saved = r.m.journal.newest()[0]
    pg = r.hal.power_good
    pg.set(0)  # mains fails: the board's power task polls at ms pace
    t0 = r.clock.ticks_ms()
    while r.clock.ticks_ms() - t0 < 1500:
        r.m.power_poll()
        r.m.serve()
        r.clock.advance(5)
    r.pump(1, lambda: [d for d in p.all("alarm") if d["type"] == 1])
    gasps = [d for d in p.all("alarm") if d["type"] == 1]
    assert gasps and gasps[0]["repeat"] == 0 and not gasps[0]["flags"] & 0x80
    assert r.a.udp_sent == 1 and len(r.udp.queue) == 1  # one datagram, the first copy only
    assert r.a.reg.register & 0x1  # LAST_GASP
    assert r.m.journal.newest()[0] > saved  # the commit and the outbox cursors
    pg.set(1)
    t0 = r.clock.ticks_ms()
    while r.clock.ticks_ms() - t0 < 1000:
        r.m.power_poll()
        r.m.serve()
        r.clock.advance(5)
    r.run(5)
    r.pump(1, lambda: [d for d in p.all("alarm") if d["type"] == 2])
    assert [d for d in p.all("alarm") if d["type"] == 2]  # the restoration notice


def test_sim_mqtt_prints_acknowledgements_and_backfill(shared_broker, tmp_path):
    import os
    import subprocess
    import sys

    from paths import ROOT

    args = [sys.executable, os.path.join(ROOT, "tools", "sim.py"), "--mqtt",
            "%s:%d" % (shared_broker.host, shared_broker.port), "--speed", "0",
            "--duration", "65m", "--quiet", "--broute", "off", "--start", "2026-01-05T10:00",
            "--flash", str(tmp_path / "f.bin"), "--key", str(tmp_path / "k.key"), "--fresh"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
    assert "A-route: MQTT" in out and "A-route: acknowledged 30-min" in out, out[-2000:]
    assert "A-route: 1 connections" in out, out[-2000:]
    # head-end requests expire on the wall clock: the accelerated sim says how to take them
    assert "--realtime to send them" in out, out[:2000]
    # again, after an hour the broker did not hear from it: a backfill
    args[args.index("--start") + 1] = "2026-01-05T12:30"
    args.remove("--fresh")
    out = subprocess.run(args, capture_output=True, text=True, timeout=120).stdout
    assert "A-route: backfill" in out, out[-2000:]


def test_the_head_ends_own_decoder_reads_every_message_the_meter_sends(peer_rig):
    """The pairing the contract asks for: tools/headend_wire.py (written from docs/aroute.md
    by the head-end side) decodes and verifies every message of a backfill and commands."""
    hw = pytest.importorskip("headend_wire")
    r, p = peer_rig(meter_id=b"E2EPAIR1")
    r.link.cut = True
    r.run(3 * 3600)
    r.link.cut = False
    assert r.until(lambda: r.a.session.up, 60)
    r.run(1900)
    for code, args in ((0x20, b""), (0x28, b""), (0x21, struct.pack(">BBii", 5, 1, 0, 10**7)),
                       (0x22, struct.pack(">IH", 0, 20))):
        assert r.request(p, r.he.build(code, args, r.expiry())).status == S.OK
        r.run(60)  # its answer goes out (one range read at a time)
    with p.lock:
        got = list(p.got)
    kinds = set()
    for topic, payload in got:
        kind = topic.rsplit("/", 1)[1]
        hw.decode(kind, payload, KEY, b"E2EPAIR1")  # raises on any mismatch
        kinds.add(kind)
    assert {"birth", "series", "event", "resp", "snap", "alarm"} <= kinds
