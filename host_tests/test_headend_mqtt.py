# The head-end over a real Mosquitto broker with paho-mqtt: workers sharing one subscription
# into one store (SQLite and PostgreSQL) without loss or duplication, rejections counted,
# signed commands answered by a scripted meter peer, gaps found and backfilled by RANGE.

import hashlib
import hmac
import struct
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

import headend
import headend_db
import headend_mqtt as H
import headend_wire as W
from broker import Mosquitto
from meter.control import status as S
from pg import pg_server, store_url  # noqa: F401  (pytest fixtures)
from test_headend_wire import KEY, MID, doc_event, doc_resp, doc_series, doc_snap_block, topic

@pytest.fixture(scope="module")
def broker():
    with Mosquitto(max_queued=100_000) as b:
        yield b.host, b.port


def paho_client(host, port):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-" + uuid.uuid4().hex[:8])
    ev = threading.Event()
    c.on_connect = lambda *a: ev.set()
    c.connect(host, port)
    c.loop_start()
    assert ev.wait(10)
    return c


def keys(n):
    return [("HEM%05d" % i).encode() for i in range(n)], \
        [hashlib.sha256(b"k%d" % i).digest() for i in range(n)]


def wait_until(cond, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_workers_share_the_load_without_loss_or_duplication(broker, store_url):  # noqa: F811
    host, port = broker
    mids, ks = keys(8)
    store = headend_db.open_store(store_url)
    for m, k in zip(mids, ks):
        store.register(m, k, 0.0)
    group = "g" + uuid.uuid4().hex[:6]
    workers = [H.Worker(store_url, host, port, group, out=None) for _ in range(3)]
    for w in workers:
        w.start()
    pub = paho_client(host, port)
    sent = 0
    for i in range(25):
        for m, k in zip(mids, ks):
            p = doc_series(30, 1000 + 2 * i, [(i, 0), (i + 1, 0)], mid=m, key=k)
            infos = [pub.publish(topic("series", m), p, qos=1)]
            if i % 5 == 0:  # a resend of the same message: a duplicate by key
                infos.append(pub.publish(topic("series", m), p, qos=1))
            for info in infos:
                info.wait_for_publish(10)
                sent += 1
    ev = doc_event(1, [(90, 14_000_000, 0, 1, 2)], mid=mids[0], key=ks[0])
    pub.publish(topic("event", mids[0]), ev, qos=1).wait_for_publish(10)
    forged = bytearray(doc_series(30, 1, [(1, 1)], mid=mids[1], key=ks[1]))
    forged[20] ^= 1
    pub.publish(topic("series", mids[1]), bytes(forged), qos=1).wait_for_publish(10)
    pub.publish(topic("series", mids[2]), doc_series(30, 1, [(1, 1)], mid=mids[3],
                                                     key=ks[3]), qos=1).wait_for_publish(10)
    total = sent + 3
    assert wait_until(lambda: sum(w.handled for w in workers) >= total)
    time.sleep(0.3)
    for w in workers:
        w.stop()
    pub.loop_stop()
    assert sum(w.handled for w in workers) == total  # each message reached one worker
    assert all(w.handled > 0 for w in workers)  # ... and the group shared them
    assert not any(w.errors for w in workers)
    assert store.table_count("series_values") == 8 * 50
    assert store.table_count("events") == 1
    c = store.counters()
    assert c["values_new"] == 400 and c["values_duplicate"] == 8 * 5 * 2
    assert c["rejected_E_MAC"] == 2  # the forged one and the one on another meter's topic
    assert c["stored"] + c["duplicate"] + c["rejected_E_MAC"] == total


class FakeMeter:
    """A scripted meter peer: verifies each request on its down topic with the meter key
    (as the meter's command envelope does) and answers with a signed response; a RANGE is
    answered with the series values it holds (ANSWER flag)."""

    def __init__(self, host, port, mid=MID, key=KEY, held=None, busy=0):
        self.mid, self.key = mid, key
        self.held = held or {}  # k -> (fwd, rev) of the 30-minute series
        self.busy = busy  # RANGE requests answered E_STATE first (an answer in progress)
        self.requests = []
        self.c = paho_client(host, port)
        self.c.on_message = self._on
        ev = threading.Event()
        self.c.on_subscribe = lambda *a: ev.set()
        self.c.subscribe(W.down_topic(mid), qos=1)
        assert ev.wait(10)

    def _on(self, c, u, msg):
        req = msg.payload
        ok = hmac.new(self.key, req[:-32], hashlib.sha256).digest() == req[-32:]
        code, counter = req[1], struct.unpack_from(">I", req, 10)[0]
        self.requests.append((code, counter, ok))
        if not ok:
            return
        args = req[19:19 + req[18]]
        data = b""
        if code == headend.CMD_POLL:
            data = doc_snap_block(e0=4321)
        elif code == headend.CMD_RANGE and self.busy:
            self.busy -= 1
            self.c.publish(topic("resp", self.mid), doc_resp(
                code, counter, req[-32:-24], S.E_STATE, b"", self.mid, self.key), qos=1)
            return
        elif code == headend.CMD_RANGE:
            series, by, a, b = struct.unpack(">BBii", args)
            ks = [k for k in range(a, b + 1) if k in self.held]
            data = struct.pack(">IIH", min(self.held), max(self.held), len(ks))
        self.c.publish(topic("resp", self.mid), doc_resp(code, counter, req[-32:-24], 0, data,
                                                         self.mid, self.key), qos=1)
        if code == headend.CMD_RANGE:
            for k in ks:
                self.c.publish(topic("series", self.mid),
                               doc_series(30, k, [self.held[k]], flags=W.F_ANSWER,
                                          mid=self.mid, key=self.key), qos=1)

    def stop(self):
        self.c.loop_stop()


def test_signed_commands_and_their_responses(broker, tmp_path):
    host, port = broker
    db = str(tmp_path / "he.db")
    store = headend_db.open_store(db)
    store.register(MID, KEY, 0.0)
    meter = FakeMeter(host, port)
    cmd = H.Commander(store, host, port)
    r = cmd.command(MID, lambda he, e: he.poll(e))
    assert r["status"] == 0 and W.decode_snap_block(r["data"])["e0"] == 4321
    assert "E0 4321" in H.describe_resp(r)
    # `poll` then `meters` without a running watch: the answer's readings are in the row
    row = [x for x in store.meters() if x["meter"] == MID.decode()][0]
    assert row["e0"] == 4321 and store.table_count("snaps") == 1
    r2 = cmd.command(MID, lambda he, e: he.lg_test(e))
    assert r2["counter"] == r["counter"] + 1
    assert [(c, ok) for c, _, ok in meter.requests] == [(0x20, True), (0x28, True)]
    assert store.table_count("responses") == 2
    # a response under another key (a forgery) is not taken
    store.register(b"SIM00009", b"\x00" * 32, 0.0)
    liar = FakeMeter(host, port, b"SIM00009", b"\x01" * 32)
    assert cmd.command(b"SIM00009", lambda he, e: he.poll(e), timeout=1) is None
    cmd.close()
    # the CLI: its counter continues from the store's
    out = []
    assert H.main(["--db", db, "--broker", "%s:%d" % (host, port), "poll", "--meter",
                   "SIM00001"], out=out.append) == 0
    assert out[0].startswith("poll #3: ok") and "E0 4321" in out[0]
    meter.stop()
    liar.stop()


def test_gaps_are_backfilled_by_range_reads(broker, tmp_path):
    host, port = broker
    db = str(tmp_path / "he.db")
    store = headend_db.open_store(db)
    store.register(MID, KEY, 0.0)
    held = {k: (k * 10, 0) for k in range(500, 540)}
    ing = H.Ingest(store, H.host_clock, None)
    for k in list(range(500, 510)) + list(range(520, 540)):  # live: 510..519 lost
        ing.handle(topic("series"), doc_series(30, k, [held[k]]))
    assert H.find_gaps(store, "SIM00001", 30, 400, 539) == [(510, 519)]
    meter = FakeMeter(host, port, held=held)
    cmd = H.Commander(store, host, port, ingest=True)
    res = H.backfill(cmd, "SIM00001", 30, [(510, 519)])
    assert res[0][0] == (510, 519) and W.parse_range(res[0][1]["data"])["served"] == 10
    assert wait_until(lambda: not H.find_gaps(store, "SIM00001", 30, 400, 539), 10)
    assert store.one("SELECT COUNT(*) FROM series_values WHERE backfill = 1")[0] == 10
    cmd.close()
    meter.stop()


def test_backfill_asks_a_meter_that_sent_nothing_waits_out_a_busy_one_and_learns_what_it_lacks(
        broker, tmp_path):
    # nothing of the meter arrived: the whole window is missing (not "0 missing"); the
    # meter is busy with another range read (E_STATE) and is asked again; it holds only
    # 520..539, and its answer's first-held tells the head-end that 500..519 will never come
    host, port = broker
    store = headend_db.open_store(str(tmp_path / "he.db"))
    store.register(MID, KEY, 0.0)
    held = {k: (k * 10, 0) for k in range(520, 540)}
    assert H.find_gaps(store, "SIM00001", 30, 500, 539) == [(500, 539)]
    meter = FakeMeter(host, port, held=held, busy=1)
    cmd = H.Commander(store, host, port, ingest=True)
    res = H.backfill(cmd, "SIM00001", 30, [(500, 539)], busy_wait=0.2)
    assert [r["status"] for _, r in res] == [0]
    assert W.parse_range(res[0][1]["data"])["served"] == 20
    assert wait_until(lambda: not H.find_gaps(store, "SIM00001", 30, 500, 539), 10)
    assert store.table_count("not_held") == 20 and store.table_count("series_values") == 20
    assert [c for c, _, ok in meter.requests] == [headend.CMD_RANGE] * 2
    cmd.close()
    meter.stop()


def test_a_worker_away_keeps_its_share_and_a_worker_that_leaves_gives_it_up(broker, tmp_path):
    host, port = broker
    db = str(tmp_path / "he.db")
    mids, ks = keys(4)
    store = headend_db.open_store(db)
    for m, k in zip(mids, ks):
        store.register(m, k, 0.0)
    group = "g" + uuid.uuid4().hex[:6]
    pub = paho_client(host, port)

    def publish(first):
        for i in range(first, first + 20):
            m, k = mids[i % 4], ks[i % 4]
            pub.publish(topic("series", m), doc_series(30, 100 + i, [(i, 0)], mid=m, key=k),
                        qos=1).wait_for_publish(10)

    a = H.Worker(db, host, port, group, out=None, client_id=group + "-a").start()
    b = H.Worker(db, host, port, group, out=None, client_id=group + "-b").start()
    a.stop()  # away (a restart, a crash): its persistent session stays in the group
    publish(0)
    assert wait_until(lambda: b.handled >= 1)
    time.sleep(0.5)
    assert 0 < b.handled < 20  # the broker kept a's share for a ...
    a = H.Worker(db, host, port, group, out=None, client_id=group + "-a").start()
    assert wait_until(lambda: a.handled + b.handled == 20)  # ... and delivers it: no loss
    a.stop(leave=True)  # a scale-down: b gets everything from now on
    publish(20)
    assert wait_until(lambda: b.handled - (20 - a.handled) == 20)
    b.stop()
    pub.loop_stop()
    assert store.table_count("series_values") == 40
    with pytest.raises(ValueError):
        H.Worker(db, host, port, "a/b", out=None)


def test_cli_watch_stores_and_prints_alarms_live(broker, tmp_path):
    host, port = broker
    db = str(tmp_path / "he.db")
    assert H.main(["--db", db, "register", "--meter", "SIM00001", "--key-hex", KEY.hex()],
                  out=lambda x: None) == 0
    from test_headend_wire import doc_alarm
    out = []
    group = "w" + uuid.uuid4().hex[:6]
    t = threading.Thread(target=H.main, args=(["--db", db, "--broker", "%s:%d" % (host, port),
                                               "watch", "--group", group, "--workers", "2",
                                               "--duration", "3", "--leave"],),
                         kwargs={"out": out.append})
    t.start()
    assert wait_until(lambda: any(x.startswith("watching") for x in out))
    pub = paho_client(host, port)
    pub.publish(topic("alarm"), doc_alarm(code=62, seq=9), qos=1).wait_for_publish(10)
    t.join(20)
    pub.loop_stop()
    assert any("ALARM code 62 seq 9" in x and "BREAKER_FAULT" in x for x in out)
    assert out[-1].startswith("handled ") and sum(map(int, out[-1].split()[1:])) == 1
    assert headend_db.open_store(db).table_count("alarms") == 1


def test_poll_answer_time_reads_as_iso_and_an_expired_request_says_why():
    r = W.decode_resp(doc_resp(headend.CMD_POLL, 3, b"\x01" * 8, 0,
                               doc_snap_block(minute=14_000_000, second=5)), KEY, MID)
    # wall minute 14,000,000 since 2000-01-01 is 2026-08-14 05:20; second 5
    assert "\n  2026-08-14T05:20:05  E0 1234" in H.describe_resp(r)
    for st in (S.E_EXPIRED, S.E_EXPIRY_RANGE):
        r = W.decode_resp(doc_resp(headend.CMD_POLL, 4, b"\x01" * 8, st, b""), KEY, MID)
        text = H.describe_resp(r)
        assert text.split("\n")[0].endswith(("expired", "expiry_range")) and \
            "clock" in text.split("\n")[1] and "--realtime" in text
