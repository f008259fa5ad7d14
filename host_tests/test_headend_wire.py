# The head-end's decoders (tools/headend_wire.py) against hand-built bytes from docs/aroute.md
# and against the meter's own encoders (firmware/meter/aroute/wire.py, meter/outage/wire.py).
#
# The doc_* builders below are the tests' own encoders, written from the document's offset
# tables with plain byte concatenation (the decoder uses struct.Struct layouts); the
# head-end's other tests publish their messages through them.

import hashlib
import hmac
import struct
import zlib

import pytest

import headend
import headend_wire as W

KEY = bytes(range(32))
MID = b"SIM00001"


def seal(body, key=KEY):
    return body + hmac.new(key, body, hashlib.sha256).digest()


def head(typ, mid=MID, flags=0):
    return bytes([0xA1, typ]) + mid + bytes([flags])


def doc_series(series, k0, rows, unit=0x02, flags=0, mid=MID, key=KEY):
    """rows: [tuple of columns or None (every column -1)]."""
    cols = {1: 2, 5: 5, 30: 2}[series]
    body = head(0x10, mid, flags) + bytes([series]) + k0.to_bytes(4, "big") + \
        bytes([len(rows), cols, unit])
    for r in rows:
        for v in (r if r is not None else (-1,) * cols):
            body += v.to_bytes(4, "big", signed=True)
    return seal(body, key)


def doc_event(seq, entries, flags=0, mid=MID, key=KEY):
    body = head(0x11, mid, flags) + seq.to_bytes(4, "big") + bytes([len(entries)])
    for code, minute, second, a, b in entries:
        body += bytes([code]) + minute.to_bytes(4, "big", signed=True) + bytes([second]) + \
            a.to_bytes(4, "big", signed=True) + b.to_bytes(4, "big", signed=True)
    return seal(body, key)


def doc_birth(boot=1, conn=1, jseq=100, jseal=b"\x11" * 16, minute=14_000_000, alarms=0,
              coefficient=1, mid=MID, key=KEY, cursors=(10, 20, 30, 40)):
    body = head(0x20, mid, 0x04) + boot.to_bytes(4, "big") + conn.to_bytes(2, "big") + \
        (0x0102).to_bytes(2, "big") + bytes([3, 0x09]) + jseq.to_bytes(4, "big") + jseal + \
        minute.to_bytes(4, "big", signed=True) + bytes([7, 0x02]) + \
        coefficient.to_bytes(4, "big") + alarms.to_bytes(4, "big")
    for c in cursors:
        body += c.to_bytes(4, "big")
    return seal(body, key)


def doc_snap_block(minute=14_000_000, second=5, e0=1234, e3=5, power=1500, ir=15_000,
                   it=0, volt=1005, contract=30, limit=20, breaker=0, alarms=0):
    out = minute.to_bytes(4, "big", signed=True) + bytes([second]) + e0.to_bytes(4, "big") + \
        e3.to_bytes(4, "big")
    for v in (power, ir, it, volt):
        out += v.to_bytes(4, "big", signed=True)
    return out + bytes([contract, limit, breaker]) + alarms.to_bytes(4, "big")


def doc_snap(mid=MID, key=KEY, **kw):
    return seal(head(0x12, mid, 0x04) + doc_snap_block(**kw), key)


def doc_will(mid=MID):
    return bytes([0xA1, 0x2F]) + mid


def doc_alarm(code=62, seq=3, minute=14_000_000, second=9, a=1, b=0, mid=MID, key=KEY):
    """Alarm type 0x03 (big-endian, firmware/meter/outage/wire.py's layout)."""
    body = bytes([0x03, code]) + mid + seq.to_bytes(4, "big") + \
        minute.to_bytes(4, "big", signed=True) + bytes([second]) + \
        a.to_bytes(4, "big", signed=True) + b.to_bytes(4, "big", signed=True)
    return seal(body, key)


def doc_last_gasp(seq=1, flags=0x01, minute=14_000_000, repeat=0, e0=1000, mid=MID, key=KEY):
    """Last Gasp alarm type 0x01 (little-endian)."""
    body = bytes([0x01, flags]) + mid + struct.pack("<IIBBIIBI", seq, minute, 3, repeat, e0,
                                                    0, 0x02, 1)
    return seal(body, key)


def doc_resp(code, counter, tag, status, data, mid=MID, key=KEY):
    body = bytes([1, code]) + mid + counter.to_bytes(4, "big") + tag + bytes([status,
                                                                              len(data)]) + data
    return seal(body, key)


def topic(kind, mid=MID):
    return "am/v1/%02x/%s/up/%s" % (zlib.crc32(mid) & 0xFF, mid.decode(), kind)


# ---------------------------------------------------------------- sizes and fields
def test_documented_sizes():
    assert len(doc_series(30, 5, [(1, 2)])) == 59
    assert len(doc_series(5, 5, [(1, 2, 3, 4, 1000)] * 6)) == 171
    assert len(doc_series(5, 5, [(1, 2, 3, 4, 1000)] * 24)) == 531
    assert len(doc_event(1, [(1, 2, 3, 4, 5)])) == 62
    assert len(doc_birth()) == 103
    assert len(doc_snap()) == 79
    assert len(doc_will()) == 10


def test_series_decodes_every_column_and_missing_rows():
    p = doc_series(5, 4_000_000, [(100, 0, 7, 8, 1012), None, (101, 0, 7, 9, 998)],
                   flags=W.F_BACKFILL)
    m = W.decode("series", p, KEY, MID)
    assert m["series"] == 5 and m["k0"] == 4_000_000 and m["unit"] == 2
    assert m["flags"] == W.F_BACKFILL
    assert m["columns"] == ("fwd", "rev", "lag", "lead", "volt")
    assert m["values"] == [(4_000_000, (100, 0, 7, 8, 1012)), (4_000_001, None),
                           (4_000_002, (101, 0, 7, 9, 998))]


def test_event_birth_snap_will_decode():
    e = W.decode("event", doc_event(77, [(62, 14_000_000, 5, 1, 0), (2, -1, 0, 30, 120)]),
                 KEY, MID)
    assert e["entries"] == [(77, 62, 14_000_000, 5, 1, 0), (78, 2, -1, 0, 30, 120)]
    b = W.decode("birth", doc_birth(boot=9, conn=3, jseq=4321, alarms=0b1001), KEY, MID)
    assert (b["boot"], b["conn"], b["fw"], b["reset_kind"], b["state"]) == (9, 3, 0x102, 3, 9)
    assert b["journal_seq"] == 4321 and b["journal_seal"] == b"\x11" * 16
    assert (b["next30"], b["next5"], b["next1"], b["next_event"]) == (10, 20, 30, 40)
    assert W.alarm_names(b["alarm_register"]) == ["LAST_GASP", "BREAKER_FAULT"]
    s = W.decode("snap", doc_snap(e0=99, power=-300, volt=1011), KEY, MID)
    assert (s["e0"], s["power_w"], s["voltage_dv"], s["limit_a"]) == (99, -300, 1011, 20)
    assert W.decode("will", doc_will(), None, MID) == {"kind": "will", "meter_id": MID}


def test_alarm_and_response_decode():
    a = W.decode("alarm", doc_alarm(code=62, seq=4), KEY, MID)
    assert a["alarm"] == "alarm" and a["code"] == 62 and a["seq"] == 4 and not a["test"]
    lg = W.decode("alarm", doc_last_gasp(flags=0x81), KEY, MID)
    assert lg["alarm"] == "last_gasp" and lg["test"]
    r = W.decode("resp", doc_resp(0x20, 5, b"t" * 8, 0, doc_snap_block(e0=42)), KEY, MID)
    assert r["counter"] == 5 and W.decode_snap_block(r["data"])["e0"] == 42


# ---------------------------------------------------------------- rejections
@pytest.mark.parametrize("kind,payload", [
    ("series", doc_series(30, 5, [(1, 2), (3, 4)])), ("event", doc_event(1, [(1, 0, 0, 0, 0)])),
    ("birth", doc_birth()), ("snap", doc_snap()), ("alarm", doc_alarm()),
    ("resp", doc_resp(0x20, 1, b"x" * 8, 0, b""))])
def test_forged_truncated_wrong_key_and_wrong_meter_are_rejected(kind, payload):
    assert W.decode(kind, payload, KEY, MID)["meter_id"] == MID
    for i in (0, len(payload) // 2, len(payload) - 1):  # any flipped bit
        bad = bytearray(payload)
        bad[i] ^= 0x40
        with pytest.raises(W.WireError):
            W.decode(kind, bytes(bad), KEY, MID)
    for n in (0, 1, 11, len(payload) - 33, len(payload) - 1):
        with pytest.raises(W.WireError):
            W.decode(kind, payload[:n], KEY, MID)
    with pytest.raises(W.WireError, match="E_MAC"):
        W.decode(kind, payload, bytes(32), MID)
    with pytest.raises(W.WireError, match="E_METER_ID"):  # sealed right, on another's topic
        W.decode(kind, payload, KEY, b"SIM00002")
    with pytest.raises(W.WireError):
        W.decode(kind, payload + b"\x00", KEY, MID)


def test_message_of_one_kind_never_decodes_as_another():
    msgs = {"series": doc_series(30, 5, [(1, 2)]), "event": doc_event(1, [(1, 0, 0, 0, 0)]),
            "birth": doc_birth(), "snap": doc_snap(), "alarm": doc_alarm(),
            "resp": doc_resp(0x20, 1, b"x" * 8, 0, b"")}
    for kind, p in msgs.items():
        for other in msgs:
            if other != kind:
                with pytest.raises(W.WireError):
                    W.decode(other, p, KEY, MID)


def test_sealed_but_out_of_range_fields_are_rejected():
    # n = 0, too many entries, columns that do not match the series: sealed correctly
    body = head(0x10) + bytes([30]) + (5).to_bytes(4, "big") + bytes([0, 2, 2])
    with pytest.raises(W.WireError, match="E_LENGTH|E_FIELD"):
        W.decode("series", seal(body), KEY, MID)
    body = head(0x10) + bytes([30]) + (5).to_bytes(4, "big") + bytes([1, 5, 2]) + bytes(20)
    with pytest.raises(W.WireError, match="E_FIELD"):
        W.decode("series", seal(body), KEY, MID)
    body = head(0x10) + bytes([15]) + (5).to_bytes(4, "big") + bytes([1, 2, 2]) + bytes(8)
    with pytest.raises(W.WireError, match="E_FIELD"):
        W.decode("series", seal(body), KEY, MID)
    body = head(0x10) + bytes([30]) + (5).to_bytes(4, "big") + bytes([25, 2, 2]) + bytes(200)
    with pytest.raises(W.WireError, match="E_FIELD"):
        W.decode("series", seal(body), KEY, MID)
    body = head(0x11) + (1).to_bytes(4, "big") + bytes([17]) + bytes(14 * 17)
    with pytest.raises(W.WireError, match="E_FIELD"):
        W.decode("event", seal(body), KEY, MID)
    with pytest.raises(W.WireError, match="E_VERSION"):
        W.decode("birth", b"\xa2" + doc_birth()[1:], KEY, MID)


def test_topics():
    assert W.parse_topic(topic("series")) == (MID, "series")
    assert W.up_topic(MID, "birth") == topic("birth")
    assert W.down_topic(MID) == topic("x")[:-4] + "down"
    sh = "%02x" % ((zlib.crc32(MID) & 0xFF) ^ 1)
    for t in ("am/v1/%s/SIM00001/up/series" % sh, "am/v1/zz/SIM0001/up/series",
              "am/v2/00/SIM00001/up/series", topic("series") + "/x",
              topic("x")[:-4] + "down"):
        with pytest.raises(W.WireError, match="E_TOPIC"):
            W.parse_topic(t)
    with pytest.raises(W.WireError, match="E_KIND"):
        W.parse_topic(topic("bogus"))


# ---------------------------------------------------------------- the meter's encoders
def meter_encoder():
    from meter import mac
    from meter.aroute import wire

    return wire, wire.Encoder(MID, mac.Hmac(KEY))


def test_meter_series_and_event_messages_decode():
    wire, enc = meter_encoder()
    enc.series_begin(5, 4_800_000, 3, 5, 0x02, wire.F_BACKFILL | wire.F_CLOCK_VALID)
    rows = [(10, 1, 2, 3, 1001), (-1,) * 5, (12, 1, 2, 4, 999)]
    for i, r in enumerate(rows):
        for c, v in enumerate(r):
            enc.series_put(i, c, v)
    p = bytes(enc.seal(wire.series_len(3, 5)))
    m = W.decode("series", p, KEY, MID)
    assert m["values"] == [(4_800_000, rows[0]), (4_800_001, None), (4_800_002, rows[2])]
    assert m["flags"] == W.F_BACKFILL | W.F_CLOCK_VALID
    enc.event_begin(900, 2, 0)
    enc.event_put(0, 62, 14_000_000, 1, 1, 0)
    enc.event_put(1, 90, 14_000_001, 2, 3, 7)
    e = W.decode("event", bytes(enc.seal(wire.event_len(2))), KEY, MID)
    assert e["entries"] == [(900, 62, 14_000_000, 1, 1, 0), (901, 90, 14_000_001, 2, 3, 7)]


def test_meter_birth_snap_will_decode_and_shard_agrees():
    wire, enc = meter_encoder()
    seal16 = bytes(range(16))
    p = bytes(enc.birth(7, 2, 0x0103, 1, 0x09, 5555, seal16, 14_000_123, 42, 0x02, 10, 0x9,
                        100, 200, 300, 400, wire.F_CLOCK_VALID))
    b = W.decode("birth", p, KEY, MID)
    assert (b["boot"], b["conn"], b["fw"], b["journal_seq"], b["journal_seal"]) == \
        (7, 2, 0x0103, 5555, seal16)
    assert (b["minute"], b["second"], b["coefficient"], b["alarm_register"]) == \
        (14_000_123, 42, 10, 9)
    assert (b["next30"], b["next5"], b["next1"], b["next_event"]) == (100, 200, 300, 400)
    p = bytes(enc.snap(14_000_124, 3, 777, 8, 1200, 12_000, 0, 1003, 30, 20, 1, 0x8, 0))
    s = W.decode("snap", p, KEY, MID)
    assert (s["e0"], s["e3"], s["power_w"], s["breaker"], s["alarm_register"]) == \
        (777, 8, 1200, 1, 8)
    assert W.decode("will", enc.will(), None, MID)["meter_id"] == MID
    assert wire.topic_base(MID).decode() == topic("x")[:-len("up/x")]


def test_meter_outage_messages_decode_with_test_flag():
    from meter import mac
    from meter.outage import wire as ow

    lg = ow.LastGaspAlarm(MID, mac.Hmac(KEY))
    lg.pack(ow.F_CLOCK_VALID | 0x80, 12, 14_000_000, 5, 900, 3, 0x02, 1)
    m = W.decode("alarm", bytes(lg.buf), KEY, MID)
    assert m["alarm"] == "last_gasp" and m["test"] and m["seq"] == 12 and m["e0"] == 900
    al = ow.AlarmMessage(MID, mac.Hmac(KEY))
    al.pack(62, 4, -1, 0, 1, 0)
    m = W.decode("alarm", bytes(al.buf), KEY, MID)
    assert (m["code"], m["minute"], m["test"]) == (62, -1, False)


# ---------------------------------------------------------------- command builders
def test_aroute_command_builders_follow_the_document():
    he = headend.HeadEnd(MID, KEY, counter=40)

    def args(req):
        n = req[18]
        return req[1], req[19:19 + n]

    assert args(he.poll(100)) == (0x20, b"")
    assert args(he.range_read(5, 1, 10, 20, 100)) == (0x21, b"\x05\x01" + struct.pack(
        ">ii", 10, 20))
    assert args(he.events(7, 16, 100)) == (0x22, struct.pack(">IH", 7, 16))
    assert args(he.push(5, True, 5, 60, 3, 30, 1, 100)) == (
        0x23, bytes([5, 1]) + struct.pack(">HHBHB", 5, 60, 3, 30, 1))
    assert args(he.clock(14_000_000, 30, True, 100)) == (0x24, struct.pack(">iBB", 14_000_000,
                                                                           30, 1))
    assert args(he.alarm_filter(0xF0, 100)) == (0x26, struct.pack(">I", 0xF0))
    assert args(he.alarm_clear(0x1, 100)) == (0x27, struct.pack(">I", 1))
    assert args(he.lg_test(100)) == (0x28, b"")
    assert args(he.collector("10.0.0.7", 4000, 100)) == (0x29, bytes([10, 0, 0, 7]) +
                                                          struct.pack(">H", 4000))
    new_key = bytes(range(100, 116))
    req = he.broute_key(new_key, 100)
    code, wrapped = args(req)
    counter = struct.unpack_from(">I", req, 10)[0]
    pad = hmac.new(KEY, b"BRK" + struct.pack(">I", counter), hashlib.sha256).digest()[:16]
    assert code == 0x25 and bytes(a ^ b for a, b in zip(wrapped, pad)) == new_key
    assert counter == he.counter == 50  # one counter per request, signed as every request
    assert hmac.new(KEY, req[:-32], hashlib.sha256).digest() == req[-32:]
