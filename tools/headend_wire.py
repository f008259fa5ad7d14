"""Head-end decoders of every A-route uplink message (docs/aroute.md), with HMAC verification.

Written from docs/aroute.md only (not from the meter's encoders in firmware/meter/aroute/), so
a test that encodes on the meter and decodes here checks both against the document. The
outage payloads on `up/alarm` go through tools/headend_alarms.py, the command responses on
`up/resp` through tools/headend.py (both written from their own documented layouts).

    shard(meter_id) -> "3f"                        the topic shard of an 8-byte id
    up_topic(meter_id, kind) / down_topic(meter_id)
    parse_topic(topic) -> (meter_id bytes, kind)   raises WireError("E_TOPIC")
    decode(kind, payload, key, meter_id) -> dict   raises WireError(code)

Every decoded message is a dict with "kind" and "meter_id"; a message that fails any check
raises WireError with a code the head-end counts: E_EMPTY, E_VERSION, E_TYPE, E_LENGTH,
E_FIELD (a field outside its documented range), E_MAC, E_METER_ID (the payload names
another meter than its topic), E_TOPIC, E_KIND.
"""

import hashlib
import hmac
import struct
import zlib

import headend_alarms

VERSION = 0xA1
T_SERIES = 0x10
T_EVENT = 0x11
T_SNAP = 0x12
T_BIRTH = 0x20
T_WILL = 0x2F
KINDS = ("birth", "series", "event", "alarm", "resp", "snap", "will")

F_BACKFILL = 0x01  # header flags
F_ANSWER = 0x02
F_CLOCK_VALID = 0x04
LG_F_TEST = 0x80  # Last Gasp alarm flags: a drill (LG_TEST)

MAC_LEN = 32
HEAD = struct.Struct(">BB8sB")  # version, type, meter id, flags (11 bytes)
SERIES_HEAD = struct.Struct(">BIBBB")  # series, k0, n, columns, unit (offsets 11..18)
SERIES_COLUMNS = {1: 2, 5: 5, 30: 2}  # columns each series carries
COLUMN_NAMES = ("fwd", "rev", "lag", "lead", "volt")
SERIES_MAX_N = 24
EVENT_HEAD = struct.Struct(">IB")  # first seq, n (offsets 11..15)
EVENT_ENTRY = struct.Struct(">BiBii")  # code, minute, second, a, b (14 bytes)
EVENT_MAX_N = 16
BIRTH_BODY = struct.Struct(">IHHBBI16siBBIIIIII")  # offsets 11..70
BIRTH_FIELDS = ("boot", "conn", "fw", "reset_kind", "state", "journal_seq", "journal_seal",
                "minute", "second", "unit", "coefficient", "alarm_register", "next30",
                "next5", "next1", "next_event")
BIRTH_LEN = 103
SNAP_BLOCK = struct.Struct(">iBIIiiiiBBBI")  # offsets 11..46 (also POLL's response data)
SNAP_FIELDS = ("minute", "second", "e0", "e3", "power_w", "current_r_ma", "current_t_ma",
               "voltage_dv", "contract_a", "limit_a", "breaker", "alarm_register")
SNAP_LEN = 79
WILL_LEN = 10
BIRTH_DURABLE, BIRTH_SAFE_MODE, BIRTH_TAMPER, BIRTH_CLOCK_VALID = 1, 2, 4, 8

ALARM_BITS = ("LAST_GASP", "LAST_GASP_TEST", "TAMPER", "BREAKER_FAULT", "CLOCK_INVALID",
              "JOURNAL_CORRUPT", "NOT_DURABLE", "SAFE_MODE", "TASK_FAILED", "AUTH_FAILURE",
              "REGISTERS_LOST", "FLASH_BAD_SECTOR")


class WireError(ValueError):
    """A rejected uplink message; args[0] is the code the head-end counts."""

    @property
    def code(self):
        return self.args[0]


def shard(meter_id):
    """Two lowercase hex digits: the low byte of the CRC-32 of the 8 id bytes."""
    return "%02x" % (zlib.crc32(bytes(meter_id)) & 0xFF)


def up_topic(meter_id, kind):
    return "am/v1/%s/%s/up/%s" % (shard(meter_id), bytes(meter_id).decode("ascii"), kind)


def down_topic(meter_id):
    return "am/v1/%s/%s/down" % (shard(meter_id), bytes(meter_id).decode("ascii"))


def parse_topic(topic):
    """(meter id bytes, kind) of an uplink topic; WireError E_TOPIC for anything else (a
    wrong shard for the id, a missing part, an id that is not 8 ASCII bytes)."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "am" or parts[1] != "v1" or parts[4] != "up":
        raise WireError("E_TOPIC")
    try:
        mid = parts[3].encode("ascii")
    except UnicodeEncodeError:
        raise WireError("E_TOPIC") from None
    if len(mid) != 8 or parts[2] != shard(mid):
        raise WireError("E_TOPIC")
    if parts[5] not in KINDS:
        raise WireError("E_KIND")
    return mid, parts[5]


def _seal_ok(payload, key):
    body = payload[:-MAC_LEN]
    tag = hmac.new(bytes(key), body, hashlib.sha256).digest()
    return hmac.compare_digest(tag, payload[-MAC_LEN:])


def _header(payload, mtype, key, meter_id, length=None, minimum=None):
    """Check version, type, length, meter id and HMAC; returns (meter id, flags)."""
    if not payload:
        raise WireError("E_EMPTY")
    if payload[0] != VERSION:
        raise WireError("E_VERSION")
    if len(payload) < 2 or payload[1] != mtype:
        raise WireError("E_TYPE")
    n = len(payload)
    if (length is not None and n != length) or (minimum is not None and n < minimum):
        raise WireError("E_LENGTH")
    _, _, mid, flags = HEAD.unpack_from(payload, 0)
    if not _seal_ok(payload, key):
        raise WireError("E_MAC")
    if meter_id is not None and mid != bytes(meter_id):
        raise WireError("E_METER_ID")
    return mid, flags


def decode_series(payload, key, meter_id=None):
    """Interval values: {"series", "k0", "unit", "flags", "columns": names, "values":
    [(k, (col, ...) or None)]} (None: every column -1, the meter has no value)."""
    payload = bytes(payload)
    mid, flags = _header(payload, T_SERIES, key, meter_id, minimum=19 + 4 * 2 + MAC_LEN)
    series, k0, n, c, unit = SERIES_HEAD.unpack_from(payload, 11)
    if len(payload) != 51 + 4 * c * n:
        raise WireError("E_LENGTH")
    # the HMAC was checked over the whole message: now the fields' ranges
    if SERIES_COLUMNS.get(series) != c or not 1 <= n <= SERIES_MAX_N or k0 + n - 1 > 0xFFFFFFFF:
        raise WireError("E_FIELD")
    row = struct.Struct(">%di" % c)
    values = []
    for i in range(n):
        cols = row.unpack_from(payload, 19 + 4 * c * i)
        values.append((k0 + i, None if all(v == -1 for v in cols) else cols))
    return {"kind": "series", "meter_id": mid, "flags": flags, "series": series, "k0": k0,
            "unit": unit, "columns": COLUMN_NAMES[:c], "values": values}


def decode_event(payload, key, meter_id=None):
    """Event log entries: {"seq", "flags", "entries": [(seq, code, minute, second, a, b)]}."""
    payload = bytes(payload)
    mid, flags = _header(payload, T_EVENT, key, meter_id, minimum=16 + 14 + MAC_LEN)
    seq, n = EVENT_HEAD.unpack_from(payload, 11)
    if len(payload) != 48 + 14 * n:
        raise WireError("E_LENGTH")
    if not 1 <= n <= EVENT_MAX_N or seq + n - 1 > 0xFFFFFFFF:
        raise WireError("E_FIELD")
    entries = [(seq + i,) + EVENT_ENTRY.unpack_from(payload, 16 + 14 * i) for i in range(n)]
    return {"kind": "event", "meter_id": mid, "flags": flags, "seq": seq, "entries": entries}


def decode_birth(payload, key, meter_id=None):
    payload = bytes(payload)
    mid, flags = _header(payload, T_BIRTH, key, meter_id, length=BIRTH_LEN)
    out = {"kind": "birth", "meter_id": mid, "flags": flags}
    out.update(zip(BIRTH_FIELDS, BIRTH_BODY.unpack_from(payload, 11)))
    return out


def decode_snap_block(data, off=0):
    """The instantaneous values (snap bytes 11..46; POLL's response data)."""
    if len(data) - off < SNAP_BLOCK.size:
        raise WireError("E_LENGTH")
    return dict(zip(SNAP_FIELDS, SNAP_BLOCK.unpack_from(data, off)))


def decode_snap(payload, key, meter_id=None):
    payload = bytes(payload)
    mid, flags = _header(payload, T_SNAP, key, meter_id, length=SNAP_LEN)
    out = {"kind": "snap", "meter_id": mid, "flags": flags}
    out.update(decode_snap_block(payload, 11))
    return out


def decode_will(payload, meter_id=None):
    """The broker's Will: not authenticated (a hint only)."""
    payload = bytes(payload)
    if not payload:
        raise WireError("E_EMPTY")
    if payload[0] != VERSION:
        raise WireError("E_VERSION")
    if len(payload) < 2 or payload[1] != T_WILL:
        raise WireError("E_TYPE")
    if len(payload) != WILL_LEN:
        raise WireError("E_LENGTH")
    mid = payload[2:10]
    if meter_id is not None and mid != bytes(meter_id):
        raise WireError("E_METER_ID")
    return {"kind": "will", "meter_id": mid}


def decode_alarm(payload, key, meter_id=None):
    """A sealed outage message (Last Gasp, restoration notice, alarm) through
    headend_alarms; adds "kind": "alarm", "test" (a Last Gasp drill)."""
    payload = bytes(payload)
    try:
        msg = headend_alarms.decode(payload, key)
    except ValueError as e:
        raise WireError(str(e)) from None
    if meter_id is not None and msg["meter_id"] != bytes(meter_id):
        raise WireError("E_METER_ID")
    msg["alarm"] = msg.pop("type")
    msg["kind"] = "alarm"
    msg["test"] = bool(msg["alarm"] == "last_gasp" and msg["flags"] & LG_F_TEST)
    return msg


def decode_resp(payload, key, meter_id):
    """A command response (tools/headend.py parses and verifies it; not bound to a request
    here: the worker matches it by counter and tag)."""
    import headend

    payload = bytes(payload)
    if not payload:
        raise WireError("E_EMPTY")
    try:
        r = headend.HeadEnd(bytes(meter_id), key).parse(payload, check_tag=False)
    except headend.ResponseError as e:
        msg = str(e)
        raise WireError("E_MAC" if "MAC" in msg else
                        "E_METER_ID" if "another meter" in msg else "E_LENGTH") from None
    return {"kind": "resp", "meter_id": r.meter_id, "code": r.code, "counter": r.counter,
            "tag": r.tag, "status": r.status, "data": r.data}


def decode(kind, payload, key, meter_id):
    """Decode and verify one uplink payload that arrived on topic kind `kind` of meter
    `meter_id` (the topic's id: a payload naming another meter is E_METER_ID)."""
    if kind == "will":
        return decode_will(payload, meter_id)
    fn = {"series": decode_series, "event": decode_event, "birth": decode_birth,
          "snap": decode_snap, "alarm": decode_alarm, "resp": decode_resp}.get(kind)
    if fn is None:
        raise WireError("E_KIND")
    return fn(payload, key, meter_id)


# Response data of the A-route command codes (docs/aroute.md, "Downlink: commands").
RANGE_RESP = struct.Struct(">IIH")  # first held, last held, n served
EVENTS_RESP = struct.Struct(">IIH")  # first held, newest, n served
PUSH_SETTINGS = struct.Struct(">BBHHBHB")  # report, on, period, delay max, retries, back-off,
# qos: the arguments' layout; the response carries the report's settings (see parse_push)
FILTER_RESP = struct.Struct(">II")  # register, filter


def parse_range(data):
    first, last, n = RANGE_RESP.unpack(bytes(data))
    return {"first_held": first, "last_held": last, "served": n}


def parse_events(data):
    first, newest, n = EVENTS_RESP.unpack(bytes(data))
    return {"first_held": first, "newest": newest, "served": n}


def parse_push(data):
    """The report's settings: the PUSH argument layout, any further bytes kept raw."""
    data = bytes(data)
    if len(data) < PUSH_SETTINGS.size:
        raise WireError("E_LENGTH")
    names = ("report", "on", "period_min", "delay_max_s", "retries", "backoff_s", "qos")
    out = dict(zip(names, PUSH_SETTINGS.unpack_from(data, 0)))
    out["extra"] = data[PUSH_SETTINGS.size:].hex()
    return out


def parse_filter(data):
    reg, flt = FILTER_RESP.unpack(bytes(data))
    return {"register": reg, "filter": flt}


def alarm_names(register):
    return [name for i, name in enumerate(ALARM_BITS) if register >> i & 1]
