"""Hostile and broken B-route input: every malformed frame is dropped or answered with
SNA, counted under its own reason, never raises, and changes no meter state."""

import datetime

import pytest

from demo_meter import DemoMeter
from echonet_frames import decode, request
from meter.broute.echonet import codec, service

START = datetime.datetime(2026, 11, 28, 10, 0, 0)


def state(dm):
    m = dm.meter
    return (list(dm.regs.count), list(dm.regs.rem_j), dm.regs.unit, dm.regs.coefficient,
            m.day, m.ec_start, m.ec_n, m.ee_start, m.ee_n, m.location, m.fault,
            list(dm.capture.ring.stamp), list(dm.capture.half.stamp))


@pytest.fixture
def dm():
    d = DemoMeter(start=START)
    d.advance(600)
    return d


GOOD = request(0x62, [0xE0])


@pytest.mark.parametrize("frame,code", [
    (GOOD[:5], codec.E_SHORT),
    (b"", codec.E_SHORT),
    (b"\x10\x82" + GOOD[2:], codec.E_EHD),
    (b"\x12\x81" + GOOD[2:], codec.E_EHD),
    (request(0x61, [(0xE5, b"\x01")])[:-1], codec.E_TRUNCATED),
    (GOOD[:11] + b"\x03\xe0\x00", codec.E_TRUNCATED),
    (GOOD + b"\xe7\x00", codec.E_TRAILING),
    (request(0x62, []), codec.E_OPC_ZERO),
    (GOOD[:10] + b"\x42" + GOOD[11:], codec.E_ESV),
    (request(0x62, [0x80] * 40), codec.E_OPC_LIMIT),
    (request(0x61, [(0xE5, bytes(250))] * 3), codec.E_OVERSIZE),
])
def test_malformed_frames_are_dropped_and_counted_by_reason(dm, frame, code):
    before = state(dm)
    assert dm.handle(frame) == b""
    assert dm.service.errors[code] == 1
    assert dm.service.count[service.MALFORMED] == 1
    assert state(dm) == before


def test_frames_for_an_unknown_object_are_dropped(dm):
    before = state(dm)
    for deoj in (0x013001, 0x028802, 0x0EF002, 0x000000):
        assert dm.handle(request(0x61, [(0xE5, b"\x05")], deoj=deoj)) == b""
    assert dm.service.count[service.UNKNOWN_EOJ] == 4
    assert state(dm) == before


def test_responses_and_notifications_from_others_are_ignored(dm):
    for esv in (0x72, 0x71, 0x73, 0x74, 0x52, 0x7A):
        assert dm.handle(request(esv, [(0xE5, b"\x05")])) == b""
    assert dm.service.count[service.IGNORED] == 6
    assert dm.meter.day == 0


def test_unknown_properties_get_sna_and_do_not_change_anything(dm):
    before = state(dm)
    r = decode(dm.handle(request(0x61, [(0x00, b""), (0xFF, b"\x01"), (0xE5, b"\x01")])))
    assert r["esv"] == 0x51
    assert r["props"] == [(0x00, b""), (0xFF, b"\x01"), (0xE5, b"")]
    assert dm.meter.day == 1  # the valid one in the same frame is applied
    dm.meter.day = 0
    assert state(dm) == before


def test_a_flood_is_cut_at_the_limit_per_second_and_service_resumes(dm):
    limit = dm.service.flood_limit
    answered = sum(1 for i in range(limit * 3) if dm.handle(GOOD, now_ms=5000 + i))
    assert answered == limit
    assert dm.service.count[service.FLOOD] == 2 * limit
    assert dm.handle(GOOD, now_ms=7000) != b""  # next window


def test_flood_window_survives_the_ticks_wrap(dm):
    dm.handle(GOOD, now_ms=0x3FFFFF00)
    for i in range(dm.service.flood_limit + 5):
        dm.handle(GOOD, now_ms=(0x3FFFFF00 + 10 + i) & 0x3FFFFFFF)
    assert dm.service.count[service.FLOOD] == 6
    assert dm.handle(GOOD, now_ms=0x3FFFFF00 + 1200 - 0x40000000) != b""
