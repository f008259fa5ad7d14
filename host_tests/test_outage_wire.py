"""The outage wire formats: what the firmware encodes (meter/outage/wire.py) the head-end's own
decoder (tools/headend_alarms.py, written from the documented layout) reads back field by field,
and it rejects forged, truncated and mistyped messages with a code."""

import ast
import hashlib
import hmac
import os
import struct

import pytest
from hypothesis import given, strategies as st

import headend_alarms as he
from meter.mac import Hmac
from meter.outage import wire as W
from paths import ROOT

KEY = b"wire-test-key-0123456789abcdef!!"
ID = b"WIRE0001"

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0x3FFF_FFFF)  # what the firmware's small ints can carry
i32 = st.integers(-(1 << 29), (1 << 29) - 1)
second = st.integers(0, 59)


def gasp(flags=W.F_CLOCK_VALID, seq=7, start_minute=12_960_480, start_second=42, e0=99_999_999,
         e3=1234, unit=0x04, coefficient=10):
    m = W.LastGaspAlarm(ID, Hmac(KEY))
    m.pack(flags, seq, start_minute, start_second, e0, e3, unit, coefficient)
    return m


NOTICE = dict(flags=W.F_REBOOTED | W.F_END_VALID, seq=8, start_minute=12_960_480,
              start_second=42, end_minute=12_960_541, end_second=3, duration_s=3661,
              sequence_ms=1005, failures=17, long_failures=3, long_duration_s=86_400,
              e0=5_000_000, alarm_seq=7, suppressed=2, dips=9)


def notice(**kw):
    f = dict(NOTICE, **kw)
    m = W.RestorationNotice(ID, Hmac(KEY))
    m.pack(f["flags"], f["seq"], f["start_minute"], f["start_second"], f["end_minute"],
           f["end_second"], f["duration_s"], f["sequence_ms"], f["failures"],
           f["long_failures"], f["long_duration_s"], f["e0"], f["alarm_seq"], f["suppressed"],
           f["dips"])
    return m


def alarm(code=0x52, seq=3, minute=-1, sec=59, a=-5, b=1 << 28):
    m = W.AlarmMessage(ID, Hmac(KEY))
    m.pack(code, seq, minute, sec, a, b)
    return m


def test_a_last_gasp_alarm_decodes_field_by_field():
    d = he.decode_outage(bytes(gasp().buf), KEY)
    assert d == {"type": "last_gasp", "flags": W.F_CLOCK_VALID, "meter_id": ID, "seq": 7,
                 "start_minute": 12_960_480, "start_second": 42, "repeat": 0, "e0": 99_999_999,
                 "e3": 1234, "unit": 0x04, "coefficient": 10}


def test_a_repeat_carries_its_index_under_a_fresh_seal():
    m = gasp()
    first = bytes(m.buf)
    m.repeat(2)
    assert he.decode(bytes(m.buf), KEY)["repeat"] == 2
    assert bytes(m.buf)[:W._GASP_REPEAT] == first[:W._GASP_REPEAT]
    assert bytes(m.buf)[W._GASP_REPEAT + 1:W._GASP_BODY_LEN] == \
        first[W._GASP_REPEAT + 1:W._GASP_BODY_LEN]


def test_a_restoration_notice_decodes_field_by_field():
    d = he.decode_outage(bytes(notice().buf), KEY)
    assert d == dict(NOTICE, type="restored", meter_id=ID)


def test_suppressed_and_dips_saturate_at_16_bits():
    d = he.decode(bytes(notice(suppressed=70_000, dips=1 << 20).buf), KEY)
    assert d["suppressed"] == 0xFFFF and d["dips"] == 0xFFFF


def test_an_alarm_decodes_field_by_field_with_signed_minute_and_arguments():
    d = he.decode_alarm(bytes(alarm().buf), KEY)
    assert d == {"type": "alarm", "code": 0x52, "meter_id": ID, "seq": 3, "minute": -1,
                 "second": 59, "a": -5, "b": 1 << 28}


def test_a_start_minute_of_a_clock_never_set_is_carried_as_its_twos_complement():
    d = he.decode(bytes(gasp(flags=0, start_minute=-1).buf), KEY)
    assert d["start_minute"] == 0xFFFF_FFFF and not d["flags"] & he.CLOCK_VALID


@pytest.mark.parametrize("msg, table", [
    (gasp, [(W._GASP_TYPE, "<B", W.MSG_LAST_GASP), (W._GASP_FLAGS, "<B", W.F_CLOCK_VALID),
            (W._GASP_METER_ID, "8s", ID), (W._GASP_SEQ, "<I", 7),
            (W._GASP_START_MINUTE, "<I", 12_960_480), (W._GASP_START_SECOND, "<B", 42),
            (W._GASP_REPEAT, "<B", 0), (W._GASP_E0, "<I", 99_999_999), (W._GASP_E3, "<I", 1234),
            (W._GASP_UNIT, "<B", 4), (W._GASP_COEFFICIENT, "<I", 10)]),
    (notice, [(W._REST_TYPE, "<B", W.MSG_RESTORED), (W._REST_FLAGS, "<B", NOTICE["flags"]),
              (W._REST_METER_ID, "8s", ID), (W._REST_SEQ, "<I", 8),
              (W._REST_START_MINUTE, "<I", 12_960_480), (W._REST_END_MINUTE, "<I", 12_960_541),
              (W._REST_START_SECOND, "<B", 42), (W._REST_END_SECOND, "<B", 3),
              (W._REST_DURATION, "<I", 3661), (W._REST_SEQUENCE_MS, "<H", 1005),
              (W._REST_FAILURES, "<I", 17), (W._REST_LONG_FAILURES, "<I", 3),
              (W._REST_LONG_DURATION, "<I", 86_400), (W._REST_E0, "<I", 5_000_000),
              (W._REST_ALARM_SEQ, "<I", 7), (W._REST_SUPPRESSED, "<H", 2),
              (W._REST_DIPS, "<H", 9)]),
    (alarm, [(W._ALARM_TYPE, ">B", W.MSG_ALARM), (W._ALARM_CODE, ">B", 0x52),
             (W._ALARM_METER_ID, "8s", ID), (W._ALARM_SEQ, ">I", 3), (W._ALARM_MINUTE, ">i", -1),
             (W._ALARM_SECOND, ">B", 59), (W._ALARM_A, ">i", -5), (W._ALARM_B, ">i", 1 << 28)]),
])
def test_every_named_offset_holds_its_field(msg, table):
    buf = bytes(msg().buf)
    end = 0
    for off, fmt, value in table:
        assert off == end, "fields are contiguous, in the documented order"
        assert struct.unpack_from(fmt, buf, off)[0] == value
        end = off + struct.calcsize(fmt)
    body = {W.MSG_LAST_GASP: W._GASP_BODY_LEN, W.MSG_RESTORED: W._REST_BODY_LEN,
            W.MSG_ALARM: W._ALARM_BODY_LEN}[buf[0]]
    assert end == body and len(buf) == body + W.MAC_LEN <= 128


@pytest.mark.parametrize("msg", [gasp, notice, alarm])
def test_the_seal_is_hmac_sha256_of_the_body_under_the_meter_key(msg):
    buf = bytes(msg().buf)
    body = len(buf) - W.MAC_LEN
    assert buf[body:] == hmac.new(KEY, buf[:body], hashlib.sha256).digest()


@pytest.mark.parametrize("msg", [gasp, notice, alarm])
def test_any_flipped_byte_is_rejected(msg):
    good = bytes(msg().buf)
    he.decode(good, KEY)
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x80
        with pytest.raises(ValueError) as e:
            he.decode(bytes(bad), KEY)
        assert e.value.args[0] == ("E_TYPE" if i == 0 else "E_MAC")


@pytest.mark.parametrize("msg", [gasp, notice, alarm])
def test_every_truncation_and_an_extension_are_rejected(msg):
    good = bytes(msg().buf)
    with pytest.raises(ValueError, match="E_EMPTY"):
        he.decode(b"", KEY)
    for n in range(1, len(good)):
        with pytest.raises(ValueError, match="E_LENGTH"):
            he.decode(good[:n], KEY)
    with pytest.raises(ValueError, match="E_LENGTH"):
        he.decode(good + b"\x00", KEY)


@pytest.mark.parametrize("msg", [gasp, notice, alarm])
def test_a_message_sealed_under_another_key_is_rejected(msg):
    with pytest.raises(ValueError, match="E_MAC"):
        he.decode(bytes(msg().buf), b"another meter's key")


def test_each_decoder_takes_only_its_own_types():
    with pytest.raises(ValueError, match="E_TYPE"):
        he.decode_outage(bytes(alarm().buf), KEY)
    with pytest.raises(ValueError, match="E_TYPE"):
        he.decode_alarm(bytes(gasp().buf), KEY)
    with pytest.raises(ValueError, match="E_TYPE"):
        he.decode(b"\x09" + bytes(gasp().buf)[1:], KEY)


def test_the_restoration_notice_loads_back_unchanged():
    m = notice()
    copy = W.RestorationNotice(ID, Hmac(KEY))
    copy.load(bytes(m.buf))
    assert copy.buf == m.buf
    with pytest.raises(ValueError, match="E_LENGTH"):
        copy.load(bytes(m.buf)[:-1])


def test_the_head_end_decoder_does_not_use_the_firmware():
    path = os.path.join(ROOT, "tools", "headend_alarms.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"hashlib", "hmac", "struct"}


def test_describe_gives_one_line_per_message():
    for m in (gasp(), notice(), alarm()):
        line = he.describe(he.decode(bytes(m.buf), KEY))
        assert line.startswith("WIRE0001 ") and "\n" not in line


@given(u8, u32, u32, second, u32, u32, u8, u32)
def test_any_last_gasp_alarm_round_trips(flags, seq, start, sec, e0, e3, unit, coef):
    m = W.LastGaspAlarm(ID, Hmac(KEY))
    m.pack(flags, seq, start, sec, e0, e3, unit, coef)
    d = he.decode(bytes(m.buf), KEY)
    assert (d["flags"], d["seq"], d["start_minute"], d["start_second"], d["e0"], d["e3"],
            d["unit"], d["coefficient"]) == (flags, seq, start, sec, e0, e3, unit, coef)


@given(st.lists(u32, min_size=9, max_size=9), second, second, u16, u16, u16, u8)
def test_any_restoration_notice_round_trips(v, s0, s1, seq_ms, suppressed, dips, flags):
    seq, start, end, duration, failures, long_f, long_d, e0, alarm_seq = v
    m = W.RestorationNotice(ID, Hmac(KEY))
    m.pack(flags, seq, start, s0, end, s1, duration, seq_ms, failures, long_f, long_d, e0,
           alarm_seq, suppressed, dips)
    d = he.decode(bytes(m.buf), KEY)
    assert (d["seq"], d["start_minute"], d["end_minute"], d["duration_s"], d["failures"],
            d["long_failures"], d["long_duration_s"], d["e0"], d["alarm_seq"]) == tuple(v)
    assert (d["start_second"], d["end_second"], d["sequence_ms"], d["suppressed"], d["dips"],
            d["flags"]) == (s0, s1, seq_ms, min(suppressed, 0xFFFF), min(dips, 0xFFFF), flags)


@given(u8, u32, st.integers(-1, 0x3FFF_FFFF), second, i32, i32)
def test_any_alarm_round_trips(code, seq, minute, sec, a, b):
    m = W.AlarmMessage(ID, Hmac(KEY))
    m.pack(code, seq, minute, sec, a, b)
    d = he.decode(bytes(m.buf), KEY)
    assert (d["code"], d["seq"], d["minute"], d["second"], d["a"], d["b"]) == \
        (code, seq, minute, sec, a, b)
