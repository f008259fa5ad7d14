# The A-route service: the meter's MQTT session to the head-end (docs/aroute.md).
#
# ARoute owns the MQTT Session and Client (meter.aroute.session / mqtt: sans-IO, driven by
# poll()), and is the meter's meter.hal.Uplink: connected() / send(kind, payload), so the
# Last Gasp machine and the alarm sender publish through it unchanged. Meter.serve() calls
# poll(now) often; nothing here runs in the per-second step. Per poll, in order:
#   1. session.poll: link, CONNACK, keep-alive, bytes in and out (the client's callbacks
#      mark PUBACKs and copy downlink requests into preallocated slots);
#   2. after a CONNACK: subscribe to down, publish the birth, set the lanes (below);
#   3. downlink requests: the command envelope (meter.control.command; codes 0x20.. are
#      executed by command()), the signed response queued for up/resp (a broker's
#      redelivery, DUP, of the request handled last gets that response again);
#   4. the alarm register scans new events (alarmreg), alarming at once what passes;
#   5. while up: resends of unacknowledged messages (per-report back-off and retries;
#      retries spent: the session is dropped and everything resent from the cursors),
#      responses, live pushes when due (push), range-read answers, then backfill;
#   6. the outbox cursors saved when changed, at most once a minute (and at power_down()
#      and a Last Gasp alarm).
# Lanes per stream s (outbox streams): at every CONNACK the stream's items split at
# head[s] = max(cursor, next - live_n): [cursor, head) is BACKFILL (oldest first, at most
# BF_RATE messages a second and BF_WINDOW unacknowledged), [head, next) is live and sent at
# once, everything captured later when its push is due; live goes before any backfill. The durable
# cursor advances only on PUBACKs, contiguously: through the backfill lane, then, once it
# reaches head, to the live lane's acknowledged end. A dropped session forgets the
# inflight messages; the next CONNACK starts again from the cursors (duplicates only,
# which the head-end discards by key), never from the broker's offline queue.
# The idle poll (up, nothing due) allocates nothing (host_tests/mpy/scenario_aroute_idle.py).

from micropython import const
import struct

from meter.aroute import wire
from meter.aroute.alarmreg import ALL, LAST_GASP_TEST, AlarmRegister
from meter.aroute.outbox import COLS, STEPS, S_EVENTS, STREAMS, Outbox
from meter.aroute.push import PushSettings, report_index
from meter.control import status
from meter.errors import SettingError
from meter.hal import Uplink
from meter.storage.records import KIND_CONFIG, KIND_OUTBOX
from meter.ticks import elapsed_ms

E_STALLED = "E_STALLED"  # a message stayed unacknowledged after its retries: link dropped

TABLE = const(8)  # tracked messages in flight (the client's window)
BF_WINDOW = const(4)  # of which backfill at most
BF_RATE_MS = const(500)  # one backfill (or answer) message per this many ms: <= 2/s
BF_BURST = const(2)
DOWN_MAX = const(128)  # largest downlink payload taken (a request is at most 83 bytes)
REQ_SLOTS = const(2)  # downlink requests waiting for the next poll
RESP_SLOTS = const(4)  # responses waiting for the client
SAVE_MS = const(60_000)  # the outbox cursors reach flash at most this often
MAX_ANSWER = const(288)  # items served per range read (a day of 5-minute values)
_FREE = const(0)
_INFLIGHT = const(1)
_ACKED = const(2)
_BF = const(0)
_LIVE = const(1)
_CFG_VERSION = const(1)
_CFG_LEN = const(66)
_GASP_TYPE = const(0x01)  # meter.outage.wire MSG_LAST_GASP
_GASP_REPEAT = const(19)  # its repeat index offset
_BOOT_SEQ_MASK = const(0x3FFF)  # boot count bits in alarm seqs (x 65536: a small int)
# A-route command codes (meter.control.command CMD_POLL ..)
_POLL = const(0x20)
_RANGE = const(0x21)
_EVENTS = const(0x22)
_PUSH = const(0x23)
_CLOCK = const(0x24)
_BROUTE_KEY = const(0x25)
_ALARM_FILTER = const(0x26)
_ALARM_CLEAR = const(0x27)
_LG_TEST = const(0x28)
_COLLECTOR = const(0x29)
UP_KINDS = ("birth", "series", "event", "alarm", "resp", "snap", "will")


class ARoute(Uplink):
    """meter_id: 8 bytes; mac: meter.mac.Hmac under the meter key; session, client: the
    MQTT Session and Client; clock: meter.hal.Clock; core: meter.assembly.Core; store:
    Store or None; saver_outbox / saver_config: save handles (KIND_OUTBOX, KIND_CONFIG);
    random: callable(n) -> bytes; collector: meter.hal.Datagram or None."""

    def __init__(self, meter_id, mac, session, client, clock, core, store, saver_outbox,
                 saver_config, random, collector=None, reset_kind=0):
        self.meter_id = bytes(meter_id)
        self.mac = mac
        self.session = session
        self.client = client
        self.clock = clock
        self.regs = core.regs
        self.metering = core.metering
        self.events = core.events
        self.store = store
        self.saver = saver_outbox
        self.saver_config = saver_config
        self.random = random
        self.collector = collector
        self.reset_kind = reset_kind
        self.enc = wire.Encoder(meter_id, mac)
        base = wire.topic_base(meter_id)
        self.topics = {}
        for k in UP_KINDS:
            self.topics[k] = base + b"up/" + k.encode()
        self.t_series = self.topics["series"]
        self.t_event = self.topics["event"]
        self.t_down = base + b"down"
        self.box = Outbox(core.capture, core.events, store)
        self.reg = AlarmRegister(core.events)
        self.push = PushSettings()
        self.meter = None  # bind()
        self.trace = None  # callable(what, stream, a, b) for tools (sim --mqtt)
        # lanes (see the header)
        self.head = [0] * STREAMS
        self.bf_next = [0] * STREAMS
        self.live_acked = [0] * STREAMS
        self.live_next = [0] * STREAMS
        self.live_due = bytearray(STREAMS)
        self._bf_running = bytearray(STREAMS)
        # messages in flight
        self.c_state = bytearray(TABLE)
        self.c_mid = [0] * TABLE
        self.c_stream = bytearray(TABLE)
        self.c_lane = bytearray(TABLE)
        self.c_k0 = [0] * TABLE
        self.c_n = [0] * TABLE
        self.c_ms = [0] * TABLE
        self.c_tries = bytearray(TABLE)
        self._bf_tokens = BF_BURST
        self._bf_ms = 0
        # downlink requests and responses
        self._req = [bytearray(DOWN_MAX) for _ in range(REQ_SLOTS)]
        self._req_len = [0] * REQ_SLOTS
        self._req_dup = bytearray(REQ_SLOTS)  # the broker's DUP flag of each request
        self._nreq = 0
        self._last_req = None  # the request handled last and its response: a broker's
        self._last_resp = None  # redelivery (DUP) of it gets the response again
        self._resp = []
        # range-read answer in progress: stream (-1: none), next item, end
        self.a_stream = -1
        self.a_next = 0
        self.a_end = 0
        self._snap_due = False
        # state
        self._fresh = False
        self._birth_due = False
        self._sub_due = False
        self._dirty = False
        self._saved_ms = 0
        self._drop = False
        self.connects = 0
        self.collector_addr = None
        self._collector_ip = b"\0\0\0\0"
        self._collector_port = 0
        self._broute_key = None
        self._lg_test = None
        self._lg_seq = 0
        self._cfg = bytearray(_CFG_LEN)
        # counters
        self.published = 0
        self.acked = 0
        self.backfill_sent = 0
        self.resent = 0
        self.drops_stalled = 0  # sessions dropped because retries ran out
        self.unknown_topic = 0
        self.oversize = 0
        self.flooded = 0  # requests refused because both slots were taken
        self.commands = 0
        self.refused_commands = 0  # requests on a meter without a command processor
        self.resp_lost = 0  # responses dropped: RESP_SLOTS were waiting for the client
        self.redelivered = 0  # broker redeliveries of the last request, answered again
        self.udp_sent = 0
        self.udp_failed = 0
        session.on_up = self._on_up
        session.on_down = self._on_down
        client.on_puback = self._on_puback
        client.on_message = self._on_message

    # ---- boot and binding ---------------------------------------------------------------

    def bind(self, meter):
        """The meter the A-route serves (commands, clock, snapshot, Last Gasp)."""
        self.meter = meter
        if meter.commands is not None:
            meter.commands.extension = self.command

    def boot(self, now):
        """After the store's restore: the outbox cursors, alarm register and settings back
        from flash; the boot count +1, persisted at once."""
        st = self.store
        blob = st.latest(KIND_OUTBOX) if st is not None else None
        if blob is not None:
            try:
                reg, seen = self.box.load(blob)
                self.reg.register = reg
                self.reg.seen = seen
            except ValueError:
                pass  # another format: start over (everything held is sent again)
        cfg = st.latest(KIND_CONFIG) if st is not None else None
        if not self._load_config(cfg):
            r = self.random(2) if self.random is not None else b"\0\0"
            self.push = PushSettings((r[0] << 8) | r[1])
            self.save_config()
        self.box.boots += 1
        self._save_outbox(now.ms)
        # alarm and drill seqs of this boot: boot count x 65536 + n, so that the first ones
        # after a reboot (a crash persisted none of the boot before) are never taken for
        # copies by the head-end, which keeps alarms by (meter, kind, seq)
        base = (self.box.boots & _BOOT_SEQ_MASK) << 16
        self._lg_seq = base
        m = self.meter
        if m is not None and m.alarms is not None:
            m.alarms.seq = base

    # ---- Uplink (meter.hal) ---------------------------------------------------------------

    def connected(self):
        return self.session.up

    def send(self, kind, payload):
        """Publish a sealed message (the Last Gasp machine, the alarm sender) on up/<kind>
        with QoS 1 at once (the bytes are pushed to the link before returning). An alarm
        goes through the register's filter (held back: True, counted); a Last Gasp alarm's
        first transmission also goes to the collector as one UDP datagram (first: it needs
        no session), and a real one (not F_TEST) saves the outbox cursors after it is
        published. Returns True when taken."""
        gasp = False
        if kind == "alarm":
            if not self.reg.passes(payload):
                return True
            if payload[0] == _GASP_TYPE and payload[_GASP_REPEAT] == 0:
                self._datagram(payload)
                gasp = not payload[1] & wire.F_TEST
        t = self.topics.get(kind)
        ok = False
        if t is not None and self.session.up:
            if self.client.publish(t, payload, 1) >= 0:
                self.published += 1
                self.session.poll(self.clock.ticks_ms())
                ok = True
        if gasp:
            self._save_outbox(self.clock.ticks_ms())
        return ok

    def _datagram(self, payload):
        if self.collector is None or self.collector_addr is None:
            return
        try:
            self.collector.sendto(payload, self.collector_addr)
            self.udp_sent += 1
        except OSError:
            self.udp_failed += 1

    # ---- the poll -----------------------------------------------------------------------

    def poll(self, now):
        """Drive the A-route (Meter.serve). Returns True while the session is up."""
        up = self.session.poll(now.ms)
        if self._drop:  # retries spent: the link is stale; reconnect after a back-off
            self._drop = False
            self.drops_stalled += 1
            self.session.drop(now.ms, E_STALLED)
            up = False
        if up and self._fresh:
            self._connected(now)
        while self._nreq:
            self._request(now)
        s = self.reg.scan()
        if s >= 0 and up and self.meter is not None and self.meter.alarms is not None:
            ev = self.events
            self.meter.alarms.send(self, ev.code[s], now, ev.a[s], ev.b[s])
        if up:
            if self._sub_due:
                self._subscribe()
            if self._birth_due:
                self._birth(now)
            self._resend(now)
            if self._resp:
                self._flush_resp()
            self._live(now)
            self._refill(now.ms)
            if self.a_stream >= 0 or self._snap_due:
                self._answer(now)
            self._backfill(now)
        if (self._dirty or self.reg.changed) and \
                elapsed_ms(now.ms, self._saved_ms) >= SAVE_MS:
            self._save_outbox(now.ms)
        return up

    def power_down(self):
        """Orderly stop: the cursors to flash, DISCONNECT."""
        self._save_outbox(self.clock.ticks_ms())
        self.session.close()

    # ---- session events ---------------------------------------------------------------

    def _on_up(self):
        self._fresh = True

    def _on_down(self, why):
        for j in range(TABLE):
            self.c_state[j] = _FREE
        self.a_stream = -1
        self._snap_due = False
        self._fresh = False

    def _connected(self, now):
        self._fresh = False
        self.connects += 1
        self._sub_due = True
        self._subscribe()
        box = self.box
        for s in range(STREAMS):
            if box.clamp(s):
                self._dirty = True
            c = box.cursor[s]
            nxt = box.next_item(s)
            live_n = self.push.period[s] // STEPS[s] if s != S_EVENTS else 0
            if live_n < 1:
                live_n = 1 if s != S_EVENTS else 0
            h = nxt - live_n
            if h < c:
                h = c
            self.head[s] = h
            self.bf_next[s] = c
            self.live_acked[s] = h
            self.live_next[s] = h
            # what is live now goes at once (a push may have come due while the session was
            # down), before any backfill; a report switched off sends nothing
            self.live_due[s] = self.push.on[s]
            self._bf_running[s] = 1 if c < h else 0
            if c < h and self.trace is not None:
                self.trace("backfill_start", s, c, h)
        self._birth_due = True
        self._birth(now)

    def _subscribe(self):
        if self.client.subscribe(self.t_down, 1) >= 0:
            self._sub_due = False

    def _birth(self, now):
        m = self.meter
        j = self.store.journal if self.store is not None else None
        jseq, jseal = j.newest() if j is not None else (-1, bytes(16))
        state = (1 if self.store is not None else 0) | \
            (2 if m is not None and m.safe_mode else 0) | \
            (4 if self.store is not None and self.store.tamper_pending() else 0) | \
            (8 if now.valid else 0)
        c = self.box.cursor
        from meter.app import FIRMWARE_VERSION

        msg = self.enc.birth(self.box.boots, self.connects, FIRMWARE_VERSION, self.reset_kind,
                             state, jseq, jseal, now.ev_minute, now.second, self.regs.unit,
                             self.regs.coefficient, self.reg.register, c[0], c[1], c[2], c[3],
                             wire.F_CLOCK_VALID if now.valid else 0)
        if self.client.publish(self.topics["birth"], msg, 1) >= 0:
            self.published += 1
            self._birth_due = False

    def _on_puback(self, mid):
        for j in range(TABLE):
            if self.c_state[j] == _INFLIGHT and self.c_mid[j] == mid:
                self.c_state[j] = _ACKED
                self.acked += 1
                if self.trace is not None:
                    self.trace("ack", self.c_stream[j], self.c_k0[j], self.c_n[j])
                self._advance(self.c_stream[j])
                return

    def _advance(self, s):
        """Move stream s's cursor over the acknowledged messages that continue it."""
        box = self.box
        moved = True
        while moved:
            moved = False
            for j in range(TABLE):
                if self.c_state[j] != _ACKED or self.c_stream[j] != s:
                    continue
                k0 = self.c_k0[j]
                if self.c_lane[j] == _BF and k0 == box.cursor[s]:
                    box.cursor[s] = k0 + self.c_n[j]
                elif self.c_lane[j] == _LIVE and k0 == self.live_acked[s]:
                    self.live_acked[s] = k0 + self.c_n[j]
                else:
                    continue
                self.c_state[j] = _FREE
                self._dirty = True
                moved = True
        if box.cursor[s] >= self.head[s]:
            if self._bf_running[s]:
                self._bf_running[s] = 0
                if self.trace is not None:
                    self.trace("backfill_end", s, box.cursor[s], 0)
            if self.live_acked[s] > box.cursor[s]:
                box.cursor[s] = self.live_acked[s]
                self._dirty = True

    # ---- downlink ---------------------------------------------------------------------

    def _on_message(self, topic, payload, qos, dup):
        """The client's callback (inside session.poll): copy the request for poll()."""
        t = self.t_down
        n = len(topic)
        if n != len(t) or bytes(topic) != t:
            self.unknown_topic += 1
            return
        if len(payload) > DOWN_MAX:
            self.oversize += 1
            return
        if self._nreq >= REQ_SLOTS:
            self.flooded += 1
            return
        k = self._nreq
        self._req[k][:len(payload)] = payload
        self._req_len[k] = len(payload)
        self._req_dup[k] = dup
        self._nreq = k + 1

    def _request(self, now):
        req = bytes(memoryview(self._req[0])[:self._req_len[0]])
        dup = self._req_dup[0]
        if self._nreq > 1:
            self._req[0][:self._req_len[1]] = self._req[1][:self._req_len[1]]
            self._req_len[0] = self._req_len[1]
            self._req_dup[0] = self._req_dup[1]
        self._nreq -= 1
        m = self.meter
        if m is None or m.commands is None:
            self.refused_commands += 1
            return
        if dup and req == self._last_req:
            # the broker redelivers (a persistent session) what the meter took but whose
            # PUBACK the link lost: the same response again, nothing executed, no E_REPLAY
            # (a copy without DUP is someone else's and goes to the command processor)
            self.redelivered += 1
            resp = self._last_resp
        else:
            self.commands += 1
            resp = m.command(req, bool(dup))
            self._last_req = req
            self._last_resp = resp
        if len(self._resp) < RESP_SLOTS:
            self._resp.append(resp)
        else:
            self.resp_lost += 1  # the client refused responses for RESP_SLOTS requests
        if self.session.up:
            self._flush_resp()

    def _flush_resp(self):
        while self._resp:
            if self.client.publish(self.topics["resp"], self._resp[0], 1) < 0:
                return
            self.published += 1
            self._resp.pop(0)

    # ---- the A-route commands (meter.control.command extension) -------------------------

    def command(self, code, args, now):
        """Execute an authenticated A-route command (its counter already consumed).
        Returns (audit arg, status, response data)."""
        try:
            return self._command(code, args, now)
        except SettingError:
            return 0, status.E_RANGE, b""

    def _command(self, code, args, now):
        if code == _POLL:
            self._snap_due = True
            return 0, status.OK, bytes(self._snap(now, 0)[wire.HEAD:wire.HEAD + wire.SNAP_BLOCK])
        if code == _RANGE:
            series, by, lo, hi = args
            for s in range(S_EVENTS):
                if STEPS[s] == series:
                    break
            else:
                return series, status.E_RANGE, b""
            step = STEPS[s]
            if by == 0:
                lo = -(-lo // step)
                hi = hi // step
            elif by != 1:
                return series, status.E_RANGE, b""
            return self._range(s, lo, hi)
        if code == _EVENTS:
            seq, n = args
            if n == 0:
                return 0, status.OK, self._held(S_EVENTS, 0)
            return self._range(S_EVENTS, seq, seq + n - 1)
        if code == _PUSH:
            rid, on, period, delay, retries, backoff, qos = args
            i = report_index(rid)
            if i < 0 or not self.push.check(on, period, delay, retries, backoff, qos) or \
                    (i != S_EVENTS and period and period % STEPS[i]):
                return rid, status.E_RANGE, b""
            self.push.set(i, on, period, delay, retries, backoff, qos)
            self.push.last[i] = -1
            self.save_config()
            return rid, status.OK, bytes((rid,)) + self.push.entry(i)
        if code == _CLOCK:
            minute, second, force = args
            m = self.meter
            try:
                jump = m.set_clock(minute, second, bool(force))
            except SettingError as e:
                why = e.args[0] if e.args else ""
                st = status.E_STATE if why == "E_CLOCK_JUMP" else \
                    status.E_UNSUPPORTED if why == "E_NO_STORAGE" else status.E_RANGE
                return 0, st, b""
            return 0, status.OK, struct.pack(">Bi", 0 if jump is None else 1,
                                             0 if jump is None else jump)
        if code == _BROUTE_KEY:
            m = self.meter
            if m is None or m.broute is None:
                return 0, status.E_UNSUPPORTED, b""
            pad = self.mac.digest(b"BRK", struct.pack(">I", m.commands.counter))
            wrapped = args[0]
            key = bytes(wrapped[i] ^ pad[i] for i in range(16))
            m.broute.auth.set_master_key(key)
            self._broute_key = key
            self.save_config()
            from meter.storage.journal import crc32

            return 0, status.OK, struct.pack(">I", crc32(key))
        if code == _ALARM_FILTER:
            self.reg.filter = args[0] & ALL
            self.save_config()
            return 0, status.OK, struct.pack(">II", self.reg.register, self.reg.filter)
        if code == _ALARM_CLEAR:
            self.reg.clear(args[0])
            self._dirty = True
            return 0, status.OK, struct.pack(">II", self.reg.register, self.reg.filter)
        if code == _LG_TEST:
            seq = self.lg_test(now)
            return 0, status.OK, struct.pack(">I", seq)
        if code == _COLLECTOR:
            ip, port = args
            if port and self.collector is None:
                return 0, status.E_UNSUPPORTED, b""
            self._set_collector(ip, port)
            self.save_config()
            return 0, status.OK, bytes(ip) + struct.pack(">H", port)
        return 0, status.E_UNKNOWN_CMD, b""

    def _held(self, s, n):
        box = self.box
        return struct.pack(">IIH", box.oldest(s) & 0xFFFFFFFF, (box.next_item(s) - 1) &
                           0xFFFFFFFF, n)

    def _range(self, s, lo, hi):
        """A range read of stream s, items lo..hi: (arg, status, data); the items held
        follow as ANSWER messages."""
        box = self.box
        first = box.oldest(s)
        last = box.next_item(s) - 1
        if lo < first:
            lo = first
        if hi > last:
            hi = last
        n = hi - lo + 1 if hi >= lo else 0
        if n > MAX_ANSWER:
            n = MAX_ANSWER
        if n and self.a_stream >= 0:
            return s, status.E_STATE, b""  # one range read at a time
        if n:
            self.a_stream = s
            self.a_next = lo
            self.a_end = lo + n
        return s, status.OK, self._held(s, n)

    def lg_test(self, now):
        """LG_TEST: a Last Gasp alarm with F_TEST, sent at once (session and collector);
        its seq is the drills' own (boot count x 65536 + drills this boot). Returns it."""
        from meter.outage.wire import F_CLOCK_VALID, LastGaspAlarm

        if self._lg_test is None:
            self._lg_test = LastGaspAlarm(self.meter_id, self.mac)
        seq = self._lg_seq  # the drills' own seqs (boot count x 65536 + n: see boot())
        self._lg_seq += 1
        r = self.regs
        from meter.metering.registers import FWD, REV

        self._lg_test.pack(wire.F_TEST | (F_CLOCK_VALID if now.valid else 0), seq, now.minute,
                           now.second, r.count[FWD], r.count[REV], r.unit, r.coefficient)
        self.reg.raise_bits(LAST_GASP_TEST)
        self.send("alarm", self._lg_test.buf)
        return seq

    def _snap(self, now, flags):
        m = self.meter
        met = self.metering
        lim = m.limiter if m is not None else None
        from meter.metering.registers import FWD, REV

        return self.enc.snap(now.ev_minute, now.second, self.regs.count[FWD],
                             self.regs.count[REV], met.p_w, met.i_ma, met.i2_ma, met.v_dv,
                             lim.contract if lim is not None else 0,
                             lim.active_a if lim is not None else 0,
                             lim.state if lim is not None else 0xFF, self.reg.register,
                             flags | (wire.F_CLOCK_VALID if now.valid else 0))

    # ---- sending ------------------------------------------------------------------------

    def _publish(self, s, k0, n, flags):
        """Encode and publish items k0 .. k0 + n - 1 of stream s. Returns the mid (0 for
        QoS 0) or -1 when the client cannot take it now."""
        enc = self.enc
        if n <= 0:
            return -1
        if self.meter is not None and self.meter.clock.wall_valid():
            flags |= wire.F_CLOCK_VALID
        if s == S_EVENTS:
            enc.event_begin(k0, n, flags)
            self.box.fill_events(enc, k0, n)
            msg = enc.seal(wire.event_len(n))
            t = self.t_event
        else:
            enc.series_begin(STEPS[s], k0, n, COLS[s], self.regs.unit, flags)
            self.box.fill_series(enc, s, k0, n)
            msg = enc.seal(wire.series_len(n, COLS[s]))
            t = self.t_series
        qos = 1 if flags & wire.F_ANSWER else self.push.qos[s]
        mid = self.client.publish(t, msg, qos)
        if mid >= 0:
            self.published += 1
        return mid

    def _slot(self, backfill):
        """A free table slot, or -1 (backfill may hold at most BF_WINDOW)."""
        free = -1
        bf = 0
        for j in range(TABLE):
            st = self.c_state[j]
            if st == _FREE:
                if free < 0:
                    free = j
            elif self.c_lane[j] == _BF:
                bf += 1
        if backfill and bf >= BF_WINDOW:
            return -1
        return free

    def _track(self, j, s, lane, k0, n, mid, now_ms):
        self.c_stream[j] = s
        self.c_lane[j] = lane
        self.c_k0[j] = k0
        self.c_n[j] = n
        self.c_mid[j] = mid
        self.c_ms[j] = now_ms
        self.c_tries[j] = 0
        self.c_state[j] = _INFLIGHT
        if mid == 0:  # QoS 0: nothing will acknowledge it
            self.c_state[j] = _ACKED
            self._advance(s)

    def _chunk(self, s):
        return wire.MAX_EVENT_N if s == S_EVENTS else wire.MAX_SERIES_N

    def _live(self, now):
        push = self.push
        box = self.box
        for s in range(STREAMS):
            if push.due(s, now):
                self.live_due[s] = 1
            if not self.live_due[s] or not push.on[s]:
                continue
            nxt = box.next_item(s)
            while self.live_next[s] < nxt:
                j = self._slot(False)
                if j < 0:
                    return
                k0 = self.live_next[s]
                n = nxt - k0
                if n > self._chunk(s):
                    n = self._chunk(s)
                mid = self._publish(s, k0, n, 0)
                if mid < 0:
                    return
                self._track(j, s, _LIVE, k0, n, mid, now.ms)
                self.live_next[s] = k0 + n
            self.live_due[s] = 0

    def _refill(self, now_ms):
        if self._bf_tokens >= BF_BURST:
            self._bf_ms = now_ms
            return
        el = elapsed_ms(now_ms, self._bf_ms)
        if el < 0:
            self._bf_ms = now_ms
        elif el >= BF_RATE_MS:
            self._bf_tokens += 1
            self._bf_ms = now_ms

    def _answer(self, now):
        if self._snap_due:
            if self._bf_tokens <= 0:
                return
            msg = self._snap(now, wire.F_ANSWER)
            if self.client.publish(self.topics["snap"], msg, 1) < 0:
                return
            self.published += 1
            self._bf_tokens -= 1
            self._snap_due = False
        while self.a_stream >= 0 and self._bf_tokens > 0:
            s = self.a_stream
            k0 = self.a_next
            n = self.a_end - k0
            if n > self._chunk(s):
                n = self._chunk(s)
            if self._publish(s, k0, n, wire.F_ANSWER) < 0:
                return
            self._bf_tokens -= 1
            self.a_next = k0 + n
            if self.a_next >= self.a_end:
                self.a_stream = -1

    def _backfill(self, now):
        push = self.push
        for s in range(STREAMS):
            if self._bf_tokens <= 0:
                return
            if not push.on[s] or self.bf_next[s] >= self.head[s]:
                continue
            j = self._slot(True)
            if j < 0:
                return
            k0 = self.bf_next[s]
            n = self.head[s] - k0
            if n > self._chunk(s):
                n = self._chunk(s)
            mid = self._publish(s, k0, n, wire.F_BACKFILL)
            if mid < 0:
                return
            self._bf_tokens -= 1
            self.backfill_sent += 1
            self._track(j, s, _BF, k0, n, mid, now.ms)
            self.bf_next[s] = k0 + n

    def _resend(self, now):
        """Messages unacknowledged for their report's back-off are published again (a new
        mid); after `retries` resends the session is taken down (the link is stale)."""
        push = self.push
        for j in range(TABLE):
            if self.c_state[j] != _INFLIGHT:
                continue
            s = self.c_stream[j]
            if elapsed_ms(now.ms, self.c_ms[j]) < push.backoff_ms[s]:
                continue
            if self.c_tries[j] >= push.retries[s]:
                self._drop = True
                return
            flags = wire.F_BACKFILL if self.c_lane[j] == _BF else 0
            mid = self._publish(s, self.c_k0[j], self.c_n[j], flags)
            self.c_ms[j] = now.ms
            self.c_tries[j] += 1  # a resend the client could not take counts as tried:
            if mid < 0:  # the originals hold its window while the link is stale
                continue
            self.resent += 1
            self.c_mid[j] = mid
            if mid == 0:
                self.c_state[j] = _ACKED
                self._advance(s)

    # ---- persistence ------------------------------------------------------------------

    def _save_outbox(self, now_ms):
        self._saved_ms = now_ms
        if self.saver.save(self.box.pack(self.reg.register, self.reg.seen)):
            self._dirty = False
            self.reg.changed = False

    def save_config(self):
        """The settings changed by command (REC_CONFIG, big-endian): u8 version | u16 rnd
        | push entries (4 x 9) | u32 alarm filter | collector ip 4, port u16 | u8 B-route
        key present | 16 key                                                 (66 bytes)"""
        b = self._cfg
        struct.pack_into(">BH", b, 0, _CFG_VERSION, self.push.rnd)
        off = self.push.pack(b, 3)
        struct.pack_into(">I4sHB", b, off, self.reg.filter, self._collector_ip,
                         self._collector_port, 1 if self._broute_key else 0)
        off += 11
        b[off:off + 16] = self._broute_key or bytes(16)
        return self.saver_config.save(b)

    def _load_config(self, blob):
        if blob is None or len(blob) != _CFG_LEN or blob[0] != _CFG_VERSION:
            return False
        rnd = struct.unpack_from(">H", blob, 1)[0]
        self.push = PushSettings(rnd)
        off = self.push.load(blob, 3)
        filt, ip, port, has_key = struct.unpack_from(">I4sHB", blob, off)
        self.reg.filter = filt & ALL
        self._set_collector(ip, port)
        if has_key:
            self._broute_key = bytes(blob[off + 11:off + 27])
            m = self.meter
            if m is not None and m.broute is not None:
                m.broute.auth.set_master_key(self._broute_key)
        return True

    def _set_collector(self, ip, port):
        self._collector_ip = bytes(ip)
        self._collector_port = port
        self.collector_addr = None
        if port:
            self.collector_addr = ("%d.%d.%d.%d" % tuple(ip), port)

    # ---- state for tools and tests --------------------------------------------------------

    def backlog(self, s):
        """Items of stream s not yet acknowledged."""
        return self.box.next_item(s) - self.box.cursor[s]

    def inflight(self):
        n = 0
        for j in range(TABLE):
            if self.c_state[j] != _FREE:
                n += 1
        return n

