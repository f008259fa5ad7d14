"""The sans-IO MQTT 3.1.1 client (meter.aroute.mqtt) against packets built by hand from the
spec's layouts (section numbers of MQTT 3.1.1 OASIS Standard): every packet it sends and
accepts, the remaining-length varint, keep-alive and timeouts on the wrapping ms clock, and
malformed input: each refused with its own E_ code, counted, the client DOWN, no exception.
"""

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meter.aroute import mqtt
from meter.aroute.mqtt import Client, encode_remlen, publish_size
from meter.errors import SettingError
from meter.ticks import TICKS_MASK, add_ms


def out(c):
    """Everything the client wants to write (and mark it written)."""
    b = bytes(c.outgoing())
    c.written(len(b))
    return b


class Rec:
    def __init__(self, c):
        self.connacks, self.pubacks, self.msgs, self.subacks = [], [], [], []
        c.on_connack = lambda sp, rc: self.connacks.append((sp, rc))
        c.on_puback = self.pubacks.append
        c.on_suback = lambda mid, g: self.subacks.append((mid, g))
        c.on_message = self.message
        self.kinds = []

    def message(self, topic, payload, qos, dup):
        self.kinds.append((type(topic), type(payload)))
        self.msgs.append((bytes(topic), bytes(payload), qos, dup))


def up(now=0, **kw):
    kw.setdefault("keepalive_s", 60)
    c = Client(b"meter-1", **kw)
    r = Rec(c)
    c.start(now)
    out(c)
    assert c.received(b"\x20\x02\x00\x00", now) == 0
    assert c.state == mqtt.UP
    return c, r


def rl(n):
    b = bytearray(4)
    return bytes(b[:encode_remlen(b, 0, n)])


# -- what the client sends --------------------------------------------------------------------

def test_connect_is_the_3_1_layout_with_protocol_level_4_and_the_keepalive():
    c = Client(b"meter-1", keepalive_s=60, clean=False)
    assert c.state == mqtt.DOWN and bytes(c.outgoing()) == b""
    c.start(0)
    assert c.state == mqtt.HANDSHAKE
    assert out(c) == (b"\x10\x13" b"\x00\x04MQTT" b"\x04" b"\x00" b"\x00\x3c"
                      b"\x00\x07meter-1")


def test_connect_with_will_user_password_and_clean_session_in_payload_order():
    c = Client("m", keepalive_s=300, clean=True, will=(b"am/w", b"\xa1\x2f", 1),
               username="u1", password=b"pw")
    c.start(0)
    body = (b"\x00\x04MQTT\x04" + bytes([0x80 | 0x40 | 0x08 | 0x04 | 0x02]) + b"\x01\x2c"
            + b"\x00\x01m" + b"\x00\x04am/w" + b"\x00\x02\xa1\x2f" + b"\x00\x02u1"
            + b"\x00\x02pw")
    assert out(c) == b"\x10" + rl(len(body)) + body


def test_a_retained_will_sets_the_will_retain_flag_and_qos_0_leaves_the_qos_bits_clear():
    c = Client(b"m", will=(b"t", b"", 0, True))
    c.start(0)
    assert out(c)[9] == 0x20 | 0x04


def test_settings_the_spec_forbids_are_refused_at_construction():
    with pytest.raises(SettingError, match="E_PASSWORD"):
        Client(b"m", password=b"x")  # 3.1.2-22
    with pytest.raises(SettingError, match="E_CLIENT_ID"):
        Client(b"", clean=False)  # 3.1.3-7
    with pytest.raises(SettingError, match="E_QOS"):
        Client(b"m", will=(b"t", b"", 2))
    with pytest.raises(SettingError, match="E_TOPIC"):
        Client(b"m", will=(b"t/#", b"", 0))
    with pytest.raises(SettingError, match="E_KEEPALIVE"):
        Client(b"m", keepalive_s=65_536)
    Client(b"", clean=True)


def test_publish_qos1_and_qos0_retained_are_3_3_layouts():
    c, _ = up()
    assert c.publish(b"a/b", b"hi", qos=1) == 1
    assert out(c) == b"\x32\x09\x00\x03a/b\x00\x01hi"
    assert c.publish(b"a/b", b"hi", qos=0, retain=True) == 0
    assert out(c) == b"\x31\x07\x00\x03a/bhi"
    assert c.inflight == 1


def test_publish_copies_topic_and_payload_so_the_caller_may_reuse_its_buffers():
    c, _ = up()
    payload = bytearray(b"first")
    c.publish(b"t", payload, qos=0)
    payload[:] = b"XXXXX"
    assert out(c) == b"\x30\x08\x00\x01tfirst"


def test_publish_size_is_what_the_packet_takes():
    c, _ = up()
    for tl, pl, q in ((3, 0, 0), (10, 100, 1), (40, 300, 1), (1, 124, 0)):
        c.publish(b"x" * tl, b"y" * pl, qos=q)
        assert len(out(c)) == publish_size(tl, pl, q)


def test_subscribe_is_the_3_8_layout_and_suback_reports_the_granted_qos():
    c, r = up()
    mid = c.subscribe(b"am/v1/+/m1/down", qos=1)
    assert mid == 1
    assert out(c) == b"\x82\x14\x00\x01\x00\x0fam/v1/+/m1/down\x01"
    assert c.received(b"\x90\x03\x00\x01\x01", 0) == 0
    assert r.subacks == [(1, 1)]
    mid = c.subscribe(b"x")
    out(c)
    assert c.received(b"\x90\x03\x00\x02\x80", 0) == 0  # failure: reported, not a drop
    assert r.subacks[-1] == (2, 0x80) and c.state == mqtt.UP


def test_disconnect_is_e0_00_and_ends_the_session():
    c, _ = up()
    assert c.disconnect() is True
    assert out(c) == b"\xe0\x00" and c.state == mqtt.DOWN
    assert c.disconnect() is False
    assert c.publish(b"t", b"x") == -1


# -- what the client accepts ------------------------------------------------------------------

def test_connack_session_present_and_refusals():
    c = Client(b"m")
    r = Rec(c)
    c.start(0)
    assert c.received(b"\x20\x02\x01\x00", 0) == 0
    assert c.session_present and r.connacks == [(True, 0)] and c.state == mqtt.UP
    for rc in (1, 2, 3, 4, 5, 6):
        c.start(0)
        assert c.received(bytes([0x20, 2, 0, rc]), 0) == mqtt.E_REFUSED
        assert r.connacks[-1] == (False, rc) and c.state == mqtt.DOWN
    assert c.errors[mqtt.E_REFUSED] == 6 and c.malformed == 0


def test_puback_retires_the_message_and_calls_on_puback():
    c, r = up()
    m1 = c.publish(b"t", b"1")
    m2 = c.publish(b"t", b"2")
    out(c)
    assert c.inflight == 2
    assert c.received(bytes([0x40, 2, 0, m2]), 5) == 0
    assert r.pubacks == [m2] and c.inflight == 1
    assert c.received(bytes([0x40, 2, 0, 9]), 5) == 0  # an id not in flight: counted only
    assert c.stray == 1 and c.inflight == 1 and c.state == mqtt.UP
    assert c.received(bytes([0x40, 2, 0, m1]), 5) == 0 and c.inflight == 0


def test_incoming_publish_qos0_and_qos1_give_views_into_rx_and_qos1_is_acked_after():
    c, r = up()
    assert c.received(b"\x30\x0a\x00\x03a/bhello", 0) == 0
    assert bytes(c.outgoing()) == b""  # QoS 0: no acknowledgement
    acked_during = []
    c.on_message = lambda t, p, q, d: (acked_during.append(bytes(c.outgoing())),
                                       r.message(t, p, q, d))
    assert c.received(b"\x3a\x0a\x00\x03a/b\x12\x34cmd", 0) == 0  # DUP, QoS 1
    assert acked_during == [b""]  # the PUBACK is queued after on_message returns
    assert out(c) == b"\x40\x02\x12\x34"
    assert r.msgs == [(b"a/b", b"hello", 0, 0), (b"a/b", b"cmd", 1, 1)]
    assert r.kinds[0] == (memoryview, memoryview)
    assert c.received(b"\x31\x05\x00\x01tzz", 0) == 0 and c.retain == 1


def test_packets_split_anywhere_or_joined_give_the_same_events():
    stream = (b"\x40\x02\x00\x01" + b"\x30\x0a\x00\x03a/bhello" + b"\xd0\x00"
              + b"\x32\x0a\x00\x03a/b\x00\x07cmd" + b"\x90\x03\x00\x02\x01")

    def run(chunks):
        c, r = up()
        c.publish(b"t", b"x")
        c.subscribe(b"s")
        out(c)
        c.poll(60_000)  # a PINGREQ is out
        out(c)
        for ch in chunks:
            assert c.received(ch, 60_001) == 0
        return r.pubacks, r.msgs, r.subacks, out(c), c._ping_out

    whole = run([stream])
    assert run([stream[i:i + 1] for i in range(len(stream))]) == whole
    assert run([stream[:7], stream[7:20], stream[20:]]) == whole
    assert whole[0] == [1] and len(whole[1]) == 2 and whole[2] == [(2, 1)]
    assert whole[3] == b"\x40\x02\x00\x07" and whole[4] is False


def test_received_takes_a_count_of_a_larger_buffer():
    c, r = up()
    buf = bytearray(64)
    pkt = b"\x30\x05\x00\x01tab"
    buf[:len(pkt)] = pkt
    assert c.received(memoryview(buf), 0, len(pkt)) == 0
    assert r.msgs == [(b"t", b"ab", 0, 0)]


# -- remaining length (2.2.3) -----------------------------------------------------------------

REMLEN = [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"),
          (16_384, b"\x80\x80\x01"), (2_097_151, b"\xff\xff\x7f"),
          (2_097_152, b"\x80\x80\x80\x01"), (268_435_455, b"\xff\xff\xff\x7f")]


@pytest.mark.parametrize("n,enc", REMLEN)
def test_remaining_length_encodes_as_the_spec_table(n, enc):
    assert rl(n) == enc and mqtt.remlen_size(n) == len(enc)


@pytest.mark.parametrize("n,enc", REMLEN)
def test_remaining_length_decodes_incrementally(n, enc):
    c, r = up(rx_size=20_000, tx_size=40_000)
    if n == 0:
        c.publish(b"t", b"x")
        c.poll(60_000)
        assert c.received(b"\xd0" + enc, 1) == 0 and c.last_remlen == 0
        return
    if n <= 20_000:  # a real PUBLISH of that size, round trip
        body = b"\x00\x01t" + b"p" * (n - 3)
        pkt = b"\x30" + enc + body
        assert c.received(pkt, 0) == 0 and c.last_remlen == n
        assert r.msgs[-1][1] == b"p" * (n - 3)
        c.publish(b"t", b"p" * (n - 3), qos=0)
        assert out(c) == pkt
    else:  # larger than rx: the header is read, the body is skipped (not kept, not delivered)
        assert c.received(b"\x30" + enc + b"\x00\x01t", 0) == 0 and c.last_remlen == n
        assert c.state == mqtt.UP and len(c._rx) == 20_000


def test_an_oversize_qos1_publish_is_skipped_acknowledged_and_counted():
    # A persistent session's broker redelivers an unacknowledged message at every
    # reconnect: refusing it would lock the meter out, so it is read through and PUBACKed.
    for chunking in (1, 7, 5000):
        c, r = up(rx_size=64)
        body = b"\x00\x04down\x12\x34" + b"z" * 3000
        pkt = b"\x32" + bytes(encode_remlen_bytes(len(body))) + body
        for i in range(0, len(pkt), chunking):
            assert c.received(pkt[i:i + chunking], 0) == 0
        assert c.state == mqtt.UP and r.msgs == []
        assert c.oversize == 1 and c.errors[mqtt.E_OVERSIZE] == 1 and c.malformed == 0
        assert out(c) == b"\x40\x02\x12\x34"
        assert len(c._rx) == 64  # nothing grew
        ok = b"\x30\x06\x00\x01tabc"  # the next packet is parsed normally
        assert c.received(ok, 0) == 0 and r.msgs[-1][1] == b"abc"


def test_an_oversize_publish_whose_topic_does_not_fit_drops_the_session():
    c, _ = up(rx_size=16)
    body = b"\x00\x40" + b"t" * 64 + b"\x00\x01" + b"p" * 10
    pkt = b"\x32" + bytes(encode_remlen_bytes(len(body))) + body
    assert c.received(pkt, 0) == mqtt.E_OVERSIZE and c.state == mqtt.DOWN


def encode_remlen_bytes(n):
    buf = bytearray(4)
    k = encode_remlen(buf, 0, n)
    return buf[:k]


def test_a_fifth_remaining_length_byte_is_refused():
    c, _ = up()
    assert c.received(b"\x30\xff\xff\xff\xff\x7f", 0) == mqtt.E_REMLEN
    with pytest.raises(SettingError):
        encode_remlen(bytearray(8), 0, 268_435_456)


# -- malformed input --------------------------------------------------------------------------

MALFORMED = [
    ("qos 3", b"\x36\x05\x00\x01t\x00\x01", mqtt.E_QOS3),
    ("qos 2 publish", b"\x34\x05\x00\x01t\x00\x01", mqtt.E_QOS2),
    ("pubrec", b"\x50\x02\x00\x01", mqtt.E_QOS2),
    ("pubrel", b"\x62\x02\x00\x01", mqtt.E_QOS2),
    ("pubcomp", b"\x70\x02\x00\x01", mqtt.E_QOS2),
    ("puback flags", b"\x42\x02\x00\x01", mqtt.E_FLAGS),
    ("pingresp flags", b"\xd1\x00", mqtt.E_FLAGS),
    ("dup on qos 0", b"\x38\x04\x00\x01tx", mqtt.E_FLAGS),
    ("reserved type 0", b"\x00\x00", mqtt.E_TYPE),
    ("reserved type 15", b"\xf0\x00", mqtt.E_TYPE),
    ("connect from the server", b"\x10\x00", mqtt.E_TYPE),
    ("subscribe from the server", b"\x82\x00", mqtt.E_TYPE),
    ("pingreq from the server", b"\xc0\x00", mqtt.E_TYPE),
    ("disconnect from the server", b"\xe0\x00", mqtt.E_TYPE),
    ("unsuback never asked for", b"\xb0\x02\x00\x01", mqtt.E_UNEXPECTED),
    ("second connack", b"\x20\x02\x00\x00", mqtt.E_UNEXPECTED),
    ("connack too long", b"\x20\x03\x00\x00\x00", mqtt.E_LENGTH),
    ("puback too short", b"\x40\x01\x00", mqtt.E_LENGTH),
    ("pingresp with a body", b"\xd0\x01\x00", mqtt.E_LENGTH),
    ("suback with two codes", b"\x90\x04\x00\x01\x01\x01", mqtt.E_LENGTH),
    ("publish too short for a topic", b"\x30\x02\x00\x00", mqtt.E_LENGTH),
    ("publish qos1 too short for an id", b"\x32\x04\x00\x01t\x00", mqtt.E_LENGTH),
    ("topic past the end", b"\x30\x05\x00\x09abc", mqtt.E_TOPIC),
    ("empty topic", b"\x30\x03\x00\x00x", mqtt.E_TOPIC),
    ("wildcard topic", b"\x30\x05\x00\x03a/#", mqtt.E_TOPIC),
    ("plus topic", b"\x30\x05\x00\x03+/a", mqtt.E_TOPIC),
    ("nul in topic", b"\x30\x05\x00\x03a\x00b", mqtt.E_TOPIC),
    ("publish id 0", b"\x32\x05\x00\x01t\x00\x00", mqtt.E_MID),
    ("puback id 0", b"\x40\x02\x00\x00", mqtt.E_MID),
    ("suback code 3", b"\x90\x03\x00\x01\x03", mqtt.E_SUBACK),
]


@pytest.mark.parametrize("name,pkt,code", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_packets_are_refused_with_their_code_and_counted(name, pkt, code):
    for chunking in (1, len(pkt)):
        c, r = up(rx_size=1024)
        c.publish(b"t", b"x")
        out(c)
        got = 0
        for i in range(0, len(pkt), chunking):
            got = c.received(pkt[i:i + chunking], 0)
            if got:
                break
        assert got == code
        assert c.errors[code] == 1 and c.malformed == 1 and c.last_error == code
        assert c.state == mqtt.DOWN and c.inflight == 0 and r.msgs == []
        assert c.received(b"\x40\x02\x00\x01", 0) == mqtt.E_STATE  # nothing more taken


def test_anything_but_connack_first_is_refused():
    c = Client(b"m")
    c.start(0)
    assert c.received(b"\x40\x02\x00\x01", 0) == mqtt.E_UNEXPECTED
    c.start(0)
    assert c.received(b"\x20\x02\x02\x00", 0) == mqtt.E_FLAGS  # reserved ack flag bits
    c.start(0)
    assert c.received(b"\x20\x02\x01\x02", 0) == mqtt.E_FLAGS  # 3.2.2-4
    c.start(0)
    assert c.received(b"\x21\x02\x00\x00", 0) == mqtt.E_FLAGS


def test_a_truncated_packet_waits_and_lost_forgets_it():
    c, r = up()
    assert c.received(b"\x30\x0a\x00\x03a/bhel", 0) == 0
    assert r.msgs == [] and c.state == mqtt.UP
    c.lost()
    c.start(0)
    assert c.received(b"\x20\x02\x00\x00" b"\x30\x04\x00\x01tx", 0) == 0
    assert r.msgs == [(b"t", b"x", 0, 0)]


def test_a_flood_of_qos1_messages_stops_at_tx_room_not_memory():
    c, r = up(tx_size=64, rx_size=64)
    msg = b"\x32\x05\x00\x01t\x00\x01"
    assert c.can_take(7)
    got = 0
    n = 0
    while not got:
        got = c.received(msg, 0)
        n += 1
    assert got == mqtt.E_TXFULL and len(r.msgs) == n - 1 == 16  # 64 bytes of PUBACKs
    assert c.malformed == 0 and c.errors[mqtt.E_TXFULL] == 1
    c2, _ = up(tx_size=64, rx_size=64)
    assert c2.can_take(63) and not c2.can_take(200)


# -- message ids, window, room ----------------------------------------------------------------

def test_message_ids_wrap_to_1_and_skip_ids_in_flight():
    c, r = up(window=4)
    c._mid = 65_533
    mids = [c.publish(b"t", b"x") for _ in range(3)]
    assert mids == [65_534, 65_535, 1]
    c.received(b"\x40\x02\xff\xfe", 0)  # 65534 acknowledged, 65535 and 1 still in flight
    c._mid = 65_534
    assert c.publish(b"t", b"x") == 2  # not 65535 nor 1: still in flight
    out(c)
    seen = set()
    for _ in range(70_000):
        m = c.publish(b"t", b"x")
        assert 1 <= m <= 65_535 and m not in (65_535, 1, 2)
        seen.add(m)
        out(c)
        c.received(bytes([0x40, 2, m >> 8, m & 0xFF]), 0)
    assert len(seen) == 65_532


def test_publish_refuses_when_not_up_window_full_or_tx_full():
    c = Client(b"m", window=2, tx_size=200)
    assert c.publish(b"t", b"x") == -1  # DOWN
    c.start(0)
    assert c.publish(b"t", b"x") == -1  # HANDSHAKE
    c.received(b"\x20\x02\x00\x00", 0)
    assert c.publish(b"t", b"x") > 0 and c.publish(b"t", b"x") > 0
    assert c.publish(b"t", b"x") == -1 and c.inflight == 2  # window
    assert c.publish(b"t", b"x", qos=0) == 0  # QoS 0 is not windowed
    room = c.room()
    assert publish_size(1, room - 6, 0) == room  # 2-byte remaining length: 6 of header
    assert c.publish(b"t", b"y" * (room - 5), qos=0) == -1  # one byte too many
    assert c.publish(b"t", b"y" * (room - 6), qos=0) == 0
    assert c.room() == 0 and c.publish(b"t", b"", qos=0) == -1
    out(c)
    assert c.room() == 200 - 8
    with pytest.raises(SettingError, match="E_TOO_LARGE"):
        c.publish(b"t", b"z" * 300)
    with pytest.raises(SettingError, match="E_QOS"):
        c.publish(b"t", b"z", qos=2)
    with pytest.raises(SettingError, match="E_TOPIC"):
        c.publish(b"a/+", b"z")


def test_partial_writes_and_compaction_keep_the_byte_stream_intact():
    c, _ = up(tx_size=128, window=64)
    sent = bytearray()
    for i in range(200):
        payload = bytes([i]) * (i % 37)
        m = c.publish(b"t/x", payload, qos=i % 2)
        if m < 0:
            v = bytes(c.outgoing())
            c.written(len(v) // 3 + 1)
            sent += v[:len(v) // 3 + 1]
    sent += out(c)
    # parse what went out: a sequence of complete PUBLISH packets
    pos = n = 0
    while pos < len(sent):
        assert sent[pos] & 0xF0 == 0x30
        length, shift, p = 0, 0, pos + 1
        while True:
            b = sent[p]
            length |= (b & 0x7F) << shift
            p += 1
            if not b & 0x80:
                break
            shift += 7
        assert sent[p:p + 5] == b"\x00\x03t/x" and p + length <= len(sent)
        pos = p + length
        n += 1
    assert pos == len(sent) and n > 100


def test_lost_forgets_inflight_and_pending_bytes():
    c, _ = up()
    c.publish(b"t", b"x")
    c.publish(b"t", b"y")
    c.lost()
    assert c.inflight == 0 and bytes(c.outgoing()) == b"" and c.state == mqtt.DOWN


# -- keep-alive and timeouts on the wrapping clock --------------------------------------------

@pytest.mark.parametrize("t0", [0, TICKS_MASK - 1_500, TICKS_MASK])
def test_keepalive_pings_when_idle_and_a_missing_pingresp_drops(t0):
    c = Client(b"m", keepalive_s=2, timeout_ms=3_000)
    c.start(t0)
    out(c)
    c.received(b"\x20\x02\x00\x00", t0)
    assert c.poll(add_ms(t0, 1_999)) == 0 and out(c) == b""
    assert c.poll(add_ms(t0, 2_000)) == 0 and out(c) == b"\xc0\x00" and c.pings == 1
    assert c.poll(add_ms(t0, 2_500)) == 0 and out(c) == b""  # one ping outstanding
    assert c.received(b"\xd0\x00", add_ms(t0, 2_600)) == 0
    assert c.poll(add_ms(t0, 3_999)) == 0 and out(c) == b""  # the ping was the last send
    assert c.poll(add_ms(t0, 4_000)) == 0 and out(c) == b"\xc0\x00"
    assert c.poll(add_ms(t0, 6_999)) == 0
    assert c.poll(add_ms(t0, 7_000)) == mqtt.E_PING_TIMEOUT and c.state == mqtt.DOWN
    assert c.errors[mqtt.E_PING_TIMEOUT] == 1 and c.malformed == 0


def test_a_ping_goes_out_while_publishing_if_nothing_comes_back():
    c, _ = up(keepalive_s=2)
    for t in range(0, 2_000, 500):
        c.publish(b"t", b"x", qos=0)
        assert c.poll(t) == 0
        assert out(c)[0] == 0x30
    c.publish(b"t", b"x", qos=0)
    c.poll(2_000)
    assert out(c).endswith(b"\xc0\x00")


def test_connack_timeout():
    c = Client(b"m", timeout_ms=5_000)
    c.start(TICKS_MASK - 10)
    assert c.poll(add_ms(TICKS_MASK - 10, 4_999)) == 0
    assert c.poll(add_ms(TICKS_MASK - 10, 5_000)) == mqtt.E_CONNACK_TIMEOUT
    assert c.state == mqtt.DOWN


def test_keepalive_0_never_pings():
    c, _ = up(keepalive_s=0)
    for t in range(0, 10_000_000, 100_000):
        assert c.poll(t) == 0
    assert out(c) == b"" and c.pings == 0


# -- fuzz ---------------------------------------------------------------------------------

def sane(c):
    assert c.state in (mqtt.DOWN, mqtt.HANDSHAKE, mqtt.UP)
    assert c.inflight == sum(1 for m in c._fly if m) and 0 <= c.inflight <= c.window
    assert 0 <= c._ts <= c._te <= len(c._tx) and len(c._rx) == 256 and len(c._tx) == 512
    assert sum(c.errors.values()) >= c.malformed


def fuzz_client():
    c = Client(b"m", rx_size=256, tx_size=512, window=4)
    c.start(0)
    c.received(b"\x20\x02\x00\x00", 0)
    c.publish(b"t", b"x")
    c.publish(b"t", b"y")
    c.subscribe(b"s/#")
    out(c)
    return c


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 64))
def test_fuzz_random_bytes_never_raise_and_leave_the_client_sane(data, chunk):
    c = fuzz_client()
    for i in range(0, len(data), chunk):
        e = c.received(data[i:i + chunk], i)
        assert e == 0 or e in mqtt.ERRORS
        sane(c)
        if e:
            assert c.state == mqtt.DOWN and c.last_error == e
            break
        assert c.poll(i) in (0,) + mqtt.ERRORS
        out(c)


packet = st.tuples(st.integers(0, 255), st.binary(max_size=40)).map(
    lambda t: bytes([t[0]]) + rl(len(t[1])) + t[1])
plausible = st.tuples(st.sampled_from([0x20, 0x30, 0x31, 0x32, 0x3a, 0x40, 0x90, 0xd0]),
                      st.binary(max_size=40)).map(
    lambda t: bytes([t[0]]) + rl(len(t[1])) + t[1])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(packet, plausible), max_size=30))
def test_fuzz_framed_packets_reach_every_check_and_never_raise(packets):
    c = fuzz_client()
    for p in packets:
        e = c.received(p, 0)
        assert e == 0 or e in mqtt.ERRORS
        sane(c)
        if e:
            break
        out(c)


def test_a_megabyte_of_noise_allocates_nothing_that_lasts():
    import random

    rnd = random.Random(7)
    c = fuzz_client()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        peak = 0
        for _ in range(4_000):
            if c.state == mqtt.DOWN:
                c.start(0)
                c.received(b"\x20\x02\x00\x00", 0)
            blob = rnd.randbytes(256)
            c.received(blob, 0)
            out(c)
            peak = max(peak, tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, peak
    sane(c)
