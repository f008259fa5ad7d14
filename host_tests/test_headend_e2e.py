# The head-end against a real meter: the firmware core built through build_meter with the host
# HAL and a TCP link to a real Mosquitto, on a virtual clock; the head-end's worker and
# commander (paho) verify and store what it sends and drive it with signed commands.

import random
import struct
import time

import pytest

import fleet
import headend
import headend_db
import headend_mqtt as H
import headend_wire as W
from broker import Mosquitto
from pg import pg_server, store_url  # noqa: F401  (pytest fixtures)

from meter.control import status as S
from meter.metering.registers import FWD


@pytest.fixture(scope="module")
def broker():
    with Mosquitto(max_queued=100_000) as b:
        yield b


class Rig:
    """One real meter, a head-end worker and a commander on one virtual time base."""

    def __init__(self, broker, url):
        self.fm = fleet.FleetMeter(1, random.Random(7), broker.host, broker.port)
        self.fm.build(fleet.START_S)
        self.store = headend_db.open_store(url)
        self.store.register(self.fm.mid, self.fm.key, self.now())
        self.lines = []
        self.worker = H.Worker(url, broker.host, broker.port, "e2e", clock=self.now,
                               out=self.lines.append).start()
        self.cmd = H.Commander(self.store, broker.host, broker.port, clock=self.now)

    def now(self):
        return float(self.fm.clock.wall_seconds())

    def seconds(self, n, until=None, pace_s=0.001):
        """n simulated seconds, or fewer once until() holds; each takes at least pace_s
        real seconds, so the head-end's threads (real time) keep up with the meter."""
        for _ in range(n):
            self.fm.tick()
            fleet.settle([self.fm])
            time.sleep(pace_s)
            if until is not None and until():
                return True
        return until is None or until()

    def command(self, build, max_s=120):
        p = self.cmd.send(self.fm.mid, build)
        box = []
        self.seconds(max_s, lambda: box.append(self.cmd.result(p)) or box[-1] is not None,
                     pace_s=0.005)
        return box[-1]

    def close(self):
        self.worker.stop()
        self.cmd.close()
        self.fm.link.inner.close()


@pytest.fixture
def rig(broker, store_url):  # noqa: F811
    r = Rig(broker, store_url)
    yield r
    r.close()


def test_a_real_meter_is_watched_and_commanded_over_mqtt(rig):
    mid = rig.fm.mid.decode()
    assert rig.seconds(300, lambda: rig.store.one(
        "SELECT boot FROM meters WHERE meter = ?", (mid,))[0] is not None)
    # instantaneous values: the signed response and the snap that follows it
    r = rig.command(lambda he, e: he.poll(e))
    assert r["status"] == S.OK
    snap = W.decode_snap_block(r["data"])
    assert snap["e0"] <= rig.fm.meter.regs.count[FWD] and snap["minute"] == \
        rig.fm.clock.wall_minute() or snap["minute"] == rig.fm.clock.wall_minute() - 1
    # a reservation, read back and confirmed with its digest
    m0 = rig.fm.clock.wall_minute()
    r = rig.command(lambda he, e: he.create(7, m0 + 10, m0 + 70, 20, e))
    assert r["status"] == S.OK
    rec = headend.parse_record(r["data"])
    assert rec.digest == headend.record_digest(7, m0 + 10, m0 + 70, 20, 0)
    r = rig.command(lambda he, e: he.confirm(7, rec.digest, e))
    assert r["status"] == S.OK and headend.parse_record(r["data"]).state == 2  # confirmed
    # the Last Gasp drill: the response names the test alarm, which arrives flagged TEST
    r = rig.command(lambda he, e: he.lg_test(e))
    assert r["status"] == S.OK
    seq = struct.unpack(">I", r["data"][:4])[0]
    assert rig.seconds(60, lambda: rig.store.one(
        "SELECT COUNT(*) FROM alarms WHERE meter = ? AND alarm = 'last_gasp_test' AND "
        "seq = ? AND test = 1", (mid, seq))[0] == 1)
    assert any(x.startswith("TEST ") and "LAST GASP" in x for x in rig.lines)
    # the 5-minute real-time push on, then its values arrive within 10 minutes
    r = rig.command(lambda he, e: he.push(5, True, 5, 30, 3, 30, 1, e))
    assert r["status"] == S.OK and W.parse_push(r["data"])["period_min"] == 5
    start = rig.now()
    assert rig.seconds(1200, lambda: rig.store.one(
        "SELECT COUNT(*) FROM series_values WHERE meter = ? AND series = 5 AND "
        "received_at > ?", (mid, start))[0] >= 2)
    lat = rig.store.rows("SELECT k, received_at FROM series_values WHERE meter = ? AND "
                         "series = 5 AND received_at > ?", (mid, start))
    assert all(t - k * 300 <= 600 for k, t in lat)
    # clock, alarm filter; a RANGE by wall minutes of the 1-minute series
    r = rig.command(lambda he, e: he.clock(rig.fm.clock.wall_minute(),
                                           rig.fm.clock.wall_second(), False, e))
    assert r["status"] == S.OK and "jump" in H.describe_resp(r)
    r = rig.command(lambda he, e: he.alarm_filter(0xFFF, e))
    assert r["status"] == S.OK and W.parse_filter(r["data"])["filter"] == 0xFFF
    m1 = rig.fm.clock.wall_minute()
    r = rig.command(lambda he, e: he.range_read(1, headend.RANGE_BY_MINUTE, m1 - 10, m1 - 1,
                                                e))
    assert r["status"] == S.OK and W.parse_range(r["data"])["served"] == 10
    assert rig.seconds(120, lambda: len(rig.store.series(mid, 1, m1 - 10, m1 - 1)) == 10)
    # every response is stored, authenticated; nothing was rejected
    assert rig.store.table_count("responses", "WHERE meter = ?", (mid,)) >= 8
    assert not any(k.startswith("rejected") for k in rig.store.counters())
    out = []
    H._print_meters(rig.store, out.append)
    assert mid in out[1] and "-" != out[1].split()[5]


def test_a_forged_or_replayed_command_is_refused_and_answered_signed(rig):
    assert rig.seconds(300, lambda: rig.fm.up())
    good = rig.command(lambda he, e: he.status(e))
    assert good["status"] == S.OK
    # a request under another key: the meter answers E_MAC, signed with its own key
    wrong = headend.HeadEnd(rig.fm.mid, bytes(32), counter=good["counter"])
    req = wrong.status(int(rig.now() // 60) + 5)
    tag = req[-32:-24]
    rig.cmd.client.publish(W.down_topic(rig.fm.mid), req, qos=1)
    p = H.Pending(rig.fm.mid, good["counter"] + 1, tag, req, rig.now())
    box = []
    assert rig.seconds(60, lambda: box.append(rig.cmd.result(p)) or box[-1] is not None)
    assert box[-1]["status"] == S.E_MAC
    # the same authentic request twice: the second is a replay
    counter, epoch = rig.store.next_counter(rig.fm.mid)
    he = headend.HeadEnd(rig.fm.mid, rig.fm.key, counter - 1, epoch)
    req = he.status(int(rig.now() // 60) + 5)
    statuses = []
    for _ in range(2):
        rig.cmd.client.publish(W.down_topic(rig.fm.mid), req, qos=1)
        rig.seconds(30, pace_s=0.005)
        statuses.append(rig.store.rows(
            "SELECT status FROM responses WHERE meter = ? AND counter = ? AND tag = ?",
            (rig.fm.mid.decode(), counter, req[-32:-24].hex())))
    assert sorted(s for (s,) in statuses[-1]) == [S.OK, S.E_REPLAY]
