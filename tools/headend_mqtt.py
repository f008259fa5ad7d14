#!/usr/bin/env python3
"""The A-route head-end: watch the meters' uplink, keep it in a store, send signed commands.

Library:

    store = headend_db.open_store("he.db")          # or a postgresql:// URL
    ingest = Ingest(store)                          # decode + verify + store one message
    worker = Worker(url, host, port, group="he")    # paho client in the shared subscription
    worker.start(); ...; worker.stop()
    cmd = Commander(store, host, port)              # signed commands over MQTT
    resp = cmd.command(b"SIM00001", lambda he, e: he.poll(e))
    p = cmd.send(meter, build); ...; cmd.result(p)  # non-blocking (a simulation)

CLI (every command takes --db PATH|postgresql://... and --broker HOST:PORT):

    headend_mqtt.py register --meter SIM00001 --key-hex 00..
    headend_mqtt.py watch --group headend [--workers 3] [--duration 60]
    headend_mqtt.py meters
    headend_mqtt.py reserve --meter SIM00001 --id 7 --start +60 --end +180 --limit 20
    headend_mqtt.py confirm|cancel|drill|lgtest|push|poll|range|clock ... (--help on each)
    headend_mqtt.py gaps --series 30 --hours 24 ;  backfill --series 30 --hours 24
    headend_mqtt.py export --meter SIM00001 --series 5 --out sim1.csv

The wire contract is docs/aroute.md; decoding is tools/headend_wire.py, commands
tools/headend.py, the store tools/headend_db.py. Times are the head-end clock in seconds
since 2000-01-01 local standard time (the meter's wall-minute convention): `clock` arguments
default to the host clock; a simulation passes its virtual one.
"""

import argparse
import csv
import datetime
import os
import struct
import sys
import threading
import time
import uuid
from decimal import Decimal

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import headend  # noqa: E402  (also puts the firmware and the micropython shim on sys.path)
import headend_alarms  # noqa: E402
import headend_db  # noqa: E402
import headend_wire as W  # noqa: E402

from meter.control import status as S  # noqa: E402
from meter.events import NAMES as EVENT_NAMES  # noqa: E402

EPOCH_2000_UTC = 946684800
DEFAULT_GROUP = "headend"
EXPIRY_MIN = 10  # a request's expiry: minutes after the head-end clock
UNIT_KWH = {0x00: "1", 0x01: "0.1", 0x02: "0.01", 0x03: "0.001", 0x04: "0.0001",
            0x0A: "10", 0x0B: "100", 0x0C: "1000", 0x0D: "10000"}  # ECHONET E1 codes


def host_clock():
    """Seconds since 2000-01-01 local standard time, from the host clock."""
    return time.time() - time.timezone - EPOCH_2000_UTC


def iso_minute(minute):
    """A wall minute as ISO text (local standard time)."""
    return (datetime.datetime(2000, 1, 1) + datetime.timedelta(minutes=minute)).isoformat()


def iso_second(minute, second):
    """A wall minute and second as ISO text (local standard time)."""
    return (datetime.datetime(2000, 1, 1) + datetime.timedelta(minutes=minute,
                                                               seconds=second)).isoformat()


def parse_broker(text):
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1"), int(port)


def _paho():
    import paho.mqtt.client as mqtt

    return mqtt


# ---------------------------------------------------------------- ingest
class Ingest:
    """Decode, verify and store uplink messages; prints alarms, restorations, rollbacks
    and offline hints through `out`. Every message lands in exactly one outcome counted in
    the store: "stored", "duplicate" (nothing new in it) or "rejected_<E_CODE>"."""

    def __init__(self, store, clock=host_clock, out=print):
        self.store = store
        self.clock = clock
        self.out = out or (lambda line: None)
        self._keys = store.keys()
        self.lines = []  # the live lines printed (tests and the simulation read them)

    def _key(self, mid):
        key = self._keys.get(mid)
        if key is None:  # registered since we last looked?
            self._keys = self.store.keys()
            key = self._keys.get(mid)
        return key

    def _say(self, line):
        self.lines.append(line)
        self.out(line)

    def handle(self, topic, payload):
        """One message; returns its outcome ("stored", "duplicate", "rejected_E_...")."""
        now = self.clock()
        try:
            mid, kind = W.parse_topic(topic)
        except W.WireError as e:
            return self._reject(None, e.code)
        key = self._key(mid)
        if key is None:
            return self._reject(None, "E_UNKNOWN_METER")
        try:
            msg = W.decode(kind, payload, key, mid)
        except W.WireError as e:
            return self._reject(mid, e.code)
        except (struct.error, ValueError, IndexError):
            return self._reject(mid, "E_LENGTH")
        try:
            with self.store.batch():  # rolled back when the data inside is malformed
                new = getattr(self, "_" + kind)(mid, msg, now)
                self.store.contact(mid, kind, now, offline=(kind == "will"))
                outcome = "stored" if new else "duplicate"
                self.store.count(outcome)
                self.store.count("msg_" + kind, 1, mid.decode())
        except W.WireError as e:  # e.g. a POLL response whose snap block is short
            return self._reject(mid, e.code)
        return outcome

    def _reject(self, mid, code):
        name = "rejected_" + code
        self.store.count(name)
        if mid is not None:
            self.store.count(name, 1, mid.decode())
        return name

    def _series(self, mid, m, now):
        backfill = bool(m["flags"] & (W.F_BACKFILL | W.F_ANSWER))
        counts = {"new": 0, "duplicate": 0, "conflict": 0, "not_held": 0}
        fresh = 0  # not-held reports not seen before
        for k, cols in m["values"]:
            if cols is None:
                fresh += self.store.add_not_held(mid, m["series"], k, now)
                counts["not_held"] += 1
                continue
            counts[self.store.add_series(mid, m["series"], k, cols, m["unit"], now,
                                         backfill)] += 1
        self.store.count("values_new", counts["new"])
        self.store.count("values_duplicate", counts["duplicate"])
        self.store.count("values_conflict", counts["conflict"])
        self.store.count("values_not_held", counts["not_held"])
        if m["series"] == 30:
            held = [(k, c) for k, c in m["values"] if c is not None]
            if held:
                k, c = held[-1]
                self.store.latest_reading(mid, k * 30, c[0], c[1])
        return counts["new"] + fresh > 0

    def _event(self, mid, m, now):
        backfill = bool(m["flags"] & (W.F_BACKFILL | W.F_ANSWER))
        held = [e for e in m["entries"] if e[1] != 0]  # code 0 is no event: not held
        new = sum(1 for e in held if self.store.add_event(mid, e, now, backfill))
        self.store.count("events_new", new)
        self.store.count("events_duplicate", len(held) - new)
        self.store.count("events_not_held", len(m["entries"]) - len(held))
        return new > 0

    def _birth(self, mid, m, now):
        new, rollback = self.store.add_birth(mid, m, now)
        if rollback:
            self.store.count("rollback")
            self._say("%s ROLLBACK: birth journal seq %d seal %s (boot %d) is behind one "
                      "seen before" % (mid.decode(), m["journal_seq"],
                                       bytes(m["journal_seal"]).hex(), m["boot"]))
        if new and m["alarm_register"]:
            self._say("%s birth boot %d conn %d alarm register %#x %s" % (
                mid.decode(), m["boot"], m["conn"], m["alarm_register"],
                ",".join(W.alarm_names(m["alarm_register"]))))
        return new

    def _alarm(self, mid, m, now):
        kind = m["alarm"] + ("_test" if m["test"] else "")  # a drill has its own seqs
        minute = m.get("minute", m.get("start_minute"))
        second = m.get("second", m.get("start_second"))
        new = self.store.add_alarm(mid, kind, m["seq"], m.get("code"), m.get("flags"),
                                   minute, second, m["test"], _detail(m), now)
        if new:
            self.store.count("alarm_" + kind)
            line = headend_alarms.describe(dict(m, type=m["alarm"]))
            if m["alarm"] == "alarm":  # the cause by its event name (BREAKER_FAULT ...)
                line += " (%s)" % EVENT_NAMES.get(m["code"], "?").upper()
            self._say(("TEST " if m["test"] else "") + line)
        return new

    def _resp(self, mid, m, now):
        return store_response(self.store, mid, m, now)

    def _snap(self, mid, m, now):
        return self.store.add_snap(mid, m, now)

    def _will(self, mid, m, now):
        self._say("%s offline? (the broker lost its session)" % mid.decode())
        self.store.count("wills")
        return True


def store_response(store, mid, m, now):
    """A verified response into the store; a POLL's snapshot and an alarm register answer
    also update the meter's row (`meters`). Returns True when it was new."""
    new = store.add_response(mid, m, now)
    if new and m["status"] == S.OK:
        if m["code"] == headend.CMD_POLL:
            store.add_snap(mid, W.decode_snap_block(m["data"]), now)
        elif m["code"] in (headend.CMD_ALARM_FILTER, headend.CMD_ALARM_CLEAR):
            store.set_alarm_register(mid, W.parse_filter(m["data"])["register"])
    return new


def _detail(m):
    skip = ("kind", "meter_id", "alarm", "test")
    return " ".join("%s=%s" % (k, v) for k, v in sorted(m.items()) if k not in skip)


# ---------------------------------------------------------------- MQTT worker
class Worker:
    """One head-end worker: its own paho client (and store connection) in the shared
    subscription group `group`, so the group's workers share the meters' uplink."""

    def __init__(self, url, host, port, group=DEFAULT_GROUP, clock=host_clock, out=print,
                 client_id=None, store=None):
        if not group or any(c in group for c in "/+#"):
            raise ValueError("E_GROUP: a shared-subscription group name without / + #")
        self.url = url
        self.store = store or headend_db.open_store(url)
        self.ingest = Ingest(self.store, clock, out)
        self.group = group
        self.host, self.port = host, port
        self.handled = 0
        self.errors = 0
        self.connects = 0
        self.subscribed = threading.Event()
        mqtt = _paho()
        # A persistent session under a stable id: what the broker takes for the group while
        # this worker is away is kept for it (the meter's PUBACK came from the broker).
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or "he-%s-%s" % (group,
                                                                       uuid.uuid4().hex[:8]),
                                  clean_session=client_id is None)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message

    @property
    def topic(self):
        return "$share/%s/am/v1/+/+/up/#" % self.group

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if not rc.is_failure:
            self.connects += 1
            # again after every CONNACK: a broker that lost the session (no persistence,
            # a crash) would otherwise deliver nothing
            client.subscribe(self.topic, qos=1)

    def _on_disconnect(self, *args):
        self.subscribed.clear()

    def _on_message(self, client, userdata, msg):
        try:
            self.ingest.handle(msg.topic, msg.payload)
        except Exception as e:  # a store failure must not stop paho's loop
            self.errors += 1
            self.ingest.out("store error: %r" % e)
        self.handled += 1

    def start(self, timeout=10):
        self.client.reconnect_delay_set(0.05, 2)
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(timeout):
            raise RuntimeError("head-end worker: no SUBACK from %s:%d" % (self.host, self.port))
        return self

    def stop(self, leave=False):
        """Disconnect. The persistent session stays in the group: the broker goes on giving
        this worker its share of the messages and keeps them for it until it comes back
        (nothing lost). leave=True unsubscribes first, for a worker that goes for good (a
        scale-down): the others then get everything."""
        if leave:
            done = threading.Event()
            self.client.on_unsubscribe = lambda *a: done.set()
            self.client.unsubscribe(self.topic)
            done.wait(5)
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------- commands
class Pending:
    def __init__(self, meter, counter, tag, request, sent_at):
        self.meter, self.counter, self.tag = meter, counter, tag
        self.request, self.sent_at = request, sent_at


class Commander:
    """Signed commands over MQTT: reserves the meter's next counter in the store, builds the
    request with tools/headend.py, publishes it on .../down (QoS 1) and takes the signed
    response from .../up/resp (its own subscription, verified with the request's tag).
    ingest=True also stores what else the meter sends meanwhile (range-read answers) through
    an Ingest, for use without a running `watch`."""

    def __init__(self, store, host, port, clock=host_clock, expiry_min=EXPIRY_MIN, ingest=False,
                 out=None):
        self.store = store
        self.clock = clock
        self.expiry_min = expiry_min
        self.ingest = Ingest(store, clock, out) if ingest else None
        self._results = {}
        self._cv = threading.Condition()
        self._subs = set()
        mqtt = _paho()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id="he-cmd-" + uuid.uuid4().hex[:12],
                                  clean_session=True)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self._connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.reconnect_delay_set(0.05, 2)
        self._suback = {}
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(10):
            self.close()
            raise RuntimeError("head-end commander: no CONNACK from %s:%d" % (host, port))

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if not rc.is_failure:
            for mid in list(self._subs):  # a clean session: subscribe again
                client.subscribe(W.up_topic(mid, "#" if self.ingest else "resp"), qos=1)
            self._connected.set()

    def _on_subscribe(self, client, userdata, mid, rcs, props=None):
        with self._cv:
            self._suback[mid] = True
            self._cv.notify_all()

    def _watch(self, mid):
        if mid in self._subs:
            return
        topic = W.up_topic(mid, "#" if self.ingest else "resp")
        rc, smid = self.client.subscribe(topic, qos=1)
        with self._cv:
            if not self._cv.wait_for(lambda: smid in self._suback, 10):
                raise RuntimeError("no SUBACK for " + topic)
        self._subs.add(mid)

    def _on_message(self, client, userdata, msg):
        try:
            mid, kind = W.parse_topic(msg.topic)
        except W.WireError:
            return
        if self.ingest is not None:
            self.ingest.handle(msg.topic, msg.payload)
        if kind != "resp":
            return
        key = self.store.key(mid)
        try:
            r = W.decode_resp(msg.payload, key, mid) if key else None
        except W.WireError:
            r = None
        if r is None:
            return
        with self._cv:
            self._results[(mid, r["counter"], bytes(r["tag"]))] = r
            self._cv.notify_all()

    def send(self, meter, build):
        """Publish one request: build(he, expiry) -> request bytes (a HeadEnd method call).
        Returns a Pending; the response comes to result()/wait()."""
        mid = meter if isinstance(meter, bytes) else meter.encode()
        key = self.store.key(mid)
        if key is None:
            raise KeyError("meter %s is not registered" % mid.decode())
        self._watch(mid)
        counter, epoch = self.store.next_counter(mid)
        he = headend.HeadEnd(mid, key, counter - 1, epoch)
        expiry = int(self.clock() // 60) + self.expiry_min
        req = build(he, expiry)
        if he.counter != counter:  # a builder that took more than one counter
            self.store.set_counter(mid, he.counter, epoch)
        tag = he.sent[he.counter]
        self.client.publish(W.down_topic(mid), req, qos=1)
        return Pending(mid, he.counter, tag, req, self.clock())

    def result(self, p):
        """The verified response of a Pending, or None while none came."""
        with self._cv:
            r = self._results.get((p.meter, p.counter, p.tag))
        if r is not None:
            if self.ingest is None:
                store_response(self.store, p.meter, r, self.clock())
        return r

    def wait(self, p, timeout=10):
        deadline = time.monotonic() + timeout
        with self._cv:
            self._cv.wait_for(lambda: (p.meter, p.counter, p.tag) in self._results,
                              max(0, deadline - time.monotonic()))
        return self.result(p)

    def command(self, meter, build, timeout=10):
        return self.wait(self.send(meter, build), timeout)

    def rebase_if_due(self, meter):
        """REBASE when the meter's counter passed headend.REBASE_AT; adopts the new epoch."""
        mid = meter if isinstance(meter, bytes) else meter.encode()
        row = [m for m in self.store.meters() if m["meter"] == mid.decode()][0]
        if row["cmd_counter"] < headend.REBASE_AT:
            return None
        r = self.command(mid, lambda he, e: he.rebase(he.epoch + 1, e))
        if r and r["status"] == S.OK:
            ep, ctr = headend.parse_rebase(r["data"])
            self.store.set_counter(mid, ctr, ep)
        return r


def describe_resp(r):
    """One or more lines for a verified response dict."""
    resp = headend.Response(r["code"], b"", r["counter"], r["tag"], r["status"], r["data"])
    line = headend.describe(resp)
    if r["status"] in (S.E_EXPIRED, S.E_EXPIRY_RANGE):
        return line + "\n  the meter's clock is not the head-end's (requests expire %d min " \
            "after the head-end clock): a simulated meter on an accelerated clock takes " \
            "commands when run with --realtime" % EXPIRY_MIN
    if r["status"] != S.OK or r["code"] not in headend.AROUTE_NAMES:
        return line
    line = line.split("\n")[0]
    d, code = r["data"], r["code"]
    if code == headend.CMD_POLL:
        s = W.decode_snap_block(d)
        return line + ("\n  %s  E0 %d  E3 %d  %d W  %.1f V  R %d mA  T %d mA  contract %d A "
                       "limit %d A  breaker %d  alarms %#x" % (
                           iso_second(s["minute"], s["second"]), s["e0"], s["e3"],
                           s["power_w"], s["voltage_dv"] / 10, s["current_r_ma"],
                           s["current_t_ma"], s["contract_a"], s["limit_a"], s["breaker"],
                           s["alarm_register"]))
    if code == headend.CMD_RANGE:
        x = W.parse_range(d)
        return line + "\n  first held %(first_held)d last held %(last_held)d served " \
            "%(served)d" % x
    if code == headend.CMD_EVENTS:
        return line + "\n  first held %(first_held)d newest %(newest)d served %(served)d" \
            % W.parse_events(d)
    if code == headend.CMD_PUSH:
        return line + "\n  " + " ".join("%s=%s" % kv for kv in W.parse_push(d).items())
    if code == headend.CMD_CLOCK:
        was_valid, jump = struct.unpack(">Bi", d[:5])
        return line + ("\n  jump %d s" % jump if was_valid else
                       "\n  the clock was invalid before")
    if code in (headend.CMD_ALARM_FILTER, headend.CMD_ALARM_CLEAR):
        f = W.parse_filter(d)
        return line + "\n  register %#x (%s) filter %#x" % (
            f["register"], ",".join(W.alarm_names(f["register"])), f["filter"])
    if code == headend.CMD_LG_TEST:
        return line + "\n  test alarm seq %d" % struct.unpack(">I", d[:4])[0]
    if code == headend.CMD_BROUTE_KEY:
        return line + "\n  key check %08x" % struct.unpack(">I", d[:4])[0]
    if code == headend.CMD_COLLECTOR:
        ip, port = struct.unpack(">4sH", d[:6])
        return line + "\n  collector %s:%d" % (".".join(str(b) for b in ip), port)
    return line + "\n  data " + d.hex()


# ---------------------------------------------------------------- gaps, backfill, export
def window(clock, series, hours, until_min=None):
    """Interval numbers [k_from, k_to] of the last `hours` of complete intervals."""
    now_min = int(clock() // 60) if until_min is None else until_min
    k_to = now_min // series
    k_from = -(-(now_min - int(hours * 60)) // series)
    return k_from, k_to


def find_gaps(store, meter, series, k_from, k_to, clamp=True):
    """Missing ranges of one meter's series in the window; with clamp, the window starts at
    the first value stored or reported not held (before it the meter had nothing to send).
    Of a meter with nothing of the series stored the whole window is missing: a RANGE read
    (backfill) brings what it holds and its first-held marks the rest not held."""
    if clamp:
        first = [store.one("SELECT MIN(k) FROM %s WHERE meter = ? AND series = ?" % t,
                           (meter, series))[0] for t in ("series_values", "not_held")]
        first = [k for k in first if k is not None]
        if first:
            k_from = max(k_from, min(first))
    return store.gaps(meter, series, k_from, k_to) if k_from <= k_to else []


def backfill(commander, meter, series, ranges, timeout=10, per_request=24 * 8, busy_tries=30,
             busy_wait=2.0):
    """RANGE requests (by interval number) for each missing range; returns the responses.
    A meter serves one range read at a time: E_STATE (its previous answer still going out,
    at most 2 messages a second) is asked again after busy_wait s, up to busy_tries times.
    What the response says lies before the meter's first held item is stored as not held
    (it will never come: gaps no longer lists it)."""
    out = []
    mid = meter.decode() if isinstance(meter, bytes) else meter
    for a, b in ranges:
        while a <= b:
            hi = min(b, a + per_request - 1)
            for _ in range(busy_tries):
                r = commander.command(meter, lambda he, e, a=a, hi=hi: he.range_read(
                    series, headend.RANGE_BY_NUMBER, a, hi, e), timeout)
                if r is None or r["status"] != S.E_STATE:
                    break
                time.sleep(busy_wait)
            out.append(((a, hi), r))
            if r is not None and r["status"] == S.OK:
                first = W.parse_range(r["data"])["first_held"]
                now = commander.clock()
                with commander.store.batch():
                    for k in range(a, min(hi, first - 1) + 1):
                        commander.store.add_not_held(mid, series, k, now)
            a = hi + 1
    return out


def export_csv(store, meter, series, f, k_from=None, k_to=None):
    """Write a meter's series as CSV; returns the number of rows."""
    row = store.one("SELECT coefficient FROM meters WHERE meter = ?", (meter,))
    coef = Decimal(row[0] if row and row[0] else 1)
    w = csv.writer(f)
    five = series == 5
    head = ["interval_end", "k", "fwd_kWh", "rev_kWh"]
    if five:
        head += ["lag_kvarh", "lead_kvarh", "volt_V"]
    w.writerow(head + ["received_at", "backfill"])
    n = 0
    for k, fwd, rev, lag, lead, volt, unit, received, bf in store.series(meter, series,
                                                                        k_from, k_to):
        scale = Decimal(UNIT_KWH.get(unit, "1")) * coef

        def kwh(v):
            return "" if v is None or v < 0 else str(Decimal(v) * scale)
        cells = [iso_minute(k * series), k, kwh(fwd), kwh(rev)]
        if five:
            cells += [kwh(lag), kwh(lead), "" if volt is None or volt < 0 else
                      str(Decimal(volt) / 10)]
        w.writerow(cells + [iso_minute(0) if received is None else
                            (datetime.datetime(2000, 1, 1) +
                             datetime.timedelta(seconds=received)).isoformat(
                                 timespec="seconds"), bf])
        n += 1
    return n


# ---------------------------------------------------------------- CLI
def _minute_arg(text, now_min):
    """A wall minute: a number, "+N" (minutes from now) or an ISO time (local standard)."""
    if text.startswith("+"):
        return now_min + int(text[1:])
    if "T" in text or "-" in text[1:]:
        t = datetime.datetime.fromisoformat(text)
        return int((t - datetime.datetime(2000, 1, 1)).total_seconds() // 60)
    return int(text)


def _commands(sub):
    def meter_cmd(name, help_):
        c = sub.add_parser(name, help=help_)
        c.add_argument("--meter", required=True)
        c.add_argument("--timeout", type=float, default=10)
        return c

    c = meter_cmd("reserve", "CREATE a reservation (then CONFIRM it with its digest)")
    c.add_argument("--id", type=int, required=True)
    c.add_argument("--start", required=True, help="wall minute, +N or ISO")
    c.add_argument("--end", required=True)
    c.add_argument("--limit", type=int, required=True)
    c.add_argument("--drill", action="store_true")
    c.add_argument("--no-confirm", action="store_true")
    c = meter_cmd("confirm", "CONFIRM a reservation")
    c.add_argument("--id", type=int, required=True)
    c.add_argument("--digest", required=True)
    meter_cmd("cancel", "CANCEL a reservation").add_argument("--id", type=int, required=True)
    c = meter_cmd("drill", "a drill on demand")
    c.add_argument("--limit", type=int, required=True)
    c.add_argument("--seconds", type=int, required=True)
    meter_cmd("lgtest", "Last Gasp drill: a test alarm")
    meter_cmd("poll", "instantaneous values")
    meter_cmd("status", "limiter and breaker status")
    c = meter_cmd("push", "push settings of one report")
    c.add_argument("--report", type=int, required=True, help="1, 5, 30 or 64 (events)")
    c.add_argument("--off", action="store_true")
    c.add_argument("--period", type=int, default=30, help="minutes")
    c.add_argument("--delay", type=int, default=60, help="random start delay max, s")
    c.add_argument("--retries", type=int, default=3)
    c.add_argument("--backoff", type=int, default=30, help="s")
    c.add_argument("--qos", type=int, default=1)
    c = meter_cmd("range", "range read of a series (answers arrive as series ANSWER)")
    c.add_argument("--series", type=int, required=True)
    c.add_argument("--by", choices=("minute", "number"), default="number")
    c.add_argument("--from", dest="first", type=int, required=True)
    c.add_argument("--to", dest="last", type=int, required=True)
    c = meter_cmd("events", "read the event log from a seq")
    c.add_argument("--from", dest="first", type=int, required=True)
    c.add_argument("--n", type=int, default=16)
    c = meter_cmd("clock", "set the meter's clock (default: the head-end clock)")
    c.add_argument("--minute", help="wall minute or ISO (default now)")
    c.add_argument("--second", type=int)
    c.add_argument("--force", action="store_true")
    c = meter_cmd("alarm-filter", "which alarm register bits are pushed")
    c.add_argument("--mask", type=lambda s: int(s, 0), required=True)
    c = meter_cmd("alarm-clear", "clear alarm register bits")
    c.add_argument("--mask", type=lambda s: int(s, 0), required=True)
    c = meter_cmd("collector", "UDP collector of the Last Gasp datagram")
    c.add_argument("--ip", required=True)
    c.add_argument("--port", type=int, required=True)
    meter_cmd("broute-key", "deliver a new B-route key").add_argument("--key-hex",
                                                                      required=True)


def _build(a, now_min):
    """(a HeadEnd-calling builder) for a command's arguments."""
    c = a.cmd
    if c == "reserve":
        s, e_ = _minute_arg(a.start, now_min), _minute_arg(a.end, now_min)
        return lambda he, e: he.create(a.id, s, e_, a.limit, e, a.drill)
    if c == "confirm":
        return lambda he, e: he.confirm(a.id, bytes.fromhex(a.digest), e)
    if c == "cancel":
        return lambda he, e: he.cancel(a.id, e)
    if c == "drill":
        return lambda he, e: he.drill(a.limit, a.seconds, e)
    if c == "lgtest":
        return lambda he, e: he.lg_test(e)
    if c == "poll":
        return lambda he, e: he.poll(e)
    if c == "status":
        return lambda he, e: he.status(e)
    if c == "push":
        return lambda he, e: he.push(a.report, not a.off, a.period, a.delay, a.retries,
                                     a.backoff, a.qos, e)
    if c == "range":
        by = headend.RANGE_BY_MINUTE if a.by == "minute" else headend.RANGE_BY_NUMBER
        return lambda he, e: he.range_read(a.series, by, a.first, a.last, e)
    if c == "events":
        return lambda he, e: he.events(a.first, a.n, e)
    if c == "clock":
        m = now_min if a.minute is None else _minute_arg(a.minute, now_min)
        sec = a.second if a.second is not None else 0
        return lambda he, e: he.clock(m, sec, a.force, e)
    if c == "alarm-filter":
        return lambda he, e: he.alarm_filter(a.mask, e)
    if c == "alarm-clear":
        return lambda he, e: he.alarm_clear(a.mask, e)
    if c == "collector":
        return lambda he, e: he.collector(a.ip, a.port, e)
    if c == "broute-key":
        return lambda he, e: he.broute_key(bytes.fromhex(a.key_hex), e)
    raise ValueError(c)


def _print_meters(store, out):
    out("%-8s  %-19s  %-6s  %-19s  %5s  %12s  %-19s  %s" % (
        "meter", "last contact", "kind", "last birth", "boot", "E0", "E0 at", "alarms"))
    for m in store.meters():
        def t(s):
            return "-" if s is None else (datetime.datetime(2000, 1, 1) + datetime.timedelta(
                seconds=s)).isoformat(sep=" ", timespec="seconds")
        alarms = m["alarm_register"] or 0
        out("%-8s  %-19s  %-6s  %-19s  %5s  %12s  %-19s  %#x %s%s%s" % (
            m["meter"], t(m["last_contact"]), m["last_kind"] or "-", t(m["last_birth_at"]),
            "-" if m["boot"] is None else m["boot"], "-" if m["e0"] is None else m["e0"],
            "-" if m["e0_minute"] is None else iso_minute(m["e0_minute"]).replace("T", " "),
            alarms, ",".join(W.alarm_names(alarms)),
            " ROLLBACK x%d" % m["rollback"] if m["rollback"] else "",
            " offline?" if m["offline_hint"] else ""))


def main(argv=None, out=print):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--db", default="headend.db", help="SQLite path or postgresql:// URL")
    p.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("register", help="register a meter and its key")
    c.add_argument("--meter", required=True)
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--key-hex")
    g.add_argument("--key-file")
    c = sub.add_parser("watch", help="receive, verify and store the uplink")
    c.add_argument("--group", default=DEFAULT_GROUP)
    c.add_argument("--workers", type=int, default=1)
    c.add_argument("--duration", type=float, help="seconds (default: until Ctrl-C)")
    c.add_argument("--leave", action="store_true",
                   help="leave the group at the end (a scale-down: else the broker keeps "
                   "these workers' share of the messages for them)")
    sub.add_parser("meters", help="meters with last contact, birth, readings, alarms")
    sub.add_parser("counters", help="the head-end's counters")
    for name in ("gaps", "backfill"):
        c = sub.add_parser(name, help="missing values" if name == "gaps" else
                           "request the missing values with RANGE")
        c.add_argument("--meter", help="default: every meter")
        c.add_argument("--series", type=int, default=30, choices=(1, 5, 30))
        c.add_argument("--hours", type=float, default=24)
        c.add_argument("--timeout", type=float, default=10)
    c = sub.add_parser("export", help="a meter's series as CSV")
    c.add_argument("--meter", required=True)
    c.add_argument("--series", type=int, default=30, choices=(1, 5, 30))
    c.add_argument("--out", help="file (default stdout)")
    _commands(sub)
    a = p.parse_args(argv)

    store = headend_db.open_store(a.db)
    host, port = parse_broker(a.broker)
    if a.cmd == "register":
        key = bytes.fromhex(a.key_hex) if a.key_hex else open(a.key_file, "rb").read()
        store.register(a.meter, key, host_clock())
        out("registered %s" % a.meter)
        return 0
    if a.cmd == "meters":
        _print_meters(store, out)
        return 0
    if a.cmd == "counters":
        for k, v in store.counters().items():
            out("%-28s %d" % (k, v))
        return 0
    if a.cmd == "export":
        if a.out:
            with open(a.out, "w", newline="") as f:
                n = export_csv(store, a.meter, a.series, f)
            out("%d rows to %s" % (n, a.out))
        else:
            export_csv(store, a.meter, a.series, sys.stdout)
        return 0
    if a.cmd == "watch":
        workers = [Worker(a.db, host, port, a.group, out=out,
                          client_id="he-%s-%d" % (a.group, i)).start()
                   for i in range(a.workers)]
        out("watching %s:%d as %d worker(s) of group %s" % (host, port, len(workers), a.group))
        try:
            t_end = None if a.duration is None else time.monotonic() + a.duration
            while t_end is None or time.monotonic() < t_end:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        for w in workers:
            w.stop(leave=a.leave)
        out("handled %s" % " ".join(str(w.handled) for w in workers))
        return 0
    if a.cmd in ("gaps", "backfill"):
        meters = [a.meter] if a.meter else store.meter_ids()
        k_from, k_to = window(host_clock, a.series, a.hours)
        k_to -= 1  # the newest interval may still be on its way
        cmd = Commander(store, host, port, ingest=True) if a.cmd == "backfill" else None
        for m in meters:
            ranges = find_gaps(store, m, a.series, k_from, k_to)
            out("%s series %d: %d missing in %d range(s) %s" % (
                m, a.series, sum(b - x + 1 for x, b in ranges), len(ranges),
                " ".join("%d-%d" % r for r in ranges[:20])))
            if cmd and ranges:
                for (x, b), r in backfill(cmd, m, a.series, ranges, a.timeout):
                    out("  RANGE %d-%d: %s" % (x, b, "no answer" if r is None else
                                                describe_resp(r)))
        if cmd:
            time.sleep(1)  # the answers follow their response
            cmd.close()
        return 0
    now_min = int(host_clock() // 60)
    cmd = Commander(store, host, port)
    try:
        r = cmd.command(a.meter, _build(a, now_min), a.timeout)
        out("no response" if r is None else describe_resp(r))
        if a.cmd == "reserve" and r and r["status"] == S.OK and not a.no_confirm:
            rec = headend.parse_record(r["data"])
            r = cmd.command(a.meter, lambda he, e: he.confirm(a.id, rec.digest, e), a.timeout)
            out("no response" if r is None else describe_resp(r))
        return 0 if r is not None and r["status"] == S.OK else 1
    finally:
        cmd.close()


if __name__ == "__main__":
    sys.exit(main())
