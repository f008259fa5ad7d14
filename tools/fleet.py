#!/usr/bin/env python3
"""Fleet simulation: N simulated meters against a real Mosquitto and the head-end, on an
accelerated clock, with faults injected; prints the A-route service-level table.

Each meter is the real firmware core built through meter.assembly.build_meter with the host
HAL (board/hosthal: HostHal, VirtualClock, NorFlash, the TCP link of board/hosthal/
tcplink.py), its own meter id, key and flash image (a NorFlash in RAM that outlives the
meter object), a simulated household. All meters share one virtual time base: every
simulated second the loop steps each meter once (step, serve, idle) and advances its clock
by 1000 ms. The head-end (tools/headend_mqtt.Worker: a paho client in the shared
subscription, writing to the store, SQLite by default) takes its receive times from the
same virtual clock. The broker and the head-end run in real time, so after each simulated
second the loop serves the meters that wait for the broker (a connect, CONNACK, PUBACK,
PINGRESP) until its answers are in (at most SETTLE_S real): a broker round trip costs no
simulated time, and the meters' MQTT timeouts (CONNACK and PINGRESP 10 s, resends after
the back-off) keep their meaning however fast the loop runs. Likewise the loop does not
move simulated time on while the head-end lags: it waits until every message the broker
acknowledged to a meter has reached a head-end worker (at most PACE_S real), so a
real-time stall of the broker or the head-end (a busy machine: 1 real second is about 4
simulated minutes at 250 x) slows the run instead of making values late that the meters
sent on time; the waits are counted in the table's "pacing" line. --speed caps the pace
(simulated seconds per real second; 0: as fast as the CPU goes, about 20,000 meter-seconds
per real second on one core: 100 meters at ~200x).

Faults (scheduled from --seed over the first 80 % of the run; none in the drain phase):
  uplink cut      a meter's link refuses to open and fails its I/O for a while
  broker restart  Mosquitto stopped and started again on the same port (persistence on)
  meter outage    the meter stops without warning (a crash or a pulled fuse), is rebuilt
                  from its flash image through build_meter after a while
  power cut       power-good falls first: the meter's fast power path runs its Last Gasp
                  (alarm over the live session) for a hold-up second, then dies; rebuilt
                  from its flash image when the power is back (restoration notice)
The 5-minute real-time push is enabled by a PUSH command on --realtime-share of the meters
(at least one). After the run: a drain phase (no faults), then the head-end looks for gaps
against what each meter captured and asks for them with RANGE (backfill), and the table:

  30-min values within 60 min     of the boundaries captured at least 60 min before the end
  5-min RT values within 10 min   real-time meters, after their PUSH was answered
  final collection (30, 5 min)    after drain and backfill, of every value captured
  values differing from meter     stored value != the meter's (target 0)
  duplicates stored               rows with the same key (target 0; copies discarded: count)
  messages / s                    uplink messages the head-end handled per real second
  broker connections              meter sessions established (CONNACKs), peak concurrent

    python tools/fleet.py --meters 5 --hours 6
    python tools/fleet.py --meters 100 --hours 24 --progress --db postgresql://...
"""

import argparse
import hashlib
import json
import os
import random
import select
import shutil
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import hostpaths  # noqa: E402,F401  (firmware, board and the micropython shim on sys.path)

import headend_db  # noqa: E402
import headend_mqtt as H  # noqa: E402
from mosquitto import Mosquitto  # noqa: E402

from meter.assembly import build_meter  # noqa: E402
from meter.aroute.mqtt import HANDSHAKE  # noqa: E402
from meter.hal import LINK_CLOSED, LINK_OPENING, Link  # noqa: E402
from meter.metering.frontends.simulated import SimulatedHousehold  # noqa: E402
from meter.outage.lastgasp import SLEEP  # noqa: E402
from hosthal.board import HostHal  # noqa: E402
from hosthal.clock import VirtualClock  # noqa: E402
from hosthal.downstream import Downstream  # noqa: E402
from hosthal.flash import NorFlash  # noqa: E402
from hosthal.pins import ScriptedPowerGood, TimedRelay  # noqa: E402
from hosthal.tcplink import TcpLink  # noqa: E402

START_S = 9_500 * 86_400  # a midnight (2026-01-04), seconds since 2000-01-01
SETTLE_S = 0.5  # real seconds a simulated second waits at most for the broker's answers
PACE_S = 2.0  # ... and for the head-end to have what the broker took from the meters
HOLDUP_MS = 1000  # a power cut's hold-up: the fast power path runs this long, then dies
TARGETS = {"r30": 99.7, "r5": 90.0, "final": 100.0}


class CutLink(Link):
    """The meter's TCP link with an injectable cut: while cut, open() leaves it closed and
    an open connection fails (the meter sees a dead uplink)."""

    def __init__(self, inner):
        self.inner = inner
        self.cut = False

    def set_cut(self, on):
        self.cut = on
        if on:
            self.inner.close()

    def open(self):
        if not self.cut:
            self.inner.open()

    def status(self):
        return LINK_CLOSED if self.cut else self.inner.status()

    def write(self, mv):
        if self.cut:
            raise OSError(104)  # ECONNRESET
        return self.inner.write(mv)

    def readinto(self, buf):
        if self.cut:
            raise OSError(104)
        return self.inner.readinto(buf)

    def close(self):
        self.inner.close()


class Config:
    UNIT = 0x02
    COEFFICIENT = 1

    def __init__(self, meter_id):
        self.METER_ID = meter_id


class FleetMeter:
    """One simulated meter: its id, key and flash image outlive the Meter object, which a
    power cut or an outage throws away and build() makes again."""

    def __init__(self, i, rnd, host, port):
        self.mid = b"FLT%05d" % i
        self.key = bytes(rnd.getrandbits(8) for _ in range(32))
        self.seed = rnd.getrandbits(30)
        self.flash = NorFlash(sectors=64)
        self.pg = ScriptedPowerGood(1)
        self.host, self.port = host, port
        self.meter = self.clock = self.link = None
        self.truth = {5: {}, 30: {}}  # k -> (fwd, rev) the meter captured
        self.connects = 0  # sessions of earlier incarnations
        self.stats = {}  # A-route counters of earlier incarnations
        self.builds = 0
        self.cut_until = None  # uplink cut
        self.off_until = None  # outage or power cut: wall second it comes back
        self.realtime = False
        self.accepted = None  # callable(digest): the broker acknowledged an uplink message
        self._sent = {}  # mid -> digest of the payload published under it

    def build(self, wall_s):
        self.clock = VirtualClock(wall_s=wall_s, ticks_start=(self.seed + self.builds * 7919)
                                  & 0x3FFFFFFF)
        front = SimulatedHousehold(self.clock, seed=self.seed + self.builds)
        relay = TimedRelay(self.clock)  # the household downstream of the breaker
        self.pg.set(1)
        self.link = CutLink(TcpLink(self.host, self.port))
        if self.cut_until is not None:
            self.link.set_cut(True)
        hal = HostHal(self.clock, Downstream(front, relay), power_good=self.pg,
                      relay=relay, flash=self.flash, meter_id=self.mid, key=self.key,
                      link=self.link)
        hal.random = random.Random(self.seed * 31 + self.builds).randbytes
        self.meter = build_meter(hal, Config(self.mid), key=self.key)
        self._watch(self.meter.aroute.client)
        self.meter.boot()
        self.builds += 1

    def _watch(self, client):
        """Tell accepted() of every uplink message the broker acknowledges (a digest of its
        payload), so the loop can wait for the head-end to have it (Fleet.pace)."""
        self._sent.clear()
        publish, on_puback = client.publish, client.on_puback

        def published(topic, payload, qos=1, retain=False):
            mid = publish(topic, payload, qos, retain)
            if mid > 0:
                self._sent[mid] = digest(payload)
            return mid

        def acked(mid):
            d = self._sent.pop(mid, None)
            if d is not None and self.accepted is not None:
                self.accepted(d)
            on_puback(mid)
        client.publish = published
        client.on_puback = acked

    @property
    def on(self):
        return self.meter is not None

    def tick(self):
        m = self.meter
        m.step()
        m.serve()
        m.idle()
        self.clock.advance(1000)

    def record_truth(self, minute):
        """After the step that captured boundary `minute`: what the meter holds for it."""
        cap = self.meter.capture
        for series, ring in ((5, cap.five), (30, cap.half)):
            if minute % series == 0:
                self._take(series, ring, minute)

    def _take(self, series, ring, minute):
        s = ring.slot(minute)
        if s >= 0:
            self.truth[series].setdefault(minute // series, (ring.cols[0][s], ring.cols[1][s]))

    def scan_truth(self):
        """Every boundary the rings still hold (a full scan: at the end and before a
        meter is thrown away)."""
        cap = self.meter.capture
        for series, ring in ((5, cap.five), (30, cap.half)):
            for st in ring.stamp:
                if st >= 0:
                    self._take(series, ring, st)

    def die(self, last_gasp):
        """A power cut (last_gasp: power-good falls first and the hold-up runs) or an
        outage; the link goes without a DISCONNECT."""
        self.scan_truth()
        m = self.meter
        if last_gasp:
            self.pg.set(0)
            t0 = self.clock.ticks_ms()
            for ms in range(0, HOLDUP_MS, 5):
                if m.power_poll() == SLEEP:
                    pass  # radios off: the board sleeps until the supply dies
                m.serve()
                self.clock.advance(5)
                if ms % 1000 == 995:
                    m.step()
            del t0
        self.connects += self._sessions()
        a = getattr(m, "aroute", None)
        if a is not None:
            for name in ("resent", "drops_stalled"):
                self.stats[name] = self.stats.get(name, 0) + getattr(a, name)
        self.link.inner.close()
        self.meter = None

    def _sessions(self):
        a = getattr(self.meter, "aroute", None)
        return a.session.connects if a is not None else 0

    def stat(self, name):
        """An A-route counter summed over this meter's incarnations."""
        a = getattr(self.meter, "aroute", None) if self.meter is not None else None
        return self.stats.get(name, 0) + (getattr(a, name) if a is not None else 0)

    def sessions(self):
        return self.connects + (self._sessions() if self.meter is not None else 0)

    def awaiting(self):
        """True while the meter waits for the broker: a connect, a CONNACK, a PINGRESP or
        a PUBACK (the settle step lets the broker's answer in within the same second)."""
        a = getattr(self.meter, "aroute", None) if self.meter is not None else None
        if a is None or self.link.cut:
            return False
        c = a.client
        return bool(self.link.inner.status() == LINK_OPENING or c.state == HANDSHAKE or
                    c.inflight or getattr(c, "_ping_out", False))

    def socket(self):
        return getattr(self.link.inner, "_sock", None)

    def up(self):
        a = getattr(self.meter, "aroute", None) if self.meter is not None else None
        return bool(a is not None and a.session.up)


def digest(payload):
    return hashlib.blake2b(bytes(payload), digest_size=12).digest()


def settle(meters, budget_s=SETTLE_S):
    """After a simulated second: while meters wait for the broker, serve them as its
    answers come (at most budget_s real seconds), so a broker round trip costs the meters
    no simulated time however fast the loop runs. Returns False when the budget ran out
    with meters still waiting."""
    deadline = time.monotonic() + budget_s
    while True:
        waiting = [fm for fm in meters if fm.awaiting()]
        left = deadline - time.monotonic()
        if not waiting:
            return True
        if left <= 0:
            return False
        socks = [s for s in (fm.socket() for fm in waiting) if s is not None]
        if socks:
            select.select(socks, [], [], min(left, 0.001))
        for fm in waiting:
            fm.meter.serve()


class Fleet:
    def __init__(self, a, out=print):
        # the loop is CPU-bound and holds the GIL; the head-end's threads (paho, the store's
        # round trips) take it back at every switch interval: keep it short, or their
        # receive times lag in simulated time
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0002)
        self.a = a
        self.out = out
        self.rnd = random.Random(a.seed)
        self.tmp = tempfile.mkdtemp(prefix="fleet-")
        self.broker = Mosquitto(max_queued=100_000, extra="max_inflight_messages 64\n"
                                "max_connections -1\nconnection_messages false\n").start()
        self.db = a.db or os.path.join(self.tmp, "headend.db")
        self.store = headend_db.open_store(self.db)
        self.store.drop_all()
        self.wall_s = START_S
        self.meters = [FleetMeter(i + 1, self.rnd, self.broker.host, self.broker.port)
                       for i in range(a.meters)]
        # pacing (see pace()): digests the head-end received, and those the broker took
        # from a meter that the head-end has not yet shown it received
        self.seen = set()
        self.unseen = set()
        self.pacing = {"settle_over": 0, "pace_waits": 0, "pace_over": 0,
                       "pace_abandoned": 0, "paced_real_s": 0.0}
        for fm in self.meters:
            fm.accepted = self._accepted
        for fm in self.meters:
            self.store.register(fm.mid, fm.key, self.now())
        self.workers = [H.Worker(self.db, self.broker.host, self.broker.port, "fleet",
                                 clock=self.now, out=self._line,
                                 client_id="he-fleet-%d" % w).start()
                        for w in range(a.workers)]
        for w in self.workers:
            self._observe(w)
        self.cmd = H.Commander(self.store, self.broker.host, self.broker.port, clock=self.now)
        n_rt = max(1, round(a.meters * a.realtime_share))
        for fm in self.rnd.sample(self.meters, n_rt):
            fm.realtime = True
        self.push_pending = {}  # meter id -> Pending PUSH
        self.rt_since = {}  # meter id -> wall second its PUSH was answered OK
        self.alarm_lines = []
        self.schedule = self._schedule()
        self.peak_up = 0
        self.broker_down_until = None
        self.injected = {"uplink cut": 0, "broker restart": 0, "meter outage": 0,
                         "power cut": 0}

    def now(self):
        return float(self.wall_s)

    def _line(self, line):
        self.alarm_lines.append(line)
        if self.a.verbose:
            self.out("  [%s] %s" % (H.iso_minute(self.wall_s // 60), line))

    def _schedule(self):
        """[(wall second, action, meter index, duration s)] over the first 80 % of the run."""
        a = self.a
        span = int(a.hours * 3600)
        first, last = 1800, max(1801, int(span * 0.8))
        scale = a.meters * a.hours / 24.0

        def n(value, default):
            return default if value is None else value
        plan = []
        # per meter-day: 0.3 short uplink cuts (Wi-Fi drops, 5-25 min), 0.02 long ones
        # (1-4 h: the backfill case), 0.1 outages and 0.1 power cuts (2-20 min); one or
        # more broker restarts (20-120 s) per run
        for action, count, dur in (
                ("uplink cut", n(a.cuts, max(1, round(0.3 * scale))), (300, 1500)),
                ("uplink cut", n(a.long_cuts, round(0.02 * scale)), (3600, 4 * 3600)),
                ("meter outage", n(a.outages, max(1, round(0.1 * scale))), (120, 1200)),
                ("power cut", n(a.power_cuts, max(1, round(0.1 * scale))), (120, 1200)),
                ("broker restart", n(a.restarts, max(1, round(a.hours / 12))), (20, 120))):
            for _ in range(count):
                plan.append((START_S + self.rnd.randrange(first, last), action,
                             self.rnd.randrange(len(self.meters)),
                             self.rnd.randrange(*dur)))
        return sorted(plan)

    # ---- the loop
    def run(self):
        a = self.a
        t0 = time.monotonic()
        end_s = START_S + int(a.hours * 3600)
        drain_s = end_s + int(a.drain_hours * 3600)
        for fm in self.meters:
            fm.build(self.wall_s)
        steps = 0
        while self.wall_s < drain_s:
            self._inject(self.wall_s < end_s)
            self._realtime()
            for fm in self.meters:
                if fm.on:
                    fm.tick()
            self.wall_s += 1
            steps += 1
            self.settle()
            if self.wall_s % 60 == 5:
                m = self.wall_s // 60
                for fm in self.meters:
                    if fm.on:
                        fm.record_truth(m)
                up = sum(1 for fm in self.meters if fm.up())
                self.peak_up = max(self.peak_up, up)
            if a.speed > 0:
                ahead = t0 + steps / a.speed - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if a.progress and self.wall_s % 3600 == 0:
                self.out("  %s  %5.0f x  up %d/%d  handled %d" % (
                    H.iso_minute(self.wall_s // 60), steps / (time.monotonic() - t0),
                    sum(1 for fm in self.meters if fm.up()), len(self.meters),
                    sum(w.handled for w in self.workers)))
        self.run_real_s = time.monotonic() - t0
        self.steps = steps
        for fm in self.meters:
            if fm.on:
                fm.scan_truth()
        self.handled_run = sum(w.handled for w in self.workers)
        self.end_s = end_s
        self.backfilled = self._backfill()
        self.total_real_s = time.monotonic() - t0

    def _accepted(self, d):
        if d not in self.seen:
            self.unseen.add(d)

    def _observe(self, worker):
        """Note the digest of every message the worker has handled (stored or not)."""
        on_message = worker.client.on_message

        def handled(client, userdata, msg):
            on_message(client, userdata, msg)
            self.seen.add(digest(msg.payload))
        worker.client.on_message = handled

    def settle(self):
        if not settle(self.meters):
            self.pacing["settle_over"] += 1
        self.pace()

    def pace(self):
        """Simulated time does not move on while the head-end lags: until every message the
        broker acknowledged to a meter has reached a head-end worker (at most PACE_S real
        seconds; then those are given up on and counted). Without this, a real-time stall
        of the broker or the head-end (a busy machine) is stretched by the speed-up (1 real
        s = 4 simulated min at 250 x) and shows up as late values the meters did not cause."""
        if not self.unseen or self.broker_down_until is not None:
            return
        self.pacing["pace_waits"] += 1
        t0 = time.monotonic()
        while True:
            self.unseen = {d for d in self.unseen if d not in self.seen}
            if not self.unseen:
                break
            if time.monotonic() - t0 > PACE_S:
                self.pacing["pace_over"] += 1
                self.pacing["pace_abandoned"] += len(self.unseen)
                self.unseen = set()
                break
            time.sleep(0.0002)
        self.pacing["paced_real_s"] += time.monotonic() - t0

    def _inject(self, faults):
        now = self.wall_s
        while faults and self.schedule and self.schedule[0][0] <= now:
            _, action, i, dur = self.schedule.pop(0)
            fm = self.meters[i]
            self.injected[action] += 1
            if action == "uplink cut" and fm.cut_until is None:
                fm.cut_until = now + dur
                if fm.link is not None:
                    fm.link.set_cut(True)
            elif action in ("meter outage", "power cut") and fm.on:
                fm.die(last_gasp=action == "power cut")
                fm.off_until = now + dur
            elif action == "broker restart" and self.broker_down_until is None:
                for w in self.workers:
                    w.subscribed.clear()
                self.broker.stop()
                self.broker_down_until = now + dur
            else:
                self.injected[action] -= 1  # overlapping with one already running
        for fm in self.meters:
            if fm.cut_until is not None and now >= fm.cut_until:
                fm.cut_until = None
                if fm.link is not None:
                    fm.link.set_cut(False)
            if fm.off_until is not None and now >= fm.off_until:
                fm.off_until = None
                fm.build(now)
        if self.broker_down_until is not None and now >= self.broker_down_until:
            self.broker_down_until = None
            self.broker.start()
            # the head-end is back within a second of the broker (paho's reconnect), before
            # the meters' back-off lets them in: in simulated time, no time passes meanwhile
            for w in self.workers:
                w.subscribed.wait(10)

    def _realtime(self):
        """PUSH the 5-minute real-time report to the subset once each is online."""
        for fm in self.meters:
            if not fm.realtime or fm.mid in self.rt_since:
                continue
            p = self.push_pending.get(fm.mid)
            if p is not None:
                r = self.cmd.result(p)
                if r is not None and r["status"] == 0:
                    self.rt_since[fm.mid] = self.wall_s
                elif r is not None or self.wall_s - p.sent_at > 300:
                    del self.push_pending[fm.mid]  # refused or lost: ask again
                continue
            if fm.up() and self.broker_down_until is None:
                self.push_pending[fm.mid] = self.cmd.send(
                    fm.mid, lambda he, e: he.push(5, True, 5, 60, 3, 30, 1, e))

    def _backfill(self):
        """Gaps against what each meter captured, asked for with RANGE by interval number,
        one request per meter at a time (a meter answers one range read at a time: E_STATE
        meanwhile, asked again); the loop keeps running (no faults) while answers come."""
        queue = {}  # meter -> [(series, a, b, tries)]
        asked = 0
        for fm in self.meters:
            for series in (30, 5):
                have = {r[0] for r in self.store.rows(
                    "SELECT k FROM series_values WHERE meter = ? AND series = ?",
                    (fm.mid.decode(), series))}
                missing = sorted(set(fm.truth[series]) - have)
                asked += len(missing)
                for a, b in _ranges(missing):
                    queue.setdefault(fm, []).append((series, a, b, 0))
        inflight = {}  # meter -> (Pending, job)
        t_end = self.wall_s + 2 * 3600
        while (queue or inflight) and self.wall_s < t_end:
            for fm in list(queue):
                if fm in inflight or not fm.up():
                    continue
                job = queue[fm].pop(0)
                if not queue[fm]:
                    del queue[fm]
                series, a, b, _ = job
                inflight[fm] = (self.cmd.send(fm.mid, lambda he, e, s=series, a=a, b=b:
                                              he.range_read(s, 1, a, b, e)), job)
            for _ in range(10):
                for fm in self.meters:
                    if fm.on:
                        fm.tick()
                self.wall_s += 1
                self.settle()
            for fm, (p, job) in list(inflight.items()):
                r = self.cmd.result(p)
                if r is None and self.wall_s - p.sent_at < 120:
                    continue
                del inflight[fm]
                if (r is None or r["status"] != 0) and job[3] < 8:  # busy or lost: again
                    queue.setdefault(fm, []).append(job[:3] + (job[3] + 1,))
        for _ in range(300):  # the last answers, their PUBACKs and the head-end's inserts
            for fm in self.meters:
                if fm.on:
                    fm.tick()
            self.wall_s += 1
            self.settle()
        time.sleep(0.5)
        return asked

    # ---- the table
    def table(self):
        st = self.store
        rows30 = rows5 = ok30 = ok5 = 0
        final = {5: [0, 0], 30: [0, 0]}
        differ = 0
        for fm in self.meters:
            mid = fm.mid.decode()
            for series in (30, 5):
                got = {r[0]: (r[1], r[2], r[7]) for r in st.series(mid, series)}
                truth = fm.truth[series]
                for k, vals in truth.items():
                    boundary = k * series * 60
                    g = got.get(k)
                    final[series][1] += 1
                    if g is not None:
                        final[series][0] += 1
                        if (g[0], g[1]) != vals:
                            differ += 1
                    if series == 30 and boundary <= self.end_s - 3600:
                        rows30 += 1
                        ok30 += g is not None and g[2] - boundary <= 3600
                    since = self.rt_since.get(fm.mid)
                    if (series == 5 and fm.realtime and since is not None and
                            boundary >= since + 300 and boundary <= self.end_s - 600):
                        rows5 += 1
                        ok5 += g is not None and g[2] - boundary <= 600
        dup_rows = st.one("SELECT COUNT(*) FROM (SELECT meter, series, k FROM series_values "
                          "GROUP BY meter, series, k HAVING COUNT(*) > 1) d")[0]
        c = st.counters()
        sessions = sum(fm.sessions() for fm in self.meters)
        handled = sum(w.handled for w in self.workers)

        def pct(a, b):
            return 100.0 * a / b if b else 100.0
        coll30, coll5 = pct(*final[30]), pct(*final[5])
        res = {
            "meters": len(self.meters), "hours": self.a.hours, "speed_target": self.a.speed,
            "speed_achieved": round(self.steps / self.run_real_s, 1),
            "real_s": round(self.total_real_s, 1),
            "r30": round(pct(ok30, rows30), 3), "r30_n": rows30,
            "r5": round(pct(ok5, rows5), 3), "r5_n": rows5,
            "realtime_meters": len(self.rt_since),
            "final30": round(coll30, 3), "final30_n": final[30][1],
            "final5": round(coll5, 3), "final5_n": final[5][1],
            "backfill_asked": self.backfilled, "differ": differ, "dup_rows": dup_rows,
            "dup_discarded": c.get("values_duplicate", 0) + c.get("events_duplicate", 0),
            "conflicts": c.get("values_conflict", 0),
            "rejected": sum(v for k, v in c.items() if k.startswith("rejected_")),
            "handled": handled, "msg_per_s": round(handled / self.total_real_s, 1),
            "msg_per_sim_h": round(handled / (self.a.hours + self.a.drain_hours), 1),
            "sessions": sessions, "peak_connected": self.peak_up,
            "broker_starts": self.broker.starts,
            "injected": dict(self.injected),
            "last_gasp_alarms": c.get("alarm_last_gasp", 0),
            "restorations": c.get("alarm_restored", 0),
            "rollbacks": c.get("rollback", 0),
            "wills": c.get("wills", 0),
            "pacing": dict(self.pacing, paced_real_s=round(self.pacing["paced_real_s"], 1)),
            "meter_resent": sum(fm.stat("resent") for fm in self.meters),
            "meter_stalled_drops": sum(fm.stat("drops_stalled") for fm in self.meters),
        }
        return res

    def close(self):
        sys.setswitchinterval(self._switch)
        for w in self.workers:
            w.stop()
        self.cmd.close()
        self.store.close()
        for fm in self.meters:
            if fm.on:
                fm.link.inner.close()
        self.broker.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _ranges(ks):
    out = []
    for k in ks:
        if out and out[-1][1] == k - 1 and k - out[-1][0] < 24 * 12:
            out[-1][1] = k
        else:
            out.append([k, k])
    return [tuple(r) for r in out]


def format_table(r):
    def ok(v, t):
        return "ok" if v >= t else "MISSED"
    lines = [
        "fleet: %d meters x %g simulated h (+ drain), %g x target, %.0f x achieved, %.0f s real"
        % (r["meters"], r["hours"], r["speed_target"], r["speed_achieved"], r["real_s"]),
        "faults injected: " + ", ".join("%s %d" % kv for kv in r["injected"].items()),
        "%-36s %10s %10s %8s" % ("service level", "measured", "target", ""),
        "%-36s %9.2f%% %9s%% %8s   (n=%d)" % ("30-min values within 60 min", r["r30"], "99.7",
                                             ok(r["r30"], 99.7), r["r30_n"]),
        "%-36s %9.2f%% %9s%% %8s   (n=%d, %d meters)" % (
            "5-min RT values within 10 min", r["r5"], "90", ok(r["r5"], 90.0), r["r5_n"],
            r["realtime_meters"]),
        "%-36s %9.2f%% %9s%% %8s   (n=%d)" % ("final collection 30-min", r["final30"], "100",
                                             ok(r["final30"], 100.0), r["final30_n"]),
        "%-36s %9.2f%% %9s%% %8s   (n=%d)" % ("final collection 5-min", r["final5"], "100",
                                             ok(r["final5"], 100.0), r["final5_n"]),
        "%-36s %10d %10d %8s" % ("values differing from the meter", r["differ"], 0,
                                 ok(-r["differ"], 0)),
        "%-36s %10d %10d %8s   (copies discarded %d, conflicts %d)" % (
            "duplicates stored", r["dup_rows"], 0, ok(-r["dup_rows"], 0), r["dup_discarded"],
            r["conflicts"]),
        "%-36s %10.1f %10s %8s   (%d messages, %.0f per simulated h)" % (
            "messages / s (real)", r["msg_per_s"], "-", "", r["handled"], r["msg_per_sim_h"]),
        "%-36s %10d %10s %8s   (peak connected %d, broker starts %d)" % (
            "broker connections (meter sessions)", r["sessions"], "-", "",
            r["peak_connected"], r["broker_starts"]),
        "alarms: Last Gasp %d, restoration notices %d, wills %d, rollbacks %d, rejected %d, "
        "backfill asked %d values" % (r["last_gasp_alarms"], r["restorations"], r["wills"],
                                      r["rollbacks"], r["rejected"], r["backfill_asked"]),
        "meters: %d resends, %d sessions dropped after their retries (E_STALLED)" % (
            r["meter_resent"], r["meter_stalled_drops"]),
        "pacing: settle over budget %d s, head-end waits %d (over %.0f s: %d, %d messages given "
        "up), %.1f real s waited" % (
            r["pacing"]["settle_over"], r["pacing"]["pace_waits"], PACE_S,
            r["pacing"]["pace_over"], r["pacing"]["pace_abandoned"],
            r["pacing"]["paced_real_s"]),
    ]
    return "\n".join(lines)


def targets_met(r):
    return (r["r30"] >= TARGETS["r30"] and r["r5"] >= TARGETS["r5"] and
            r["final30"] >= TARGETS["final"] and r["final5"] >= TARGETS["final"] and
            r["dup_rows"] == 0 and r["differ"] == 0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--meters", type=int, default=5)
    p.add_argument("--hours", type=float, default=6, help="simulated hours with faults")
    p.add_argument("--drain-hours", type=float, default=1.0,
                   help="simulated hours without faults before the final collection")
    p.add_argument("--speed", type=float, default=0,
                   help="cap: simulated seconds per real second (0: as fast as the meters "
                   "and the broker go)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--db", help="store: SQLite path or postgresql:// URL (default: a tmp "
                   "SQLite file)")
    p.add_argument("--workers", type=int, default=2, help="head-end workers (shared group)")
    p.add_argument("--realtime-share", type=float, default=0.03)
    p.add_argument("--cuts", type=int)
    p.add_argument("--long-cuts", type=int)
    p.add_argument("--outages", type=int)
    p.add_argument("--power-cuts", type=int)
    p.add_argument("--restarts", type=int)
    p.add_argument("--json", help="write the result to this file")
    p.add_argument("--progress", action="store_true", help="a line per simulated hour")
    p.add_argument("--verbose", action="store_true", help="print the head-end's alarm lines")
    return p.parse_args(argv)


def run(argv=None, out=print):
    a = parse_args(argv)
    fleet = Fleet(a, out)
    try:
        fleet.run()
        r = fleet.table()
        r["alarm_lines"] = fleet.alarm_lines[:50]
    finally:
        fleet.close()
    return r


def main(argv=None):
    a = parse_args(argv)
    r = run(argv)
    print(format_table(r))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0 if targets_met(r) else 1


if __name__ == "__main__":
    sys.exit(main())
