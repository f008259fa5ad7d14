#!/usr/bin/env python3
"""Head-end side of remote current control: build signed commands, verify and parse responses.

The byte layouts are documented in firmware/meter/control/command.py; this module encodes
them independently with CPython's struct and hmac (the meter uses meter.mac), with its own
named offsets below (it imports only the firmware's codes, never its layouts), so a test
that pairs the two checks both ends. Library use:

    he = HeadEnd(meter_id=b"SIM00001", key=b"...", counter=41)
    req = he.create(rid=7, start=m + 60, end=m + 180, limit=20, expiry=m + 5)
    resp = he.parse(meter_reply_bytes)          # raises ResponseError if not authentic
    rec = parse_record(resp.data)               # Record(rid, start, end, limit, ...)
    req2 = he.confirm(7, rec.digest, expiry=m + 5)
    if he.rebase_due():                         # the counter passed REBASE_AT
        resp = he.parse(meter(he.rebase(he.epoch + 1, expiry=m + 5)))
        he.adopt(resp)                          # an OK rebase: new epoch, counters from 1

Counters are renewed by epochs (see firmware/meter/control/command.py): a request of epoch
e > 0 is signed over the 3-byte prefix EPOCH_TAG, e before its bytes; REBASE moves the
meter to a new epoch, after which every request signed before it is refused.

CLI (prints the request as hex; keeps the counter in a state file). --expiry defaults to
the host clock's wall minute + 10 (minutes since 2000-01-01 local standard time, as the
meter counts them):

    headend.py --meter-id SIM00001 --key-hex 00.. --state he.json create --id 7 \
        --start 14000000 --end 14000060 --limit 20
    headend.py --meter-id SIM00001 --key-hex 00.. --state he.json rebase --epoch 1
    headend.py --meter-id SIM00001 --key-hex 00.. --state he.json parse --hex 01..

The state file keeps the epoch too; `parse --state` adopts an authentic OK rebase response
(new epoch, counter 0), and every request built while the counter is past REBASE_AT
prints a reminder on stderr.
"""

import argparse
import datetime
import hashlib
import hmac
import json
import os
import struct
import sys
import time
from collections import namedtuple

_HERE = os.path.dirname(os.path.abspath(__file__))
for _sub in ("../board/cpython", "../firmware"):
    _p = os.path.normpath(os.path.join(_HERE, _sub))
    if _p not in sys.path:
        sys.path.insert(0, _p)

from meter.control import command as C  # noqa: E402  (codes only; layouts are re-encoded here)
from meter.control import status as S  # noqa: E402
from meter.control.reservations import STATE_NAMES  # noqa: E402
from meter.control.limiter import STATE_NAMES as BREAKER_STATES  # noqa: E402

Response = namedtuple("Response", "code meter_id counter tag status data")
Record = namedtuple("Record", "rid start end limit flags state digest")
AuditEntry = namedtuple("AuditEntry", "seq counter minute second code status arg")
Status = namedtuple("Status", "contract active_a active_id state recloses flags unsaved epoch")
Rebase = namedtuple("Rebase", "epoch counter")
DrillTrip = namedtuple("DrillTrip", "kind minute second current_ma limit_a")
DrillReport = namedtuple("DrillReport", "running source start_min start_s end_min end_s "
                         "low_a trips max_ma over_s records")


# The wire format as the head-end reads it (written from the documented layout).
REQ_HEAD_FMT = ">BB8sIiB"  # version, code, meter id, counter, expiry, argument length
RESP_HEAD_FMT = ">BB8sI8sBB"  # version, code, meter id, counter, request tag, status, n
RESP_HEAD = 24  # response data start here ...
MAC_LEN = 32  # ... and the HMAC-SHA256 follows them
TAG_LEN = 8  # a response's request tag: the first 8 bytes of the request's HMAC
RECORD_FMT = ">HiiBBB"  # reservation record: id, start, end, limit, flags, state ...
RECORD_DIGEST = 13  # ... then its 8-byte digest at this offset
RECORD_LEN = 21
DIGEST_LEN = 8
DIGEST_TAG = b"RSV1"
DIGEST_FIELDS_FMT = ">HiiBB"  # what the digest covers: id, start, end, limit, flags
FLAG_DRILL = 1  # reservation flags bit0: a drill reservation
AUDIT_FMT = ">IIiBBBH"  # audit entry: seq, counter, minute, second, code, status, arg
AUDIT_LEN = 17
STATUS_FMT = ">BBHBBBBH"  # contract, active A, active id, breaker, re-closes, flags,
# unsaved audit entries, counter epoch
STATUS_TAMPER = 16  # status flags bit4: tamper evidence stands (not yet acknowledged)
REBASE_FMT = ">HI"  # REBASE response data: new epoch, counter
EPOCH_TAG = 0xEE  # a request of epoch e > 0 is signed over (EPOCH_TAG u8, e u16) + its bytes
MAX_EXPIRY_MIN = 60  # the meter refuses an expiry further ahead (E_EXPIRY_RANGE)
REBASE_AT = 1 << 31  # counter past which the head-end moves the meter to a new epoch
COUNTER_MAX = 0xFFFF_FFFF  # the largest counter a request carries
DRILL_HEAD_FMT = ">BBHiBiBBHIIB"  # drill report head (see DrillReport) ...
DRILL_RECORDS = 26  # ... its records start here ...
DRILL_RECORD_LEN = 11  # ... each this long
DRILL_RECORD_FMT = ">BiBIB"  # kind, minute, second, current mA, limit A
DRILL_RUNNING = 1  # drill report flags bit0

# A-route command codes (docs/aroute.md, "Downlink: commands"), encoded from the document.
CMD_POLL = 0x20
CMD_RANGE = 0x21
CMD_EVENTS = 0x22
CMD_PUSH = 0x23
CMD_CLOCK = 0x24
CMD_BROUTE_KEY = 0x25
CMD_ALARM_FILTER = 0x26
CMD_ALARM_CLEAR = 0x27
CMD_LG_TEST = 0x28
CMD_COLLECTOR = 0x29
AROUTE_NAMES = {CMD_POLL: "poll", CMD_RANGE: "range", CMD_EVENTS: "events", CMD_PUSH: "push",
                CMD_CLOCK: "clock", CMD_BROUTE_KEY: "broute_key",
                CMD_ALARM_FILTER: "alarm_filter", CMD_ALARM_CLEAR: "alarm_clear",
                CMD_LG_TEST: "lg_test", CMD_COLLECTOR: "collector"}
RANGE_BY_MINUTE = 0  # RANGE "by": from/to are wall minutes ...
RANGE_BY_NUMBER = 1  # ... or interval numbers
PUSH_EVENTS = 0x40  # PUSH report code of the events (1, 5, 30: the series)
BROUTE_WRAP_TAG = b"BRK"

EPOCH_2000 = datetime.datetime(2000, 1, 1)
DEFAULT_EXPIRY_MIN = 10  # CLI: a request expires this many minutes after it is built


class ResponseError(Exception):
    pass


def wall_minute(utc=None):
    """Wall minute of a UTC instant (default: now) in the meter's convention: minutes since
    2000-01-01 00:00 local standard time (the host's zone without daylight saving)."""
    if utc is None:
        utc = datetime.datetime.now(datetime.timezone.utc)
    standard = utc.replace(tzinfo=None) - datetime.timedelta(seconds=time.timezone)
    return int((standard - EPOCH_2000).total_seconds() // 60)


def record_digest(rid, start, end, limit, flags):
    """The meter's reservation digest, computed independently from the read-back values."""
    return hashlib.sha256(DIGEST_TAG + struct.pack(DIGEST_FIELDS_FMT, rid, start, end, limit,
                                                   flags)).digest()[:DIGEST_LEN]


class HeadEnd:
    def __init__(self, meter_id, key, counter=0, epoch=0):
        if len(meter_id) != 8:
            raise ValueError("meter id must be 8 bytes")
        self.meter_id = bytes(meter_id)
        self.key = bytes(key)
        self.counter = counter  # last counter used; the next request uses counter + 1
        self.epoch = epoch  # the meter's counter epoch the requests are signed for
        self.sent = {}  # counter -> request tag, to bind responses

    def build(self, code, args=b"", expiry=0, counter=None, epoch=None):
        """Signed request; counter defaults to the next one, epoch to the current one."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        body = struct.pack(REQ_HEAD_FMT, C.VERSION, code, self.meter_id, counter, expiry,
                           len(args)) + args
        e = self.epoch if epoch is None else epoch
        prefix = struct.pack(">BH", EPOCH_TAG, e) if e else b""
        mac = hmac.new(self.key, prefix + body, hashlib.sha256).digest()
        self.sent[counter] = mac[:TAG_LEN]
        return body + mac

    def rebase_due(self):
        """True once the counter passed REBASE_AT: time to REBASE to a new epoch."""
        return self.counter >= REBASE_AT

    def adopt(self, resp):
        """After an authentic OK REBASE response: sign for the new epoch, counters from 1.
        Returns True when resp was one."""
        if resp.code != C.CMD_REBASE or resp.status != S.OK:
            return False
        r = parse_rebase(resp.data)
        self.epoch, self.counter = r.epoch, r.counter
        return True

    def create(self, rid, start, end, limit, expiry, drill=False):
        return self.build(C.CMD_CREATE, struct.pack(">HiiBB", rid, start, end, limit,
                                                    FLAG_DRILL if drill else 0), expiry)

    def confirm(self, rid, digest, expiry):
        return self.build(C.CMD_CONFIRM, struct.pack(">H8s", rid, digest), expiry)

    def cancel(self, rid, expiry):
        return self.build(C.CMD_CANCEL, struct.pack(">H", rid), expiry)

    def list(self, expiry):
        return self.build(C.CMD_LIST, b"", expiry)

    def read(self, rid, expiry):
        return self.build(C.CMD_READ, struct.pack(">H", rid), expiry)

    def contract(self, limit, expiry):
        return self.build(C.CMD_CONTRACT, struct.pack(">B", limit), expiry)

    def reset(self, expiry):
        return self.build(C.CMD_RESET, b"", expiry)

    def drill(self, limit, duration_s, expiry):
        return self.build(C.CMD_DRILL, struct.pack(">BH", limit, duration_s), expiry)

    def report(self, expiry):
        return self.build(C.CMD_REPORT, b"", expiry)

    def audit(self, skip, expiry):
        return self.build(C.CMD_AUDIT, struct.pack(">B", skip), expiry)

    def status(self, expiry):
        return self.build(C.CMD_STATUS, b"", expiry)

    def ack_tamper(self, expiry):
        """Acknowledge the meter's standing tamper evidence (needs its wall clock valid)."""
        return self.build(C.CMD_ACK_TAMPER, b"", expiry)

    def rebase(self, epoch, expiry):
        """Move the meter's counters to `epoch` (its current one + 1); signed in the
        current epoch. Call adopt() with the OK response. The meter does not check a
        rebase's counter (its epoch guards it), so it works with the counter exhausted."""
        self.counter = min(self.counter + 1, COUNTER_MAX)
        return self.build(C.CMD_REBASE, struct.pack(">H", epoch), expiry, self.counter)

    # A-route commands (docs/aroute.md); each is answered on up/resp.
    def poll(self, expiry):
        return self.build(CMD_POLL, b"", expiry)

    def range_read(self, series, by, first, last, expiry):
        """RANGE: series 1/5/30, by RANGE_BY_MINUTE or RANGE_BY_NUMBER, first..last
        inclusive."""
        return self.build(CMD_RANGE, struct.pack(">BBii", series, by, first, last), expiry)

    def events(self, first_seq, n, expiry):
        return self.build(CMD_EVENTS, struct.pack(">IH", first_seq, n), expiry)

    def push(self, report, on, period_min, delay_max_s, retries, backoff_s, qos, expiry):
        """PUSH: report 1/5/30 (series) or PUSH_EVENTS."""
        return self.build(CMD_PUSH, struct.pack(">BBHHBHB", report, 1 if on else 0, period_min,
                                                delay_max_s, retries, backoff_s, qos), expiry)

    def clock(self, minute, second, force, expiry):
        return self.build(CMD_CLOCK, struct.pack(">iBB", minute, second, 1 if force else 0),
                          expiry)

    def broute_key(self, new_key, expiry):
        """BROUTE_KEY: the 16-byte key XOR the first 16 bytes of
        HMAC-SHA256(meter key, "BRK" + counter u32), under this request's counter."""
        if len(new_key) != 16:
            raise ValueError("B-route key must be 16 bytes")
        self.counter += 1
        pad = hmac.new(self.key, BROUTE_WRAP_TAG + struct.pack(">I", self.counter),
                       hashlib.sha256).digest()[:16]
        wrapped = bytes(a ^ b for a, b in zip(new_key, pad))
        return self.build(CMD_BROUTE_KEY, wrapped, expiry, self.counter)

    def alarm_filter(self, mask, expiry):
        return self.build(CMD_ALARM_FILTER, struct.pack(">I", mask), expiry)

    def alarm_clear(self, mask, expiry):
        return self.build(CMD_ALARM_CLEAR, struct.pack(">I", mask), expiry)

    def lg_test(self, expiry):
        return self.build(CMD_LG_TEST, b"", expiry)

    def collector(self, ip, port, expiry):
        """COLLECTOR: ip as 4 bytes or dotted text; port 0 turns the datagram off."""
        if isinstance(ip, str):
            ip = bytes(int(x) for x in ip.split("."))
        return self.build(CMD_COLLECTOR, struct.pack(">4sH", bytes(ip), port), expiry)

    def parse(self, resp, check_tag=True):
        """Verify a response's HMAC, meter id and request binding; return a Response."""
        if len(resp) < RESP_HEAD + MAC_LEN:
            raise ResponseError("short response")
        ver, code, meter_id, counter, tag, st, n = struct.unpack_from(RESP_HEAD_FMT, resp, 0)
        end = RESP_HEAD + n  # the HMAC starts here
        if ver != C.VERSION or len(resp) != end + MAC_LEN:
            raise ResponseError("bad length or version")
        if not hmac.compare_digest(hmac.new(self.key, resp[:end], hashlib.sha256).digest(),
                                   resp[end:]):
            raise ResponseError("bad response MAC")
        if meter_id != self.meter_id:
            raise ResponseError("response from another meter")
        if check_tag and self.sent.get(counter) != tag:
            raise ResponseError("response not bound to a request we sent")
        return Response(code, meter_id, counter, tag, st, bytes(resp[RESP_HEAD:end]))


def parse_record(data, off=0):
    rid, start, end, limit, flags, state = struct.unpack_from(RECORD_FMT, data, off)
    d = off + RECORD_DIGEST
    return Record(rid, start, end, limit, flags, state, bytes(data[d:d + DIGEST_LEN]))


def parse_records(data):
    if len(data) % RECORD_LEN:
        raise ResponseError("record list length")
    return [parse_record(data, k) for k in range(0, len(data), RECORD_LEN)]


def parse_audit(data):
    if len(data) % AUDIT_LEN:
        raise ResponseError("audit length")
    return [AuditEntry(*struct.unpack_from(AUDIT_FMT, data, k))
            for k in range(0, len(data), AUDIT_LEN)]


def parse_status(data):
    return Status(*struct.unpack(STATUS_FMT, data))


def parse_rebase(data):
    return Rebase(*struct.unpack(REBASE_FMT, data))


def parse_drill_report(data):
    (_, flags, source, start_min, start_s, end_min, end_s, low_a, trips, max_ma, over_s,
     n) = struct.unpack_from(DRILL_HEAD_FMT, data, 0)
    recs = [DrillTrip(*struct.unpack_from(DRILL_RECORD_FMT, data,
                                          DRILL_RECORDS + DRILL_RECORD_LEN * k))
            for k in range(n)]
    return DrillReport(bool(flags & DRILL_RUNNING), source, start_min, start_s, end_min, end_s,
                       low_a, trips, max_ma, over_s, recs)


def describe(resp):
    """A human-readable line (CLI output)."""
    name = C.CMD_NAMES.get(resp.code) or AROUTE_NAMES.get(resp.code, "?%d" % resp.code)
    st = S.NAMES[resp.status] if resp.status < len(S.NAMES) else str(resp.status)
    out = "%s #%d: %s" % (name, resp.counter, st)
    if resp.status != S.OK or not resp.data:
        return out
    if resp.code in AROUTE_NAMES:  # tools/headend_mqtt.py describes these in full
        return out + "\n  data " + resp.data.hex()
    if resp.code in (C.CMD_CREATE, C.CMD_CONFIRM, C.CMD_CANCEL, C.CMD_READ, C.CMD_LIST):
        for r in parse_records(resp.data):
            out += "\n  id %d [%d, %d) %d A %s%s digest %s" % (
                r.rid, r.start, r.end, r.limit, STATE_NAMES[r.state],
                " drill" if r.flags & FLAG_DRILL else "", r.digest.hex())
    elif resp.code == C.CMD_AUDIT:
        for e in parse_audit(resp.data):
            out += "\n  #%d ctr %d %d:%02d %s -> %s arg %d" % (
                e.seq, e.counter, e.minute, e.second, C.CMD_NAMES.get(e.code, "?"),
                S.NAMES[e.status] if e.status < len(S.NAMES) else e.status, e.arg)
    elif resp.code == C.CMD_REPORT:
        out += "\n  " + repr(parse_drill_report(resp.data))
    elif resp.code == C.CMD_REBASE:
        r = parse_rebase(resp.data)
        out += "\n  counter epoch %d, counter %d" % (r.epoch, r.counter)
    else:
        s = parse_status(resp.data)
        out += ("\n  contract %d A, active %d A (id %d), breaker %s, re-closes %d, flags %#x,"
                " unsaved audit entries %d, counter epoch %d%s"
                % (s.contract, s.active_a, s.active_id, BREAKER_STATES[s.state], s.recloses,
                   s.flags, s.unsaved, s.epoch,
                   ", TAMPER EVIDENCE STANDS (ack-tamper)" if s.flags & STATUS_TAMPER else ""))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--meter-id", required=True, help="8-character meter id")
    p.add_argument("--key-hex", required=True)
    p.add_argument("--state", help="JSON file keeping the last counter used")
    p.add_argument("--counter", type=int, help="counter to use (overrides --state)")
    p.add_argument("--expiry", type=int,
                   help="expiry wall minute (default: now + %d min)" % DEFAULT_EXPIRY_MIN)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    for a in ("--id", "--start", "--end", "--limit"):
        c.add_argument(a, type=int, required=True)
    c.add_argument("--drill", action="store_true")
    c = sub.add_parser("confirm")
    c.add_argument("--id", type=int, required=True)
    c.add_argument("--digest", required=True, help="hex, from the read-back record")
    for name in ("cancel", "read"):
        sub.add_parser(name).add_argument("--id", type=int, required=True)
    sub.add_parser("contract").add_argument("--limit", type=int, required=True)
    c = sub.add_parser("drill")
    c.add_argument("--limit", type=int, required=True)
    c.add_argument("--seconds", type=int, required=True)
    sub.add_parser("audit").add_argument("--skip", type=int, default=0)
    for name in ("list", "reset", "report", "status", "ack-tamper"):
        sub.add_parser(name)
    sub.add_parser("rebase").add_argument("--epoch", type=int,
                                          help="new epoch (default: the current one + 1)")
    sub.add_parser("parse").add_argument("--hex", required=True)
    a = p.parse_args(argv)

    saved = {"counter": 0, "epoch": 0}
    if a.state and os.path.exists(a.state):
        with open(a.state) as f:
            saved.update(json.load(f))
    he = HeadEnd(a.meter_id.encode(), bytes.fromhex(a.key_hex), saved["counter"],
                 saved["epoch"])
    if a.cmd == "parse":
        resp = he.parse(bytes.fromhex(a.hex), check_tag=False)
        print(describe(resp))
        if a.state and he.adopt(resp):
            save_state(a.state, he)
        return 0
    if a.counter is not None:
        he.counter = a.counter - 1
    e = a.expiry if a.expiry is not None else wall_minute() + DEFAULT_EXPIRY_MIN
    build = {
        "create": lambda: he.create(a.id, a.start, a.end, a.limit, e, a.drill),
        "confirm": lambda: he.confirm(a.id, bytes.fromhex(a.digest), e),
        "cancel": lambda: he.cancel(a.id, e), "read": lambda: he.read(a.id, e),
        "contract": lambda: he.contract(a.limit, e),
        "drill": lambda: he.drill(a.limit, a.seconds, e),
        "audit": lambda: he.audit(a.skip, e), "list": lambda: he.list(e),
        "reset": lambda: he.reset(e), "report": lambda: he.report(e),
        "status": lambda: he.status(e), "ack-tamper": lambda: he.ack_tamper(e),
        "rebase": lambda: he.rebase(a.epoch if a.epoch is not None else he.epoch + 1, e),
    }[a.cmd]
    print(build().hex())
    if he.rebase_due() and a.cmd != "rebase":
        print("counter %d is past %d: send `rebase` soon" % (he.counter, REBASE_AT),
              file=sys.stderr)
    if a.state:
        save_state(a.state, he)
    return 0


def save_state(path, he):
    with open(path, "w") as f:
        json.dump({"counter": he.counter, "epoch": he.epoch}, f)


if __name__ == "__main__":
    sys.exit(main())
