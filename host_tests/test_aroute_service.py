"""The A-route service's outbox logic against a scripted MQTT client (deterministic): cursors
advance only on PUBACK and contiguously, backfill is rate limited, windowed, flagged and
oldest first, live pushes go first, resends and a stale session, QoS 0, retention jumps,
persistence across a power cut, the alarm register and its filter, downlink bad input.
The real broker and paho peer are in test_aroute_e2e.py."""

import hashlib
import hmac
import struct
import types
import zlib

import pytest

from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from hosthal.loads import ConstantLoad
from hosthal.pins import FakeRelay, ScriptedPowerGood
from meter import events as ev
from meter.aroute import alarmreg, wire
from meter.aroute.outbox import S_EVENTS, S_FIVE, S_HALF, S_MINUTE
from meter.aroute.service import ARoute, BF_WINDOW
from meter.control import status
from meter.assembly import build_meter
from meter.storage.persist import NULL_SAVER
from meter.storage.records import KIND_CONFIG, KIND_OUTBOX
from headend import HeadEnd
from hosthal.radio import MASTER, MemoryModule

KEY = b"aroute-service-test-key-0123456!"
MID = b"SVC00001"
DAY0_S = 9_000 * 86_400


class FakeClient:
    """The mqtt.Client API as the service uses it; the test acknowledges by hand."""

    def __init__(self):
        self.sent = []  # (mid, topic, payload bytes, qos)
        self.subs = []
        self.inflight = 0
        self.window = 8
        self.full = False
        self._mid = 0
        self.on_puback = self.on_message = None

    def publish(self, topic, payload, qos=1, retain=False):
        if self.full or (qos and self.inflight >= self.window):
            return -1
        mid = 0
        if qos:
            self._mid += 1
            mid = self._mid
            self.inflight += 1
        self.sent.append((mid, bytes(topic), bytes(payload), qos))
        return mid

    def subscribe(self, topic, qos=1):
        self.subs.append(bytes(topic))
        return 1

    def ack(self, mid):
        self.inflight -= 1
        self.on_puback(mid)

    def ack_all(self):
        while self._done < len(self.sent):
            mid, _, _, q = self.sent[self._done]
            self._done += 1
            if q and mid not in self.acked:
                self.acked.add(mid)
                self.ack(mid)

    _done = 0

    acked = None

    def lost(self):
        self.inflight = 0
        self._done = len(self.sent)  # what was in flight is never acknowledged now


class FakeSession:
    def __init__(self, client):
        self.client = client
        self.up = False
        self.closed = 0
        self.resumed = 0
        self.dropped = 0
        self.backoff = types.SimpleNamespace(next_delay=lambda: 1000)

    def poll(self, now_ms):
        return self.up

    def go_up(self):
        self.up = True
        self.on_up()

    def go_down(self):
        self.up = False
        self.client.lost()
        self.on_down("E_LINK")

    def close(self):
        if self.up:
            self.go_down()
        self.closed += 1

    def resume(self, now_ms, delay_ms=0):
        self.resumed += 1

    def drop(self, now_ms, code):
        if self.up:
            self.go_down()
        self.dropped += 1


class Rig:
    def __init__(self, flash=None, start_s=DAY0_S + 8 * 3600, clock=None, radio=None):
        self.clock = clock or VirtualClock(wall_s=start_s)
        self.flash = flash if flash is not None else NorFlash(sectors=64)
        hal = HostHal(self.clock, ConstantLoad(1000), power_good=ScriptedPowerGood(1),
                      relay=FakeRelay(), flash=self.flash, key=KEY, meter_id=MID,
                      radio=radio, broute_key=MASTER if radio is not None else None)
        hal.random = lambda n: b"\x5a" * n  # a fixed per-meter push offset: reproducible
        self.hal = hal
        self.m = build_meter(hal, key=KEY)
        m = self.m
        self.c = FakeClient()
        self.c.acked = set()
        self.s = FakeSession(self.c)
        core = types.SimpleNamespace(regs=m.regs, metering=m.metering, events=m.events,
                                     capture=m.capture)
        st = m.store
        self.a = ARoute(MID, m.lastgasp.alarm.mac, self.s, self.c, self.clock, core, st,
                        st.saver(KIND_OUTBOX) if st else NULL_SAVER,
                        st.saver(KIND_CONFIG) if st else NULL_SAVER, hal.random)
        m.aroute = self.a
        m.uplink = self.a
        m.lastgasp.platform.uplink = self.a
        self.a.bind(m)
        m.boot()

    def run(self, seconds, ack=True):
        for _ in range(seconds):
            self.m.step()
            self.m.serve()
            if ack:
                self.c.ack_all()
                self.m.serve()
            self.clock.advance(1000)

    def messages(self, topic_end):
        return [(mid, p) for mid, t, p, _ in self.c.sent if t.endswith(topic_end)]


def series(p):
    """Decode a series message (docs/aroute.md) after checking its HMAC."""
    assert hmac.compare_digest(hmac.new(KEY, p[:-32], hashlib.sha256).digest(), p[-32:])
    ver, typ, mid, flags, s, k0, n, cols, unit = struct.unpack_from(">BB8sBBIBBB", p, 0)
    assert (ver, typ, mid) == (0xA1, 0x10, MID) and len(p) == 51 + 4 * cols * n
    vals = [struct.unpack_from(">%di" % cols, p, 19 + 4 * cols * i) for i in range(n)]
    return s, k0, n, flags, vals


def test_no_message_before_connack_and_birth_first_after_it():
    r = Rig()
    r.run(120)
    assert r.c.sent == []
    r.s.go_up()
    r.run(1, ack=False)
    assert r.c.sent[0][1].endswith(b"/up/birth") and r.c.subs == [r.a.t_down]
    assert r.c.sent[0][1] == b"am/v1/" + wire.shard(MID) + b"/" + MID + b"/up/birth"
    assert wire.shard(MID) == b"%02x" % (zlib.crc32(MID) & 0xFF)  # the contract's shard


def test_cursor_advances_only_on_puback_and_only_contiguously():
    r = Rig()
    r.run(3 * 3600)  # offline for three hours: everything waits in the rings
    r.s.go_up()
    r.run(1, ack=False)
    cur0 = list(r.a.box.cursor)  # the connect moved them to the oldest held items
    assert cur0 == [r.a.box.oldest(s) for s in range(4)]
    bf = [(mid, series(p)) for mid, p in r.messages(b"/up/series")]
    bf = [(mid, d) for mid, d in bf if d[3] & wire.F_BACKFILL]  # (the live ones go first)
    assert bf
    assert r.a.box.cursor == cur0  # nothing acknowledged yet
    # acknowledge the second backfill message only: the cursor may not pass the first
    idx = {30: S_HALF, 5: S_FIVE, 1: S_MINUTE}
    same = [(mid, k0, n) for mid, (s, k0, n, _, _) in bf if s == bf[0][1][0]]
    if len(same) >= 2:  # two messages of one series: acknowledge the later one first
        (m1, k1, n1), (m2, k2, n2) = same[0], same[1]
        s = idx[bf[0][1][0]]
        r.c.ack(m2)
        assert r.a.box.cursor[s] == cur0[s]  # a gap before it: the cursor stays
        r.c.ack(m1)
        assert r.a.box.cursor[s] == k2 + n2  # both, contiguous
    else:
        m1, (s1, k1, n1, _, _) = bf[0]
        r.c.ack(m1)
        assert r.a.box.cursor[idx[s1]] >= k1 + n1


def test_backfill_is_oldest_first_windowed_and_rate_limited_then_complete():
    r = Rig()
    r.run(6 * 3600)
    r.s.go_up()
    times = []
    real = r.c.publish

    def timed(topic, payload, qos=1, retain=False):
        mid = real(topic, payload, qos, retain)
        if mid >= 0:
            times.append((r.clock.ticks_ms(), bytes(payload)))
        return mid

    r.c.publish = timed
    r.c.window = 64  # a roomy client: the A-route's own backfill window is what binds
    # no acknowledgements: at most BF_WINDOW backfill messages go out
    r.run(20, ack=False)
    bf = [p for _, p in times if p[1] == 0x10 and p[10] & wire.F_BACKFILL]
    assert len(bf) == BF_WINDOW
    r.run(600)
    bf = [(t, p) for t, p in times if p[1] in (0x10, 0x11) and p[10] & wire.F_BACKFILL]
    # at most 2 per second (BF_RATE), measured on the virtual clock
    for i in range(2, len(bf)):
        assert bf[i][0] - bf[i - 2][0] >= 500
    # oldest first within each series
    by = {}
    for _, p in bf:
        if p[1] == 0x10:
            s, k0, n, _, _ = series(p)
            by.setdefault(s, []).append(k0)
    for s, ks in by.items():
        assert ks == sorted(ks), s
    # complete: every stream acknowledged up to the newest item
    for s in (S_HALF, S_FIVE, S_MINUTE, S_EVENTS):
        assert r.a.backlog(s) <= 30  # only the current push period may wait


def test_live_push_goes_before_backfill_and_every_value_arrives_once_acknowledged():
    r = Rig(start_s=DAY0_S + 8 * 3600)
    r.run(12 * 3600)  # 12 h offline: 144 five-minute values to backfill
    # the 5-minute real-time push, delay 0: due 3 s after every 5-minute boundary
    r.a.push.set(S_FIVE, 1, 5, 0, 3, 30, 1)
    # come up 2 s before a 5-minute boundary
    while not (r.clock.wall_minute() % 5 == 4 and r.clock.wall_second() == 58):
        r.run(1)
    r.s.go_up()
    r.run(120)
    fives = [series(p) for _, p in r.messages(b"/up/series") if p[11] == 5]
    live = [i for i, (_, _, _, f, _) in enumerate(fives) if not f & wire.F_BACKFILL]
    back = [i for i, (_, _, _, f, _) in enumerate(fives) if f & wire.F_BACKFILL]
    assert live and back and live[0] < back[-1]  # a live push interleaved with the backfill
    got = {}
    for s, k0, n, f, vals in fives:
        for i in range(n):
            got[k0 + i] = vals[i]
    ring = r.m.capture.five
    for k in range(r.a.box.oldest(S_FIVE), r.a.box.next_item(S_FIVE)):
        slot = ring.slot(k * 5)
        want = tuple(ring.cols[c][slot] for c in range(5)) if slot >= 0 else (-1,) * 5
        assert got.get(k) == want, k


def test_unacknowledged_message_is_resent_then_a_stale_session_is_dropped():
    r = Rig()
    r.run(3 * 3600)
    r.c.window = 64  # room for the resends beside the unacknowledged originals
    r.s.go_up()
    r.run(40, ack=False)  # back-off 30 s: the first resend
    assert r.a.resent >= 1
    r.run(200, ack=False)  # retries 3 spent
    assert r.a.drops_stalled >= 1 and r.s.dropped == r.a.drops_stalled and r.s.closed == 0
    assert r.a.inflight() == 0


def test_qos0_report_advances_without_puback():
    r = Rig()
    for s in (S_HALF, S_FIVE, S_MINUTE):
        r.a.push.set(s, 1, 30, 0, 3, 30, 0)
    r.a.push.set(S_EVENTS, 1, 0, 0, 3, 30, 0)
    r.s.go_up()
    r.run(3700, ack=False)
    halves = [m for m in r.c.sent if m[2][1] == 0x10 and m[2][11] == 30]
    assert halves and all(q == 0 for _, _, _, q in halves)
    assert r.a.backlog(S_HALF) == 0 and r.a.box.cursor[S_HALF] == r.a.box.next_item(S_HALF)


def test_cursor_behind_retention_jumps_to_oldest_held_and_counts_the_gap():
    r = Rig()
    r.s.go_up()
    r.run(900)
    r.s.go_down()
    r.run(3 * 3600)  # 1-minute ring holds 60 minutes only
    r.s.go_up()
    r.run(1, ack=False)
    assert r.a.box.cursor[S_MINUTE] == r.a.box.oldest(S_MINUTE)
    assert r.a.box.lost[S_MINUTE] > 60


def test_power_cut_mid_backfill_resends_from_the_saved_cursor_and_loses_nothing():
    flash = NorFlash(sectors=64)
    r = Rig(flash=flash)
    r.run(5 * 3600)
    r.s.go_up()
    r.run(90)  # part of the backfill acknowledged, cursors saved once a minute
    acked = {}
    for mid, t, p, _ in r.c.sent:
        if p[1] == 0x10 and mid in r.c.acked:
            s, k0, n, _, vals = series(p)
            for i in range(n):
                acked[(s, k0 + i)] = vals[i]
    # power cut: no power_down; a new meter on the same flash, its clock a minute on
    clock = VirtualClock(wall_s=r.clock.wall_seconds() + 60)
    r2 = Rig(flash=flash, clock=clock)
    assert r2.a.box.boots == 2
    r2.s.go_up()
    r2.run(1200)
    got = dict(acked)
    for mid, t, p, _ in r2.c.sent:
        if p[1] == 0x10:
            s, k0, n, _, vals = series(p)
            for i in range(n):
                assert got.setdefault((s, k0 + i), vals[i]) == vals[i]  # duplicates equal
    for s, idx in ((5, S_FIVE), (30, S_HALF)):
        for k in range(r2.a.box.oldest(idx), r2.a.box.next_item(idx) - 6):
            assert (s, k) in got, (s, k)


def test_alarm_register_sets_bits_from_events_and_the_filter_holds_alarms_back():
    r = Rig()
    r.s.go_up()
    r.run(2)
    r.m.note(ev.TASK_FAILED, 3, 1)
    r.run(1)
    alarms = [p for _, p in r.messages(b"/up/alarm")]
    assert alarms and alarms[-1][0] == 0x03 and alarms[-1][1] == ev.TASK_FAILED
    assert r.a.reg.register & alarmreg.TASK_FAILED
    r.a.reg.filter = alarmreg.ALL & ~alarmreg.TASK_FAILED
    n = len(alarms)
    r.m.note(ev.TASK_FAILED, 3, 2)
    r.run(1)
    assert len(r.messages(b"/up/alarm")) == n
    r.a.reg.filter = alarmreg.ALL & ~alarmreg.LAST_GASP_TEST
    r.a.lg_test(r.m.now.read(r.clock))
    assert len(r.messages(b"/up/alarm")) == n and r.a.reg.filtered >= 2
    assert r.a.reg.register & alarmreg.LAST_GASP_TEST


def test_downlink_bad_input_is_counted_and_changes_nothing():
    r = Rig()
    r.s.go_up()
    r.run(1)
    r.c.on_message(memoryview(b"am/v1/00/OTHER001/down"), memoryview(b"x" * 10), 1, 0)
    r.c.on_message(memoryview(r.a.t_down), memoryview(b"x" * 300), 1, 0)
    for _ in range(5):
        r.c.on_message(memoryview(r.a.t_down), memoryview(b"\x01" * 60), 1, 0)
    assert (r.a.unknown_topic, r.a.oversize, r.a.flooded) == (1, 1, 3)
    r.run(1)
    resp = [p for _, p in r.messages(b"/up/resp")]
    assert len(resp) == 2 and all(p[22] != 0 for p in resp)  # E_MALFORMED answers


def test_seals_differ_between_messages():
    r = Rig()
    r.s.go_up()
    r.run(3 * 3600)
    pay = [p for _, _, p, _ in r.c.sent]
    assert len(set(p[-32:] for p in pay)) == len(pay) and len(pay) > 20


@pytest.mark.parametrize("idle_s", [5])
def test_idle_poll_publishes_nothing_and_keeps_the_cursors(idle_s):
    r = Rig()
    r.s.go_up()
    r.run(60)
    n = len(r.c.sent)
    cur = list(r.a.box.cursor)
    # mid-period: no push due, nothing to backfill
    r.run(idle_s)
    assert len(r.c.sent) == n and r.a.box.cursor == cur


def test_push_settings_and_a_broute_key_by_command_survive_a_reboot():
    flash = NorFlash(sectors=64)
    r = Rig(flash=flash, radio=MemoryModule())
    rnd = r.a.push.rnd
    r.s.go_up()
    r.run(2)
    he = HeadEnd(MID, KEY)
    exp = r.clock.wall_minute() + 30

    def request(req):
        n = len(r.messages(b"/up/resp"))
        r.c.on_message(memoryview(r.a.t_down), memoryview(req), 1, 0)
        r.run(1)
        resp = he.parse(r.messages(b"/up/resp")[n][1], check_tag=False)
        return resp

    resp = request(he.build(0x23, struct.pack(">BBHHBHB", 5, 1, 5, 100, 4, 20, 1), exp))
    assert resp.status == 0 and resp.data == struct.pack(">BBHHBHB", 5, 1, 5, 100, 4, 20, 1)
    new = bytes(range(16))
    counter = he.counter + 1
    pad = hmac.new(KEY, b"BRK" + struct.pack(">I", counter), hashlib.sha256).digest()[:16]
    resp = request(he.build(0x25, bytes(a ^ b for a, b in zip(new, pad)), exp, counter))
    from meter.storage.journal import crc32

    assert resp.status == 0 and resp.data == struct.pack(">I", crc32(new))
    assert r.m.broute.auth.master_key == new
    # a power cut, then the same flash: the settings, the offset and the key are back
    r2 = Rig(flash=flash, clock=VirtualClock(wall_s=r.clock.wall_seconds() + 5),
             radio=MemoryModule())
    p = r2.a.push
    assert (p.on[S_FIVE], p.period[S_FIVE], p.delay_max[S_FIVE], p.retries[S_FIVE],
            p.backoff_ms[S_FIVE], p.rnd) == (1, 5, 100, 4, 20_000, rnd)
    assert r2.m.broute.auth.master_key == new


def test_range_reads_serve_what_is_held_and_say_what_is_not():
    r = Rig()
    r.s.go_up()
    r.run(3 * 3600)
    now = r.m.now.read(r.clock)
    hw = r.m.capture.high_water
    arg, st, data = r.a.command(0x21, (5, 0, hw - 60, hw), now)  # by wall minutes
    first, last, n = struct.unpack(">IIH", data)
    lo, hi = -(-(hw - 60) // 5), hw // 5  # the intervals ending inside [hw - 60, hw]
    assert st == 0 and last == hi and n == hi - lo + 1
    r.run(15)
    ans = [series(p) for _, p in r.messages(b"/up/series") if p[10] & wire.F_ANSWER]
    assert sum(n for _, _, n, _, _ in ans) == hi - lo + 1 and ans[0][1] == lo
    arg, st, data = r.a.command(0x21, (1, 1, 0, 1000), now)  # long gone
    first, last, n = struct.unpack(">IIH", data)
    assert st == 0 and n == 0 and first == r.a.box.oldest(S_MINUTE)
    assert r.a.command(0x21, (7, 1, 0, 10), now)[1] != 0  # no such series: E_RANGE
    arg, st, data = r.a.command(0x22, (0, 1000), now)
    first, newest, n = struct.unpack(">IIH", data)
    assert st == 0 and n == r.m.events.seq


def test_a_stale_session_is_dropped_even_when_the_window_is_full_of_originals():
    r = Rig()
    r.run(3 * 3600)
    r.s.go_up()
    r.run(300, ack=False)  # the client's window of 8 full: resends cannot go, tries count
    assert r.c.inflight == 8 or r.a.drops_stalled >= 1
    assert r.a.drops_stalled >= 1 and not r.s.up


def test_a_report_switched_off_sends_nothing_and_its_cursor_waits():
    r = Rig()
    r.a.push.set(S_MINUTE, 0, 30, 0, 3, 30, 1)  # 1-minute values off
    r.s.go_up()
    r.run(1900)
    assert not [p for _, p in r.messages(b"/up/series") if p[11] == 1]
    assert r.a.backlog(S_MINUTE) > 30 and r.a.backlog(S_HALF) <= 1
    r.a.push.set(S_MINUTE, 1, 30, 0, 3, 30, 1)  # on again: sent at the next connect
    r.s.go_down()
    r.s.go_up()
    r.run(30)
    assert [p for _, p in r.messages(b"/up/series") if p[11] == 1]
    assert r.a.backlog(S_MINUTE) <= 30


def test_a_fresh_meter_backfills_no_values_from_before_its_first_capture():
    # The journal's half-hour blocks start at 00:00: the intervals of the first block before
    # the meter's first capture were never values, so the first backfill does not send them.
    r = Rig(start_s=DAY0_S + 8 * 3600 + 7 * 60)
    r.run(3 * 3600)
    r.s.go_up()
    for _ in range(120):
        r.run(1)
    halves = [series(p) for _, p in r.messages(b"/up/series")]
    halves = [d for d in halves if d[0] == 30]
    assert halves
    first = min(k0 for _, k0, _, _, _ in halves)
    assert first * 30 == r.m.capture.half.stamp[r.m.capture.half.slot(first * 30)]
    assert all(v[0] >= 0 for _, _, _, _, vals in halves for v in vals)  # no -1 sent


def test_a_broker_redelivered_request_gets_its_response_again_not_a_replay_alarm():
    # the meter executed a request but its PUBACK was lost with the link: the broker (a
    # persistent session) delivers it again with DUP set at the next connection; the meter
    # sends the same signed response again instead of answering E_REPLAY and raising
    # TAMPER_AUTH, and executes nothing twice; a copy without DUP (someone republishing
    # it) is still a replay
    r = Rig()
    r.s.go_up()
    r.run(2)
    he = HeadEnd(MID, KEY)
    req = he.build(0x23, struct.pack(">BBHHBHB", 5, 1, 5, 100, 4, 20, 1),
                   r.clock.wall_minute() + 30)

    def deliver(dup):
        n = len(r.messages(b"/up/resp"))
        r.c.on_message(memoryview(r.a.t_down), memoryview(req), 1, dup)
        r.run(1)
        return [p for _, p in r.messages(b"/up/resp")[n:]]

    def tamper():
        return sum(1 for i in range(r.m.events.n)
                   if r.m.events.code[i] & 0xFF == ev.TAMPER_AUTH)

    first = deliver(0)
    assert len(first) == 1 and he.parse(first[0], check_tag=False).status == 0
    counter, commands, t0 = r.m.commands.counter, r.a.commands, tamper()
    r.s.go_down()
    r.s.go_up()
    again = deliver(1)
    assert again == first  # the same signed response, byte for byte
    assert (r.m.commands.counter, r.a.commands, tamper()) == (counter, commands, t0)
    assert r.a.redelivered == 1
    forged = deliver(0)
    assert len(forged) == 1 and he.parse(forged[0], check_tag=False).status != 0
    assert tamper() == t0 + 1


def test_a_redelivery_after_a_reboot_is_redelivered_not_a_replay_alarm():
    # the meter executed a request, then rebooted before its PUBACK left (the response
    # cache is RAM only): the broker's DUP copy is answered E_REDELIVERED, audited, with no
    # TAMPER_AUTH and nothing run again; a DUP copy of an older request is still E_REPLAY
    flash = NorFlash(sectors=64)
    r = Rig(flash=flash)
    r.s.go_up()
    r.run(2)
    he = HeadEnd(MID, KEY)

    def push_req(period):
        return he.build(0x23, struct.pack(">BBHHBHB", 5, 1, period, 100, 4, 20, 1),
                        r.clock.wall_minute() + 30)

    def deliver(rig, req, dup):
        n = len(rig.messages(b"/up/resp"))
        rig.c.on_message(memoryview(rig.a.t_down), memoryview(req), 1, dup)
        rig.run(1)
        out = [he.parse(p, check_tag=False) for _, p in rig.messages(b"/up/resp")[n:]]
        assert len(out) == 1
        return out[0]

    def tamper(rig):
        return sum(1 for i in range(rig.m.events.n)
                   if rig.m.events.code[i] & 0xFF == ev.TAMPER_AUTH)

    older, last = push_req(10), push_req(15)
    assert deliver(r, older, 0).status == 0
    assert deliver(r, last, 0).status == 0
    r.run(61)  # the counters and the push settings reach flash
    r = Rig(flash=flash, clock=VirtualClock(wall_s=r.clock.wall_seconds() + 60))
    r.s.go_up()
    r.run(2)
    counter, t0 = r.m.commands.counter, tamper(r)
    period = r.a.push.period[1]
    assert period == 15
    got = deliver(r, last, 1)
    assert got.status == status.E_REDELIVERED
    assert (r.m.commands.counter, tamper(r), r.a.push.period[1]) == (counter, t0, period)
    assert r.m.commands.audit.get(0)[5] == status.E_REDELIVERED  # audited
    assert deliver(r, older, 1).status == status.E_REPLAY  # not the last one: a replay
    assert tamper(r) == t0 + 1
    assert deliver(r, last, 0).status == status.E_REPLAY  # no DUP: someone else's copy
    assert tamper(r) == t0 + 2


def test_alarms_and_drills_after_a_reboot_are_new_to_the_head_end(tmp_path):
    # the head-end keeps alarms by (meter, kind, seq): the first alarm and the first LG_TEST
    # drill after a reboot (a crash: nothing persisted since) must not reuse a seq of the
    # boot before, or the head-end discards them as copies and the operator never sees them
    import headend_db
    import headend_mqtt as H

    store = headend_db.open_store(str(tmp_path / "he.db"))
    store.register(MID, KEY, 0.0)
    lines = []
    ing = H.Ingest(store, lambda: 0.0, lines.append)
    flash = NorFlash(sectors=64)
    r = Rig(flash=flash)
    outcomes = []
    for boot in range(2):
        r.s.go_up()
        r.run(2)
        n = len(r.messages(b"/up/alarm"))
        r.m.note(ev.TASK_FAILED, 3, boot)
        r.run(1)
        r.a.lg_test(r.m.now.read(r.clock))
        sent = [p for _, p in r.messages(b"/up/alarm")][n:]
        assert len(sent) == 2
        topic = r.a.topics["alarm"].decode()
        outcomes += [ing.handle(topic, p) for p in sent]
        # a crash: the same flash, a new meter, its clock a minute on
        r = Rig(flash=flash, clock=VirtualClock(wall_s=r.clock.wall_seconds() + 60))
    assert outcomes == ["stored"] * 4, outcomes
    assert sum(1 for x in lines if x.startswith("TEST ")) == 2
