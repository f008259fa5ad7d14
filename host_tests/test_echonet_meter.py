"""The node profile and the low-voltage smart meter object, served by the ECHONET service
from the register core: every property of REFERENCE section 2, and Get / SetC / SetI /
INF_REQ / SetGet with SNA for what is refused."""

import datetime

import pytest

from demo_meter import DemoMeter, wall_minute
from echonet_frames import METER, NODE, datetime7, decode, request, u32
from meter import caltime
from meter.broute.echonet import codec
from meter.metering.registers import FWD, REV

START = datetime.datetime(2026, 11, 28, 10, 0, 0)


@pytest.fixture
def dm():
    d = DemoMeter(start=START, power_w=1500, export_w=200, current_ma=15_049)
    d.advance(2 * 3600)  # now 12:00:00, two hours of capture
    return d


def get(dm, *epcs, deoj=METER):
    r = decode(dm.handle(request(0x62, list(epcs), deoj=deoj, tid=0x77)))
    assert r["tid"] == 0x77 and r["deoj"] == 0x05FF01
    return r


def value(dm, epc, deoj=METER):
    r = get(dm, epc, deoj=deoj)
    assert r["esv"] == 0x72, r
    return r["props"][0][1]


def setc(dm, *props, esv=0x61):
    out = dm.handle(request(esv, list(props)))
    return decode(out) if out else None


def test_cumulative_energy_and_its_scaling_come_from_the_registers(dm):
    assert u32(value(dm, 0xE0)) == dm.regs.count[FWD] > 0
    assert u32(value(dm, 0xE3)) == dm.regs.count[REV] > 0
    assert value(dm, 0xE1) == bytes((dm.regs.unit,))
    assert u32(value(dm, 0xD3)) == dm.regs.coefficient
    assert value(dm, 0xD7) == b"\x08"


def test_cumulative_energy_is_no_data_until_the_registers_are_restored(dm):
    dm.meter.registers_valid = lambda: False
    assert value(dm, 0xE0) == b"\xff\xff\xff\xfe"


def test_lost_register_records_serve_no_data_for_every_cumulative_value_and_a_fault(dm):
    valid = [True]
    dm.meter.registers_valid = lambda: valid[0]
    assert u32(value(dm, 0xE0)) == dm.regs.count[FWD] > 0 and value(dm, 0x88) == b"\x42"
    valid[0] = False  # the store found the register records lost
    r = get(dm, 0xE0, 0xE3, 0xEA, 0xEB, 0xD0, 0x88)
    assert r["esv"] == 0x72  # the values are "no data", not refused
    v = dict(r["props"])
    assert v[0xE0] == v[0xE3] == b"\xff\xff\xff\xfe"
    assert v[0xEA][7:] == v[0xEB][7:] == b"\xff\xff\xff\xfe"
    assert v[0xD0][7:] == b"\xff\xff\xff\xfe" * 2
    assert v[0x88] == b"\x41"
    valid[0] = True
    assert u32(value(dm, 0xE0)) == dm.regs.count[FWD] and value(dm, 0x88) == b"\x42"


def test_fault_status_follows_the_injected_fault_source(dm):
    standing = [False]
    dm.meter.fault = lambda: standing[0]
    assert value(dm, 0x88) == b"\x42"
    standing[0] = True  # e.g. a tamper finding not yet acknowledged by the head-end
    assert value(dm, 0x88) == b"\x41"
    assert u32(value(dm, 0xE0)) == dm.regs.count[FWD]  # a tamper fault still serves energy
    standing[0] = False
    assert value(dm, 0x88) == b"\x42"


def test_instantaneous_power_and_current_in_w_and_tenths_of_an_ampere(dm):
    assert int.from_bytes(value(dm, 0xE7), "big", signed=True) == 1300
    e8 = value(dm, 0xE8)
    assert int.from_bytes(e8[:2], "big", signed=True) == 150  # 15.049 A -> 15.0 A
    assert e8[2:] == b"\x7f\xfe"  # no T phase on single-phase 2-wire


def test_reverse_power_is_negative_and_a_t_phase_is_reported_when_present():
    d = DemoMeter(start=START, power_w=0, export_w=2500, current_ma=10_000,
                  current_t_ma=9_960)
    d.advance(5)
    assert int.from_bytes(value(d, 0xE7), "big", signed=True) == -2500
    assert value(d, 0xE8) == bytes.fromhex("0064") + bytes.fromhex("0064")


def test_instantaneous_values_are_no_data_before_the_first_sample():
    d = DemoMeter(start=START)
    assert value(d, 0xE7) == b"\x7f\xff\xff\xfe"
    assert value(d, 0xE8) == b"\x7f\xfe\x7f\xfe"


def test_latest_one_minute_value_d0(dm):
    d0 = value(dm, 0xD0)
    assert datetime7(d0) == (2026, 11, 28, 12, 0, 0)
    s = dm.capture.ring.slot(wall_minute(START) + 120)
    assert u32(d0[7:11]) == dm.capture.ring.fwd[s] and u32(d0[11:15]) == dm.capture.ring.rev[s]


def test_fixed_time_values_ea_eb_are_the_newest_30_minute_record(dm):
    ea, eb = value(dm, 0xEA), value(dm, 0xEB)
    assert datetime7(ea) == (2026, 11, 28, 12, 0, 0) == datetime7(eb)
    s = dm.capture.half.slot(wall_minute(START) + 120)
    assert u32(ea[7:]) == dm.capture.half.fwd[s]
    assert u32(eb[7:]) == dm.capture.half.rev[s]


def test_day_history_e2_e4_for_the_day_in_e5_marks_what_is_not_held(dm):
    e2 = value(dm, 0xE2)
    assert len(e2) == 194 and e2[:2] == b"\x00\x00"
    vals = [u32(e2[2 + 4 * k:6 + 4 * k]) for k in range(48)]
    base = wall_minute(START.replace(hour=0))
    for k in range(48):
        s = dm.capture.half.slot(base + 30 * k)
        assert vals[k] == (dm.capture.half.fwd[s] if s >= 0 else 0xFFFFFFFE), k
    assert [k for k in range(48) if vals[k] != 0xFFFFFFFE] == [20, 21, 22, 23, 24]
    assert setc(dm, (0xE5, b"\x01"))["esv"] == 0x71
    assert value(dm, 0xE5) == b"\x01"
    e4 = value(dm, 0xE4)
    assert e4[:2] == b"\x00\x01" and e4[2:] == b"\xff\xff\xff\xfe" * 48


def test_day_history_reads_through_a_pluggable_reader(dm):
    asked = []

    def reader(minute, reg):
        asked.append((minute, reg))
        return minute % 1000 if reg == FWD else -1

    dm.meter.history = reader
    e2 = value(dm, 0xE2)
    base = wall_minute(START.replace(hour=0))
    assert asked[0] == (base, FWD) and len(asked) == 48
    assert u32(e2[2:6]) == base % 1000
    assert value(dm, 0xE4)[2:6] == b"\xff\xff\xff\xfe"


def test_half_hour_history_ec_from_the_start_point_set_in_ed(dm):
    ed = bytes.fromhex("07EA0B1C0B1E") + b"\x03"  # 2026-11-28 11:30, 3 values
    assert setc(dm, (0xED, ed))["esv"] == 0x71
    assert value(dm, 0xED) == ed
    ec = value(dm, 0xEC)
    assert ec[:7] == ed and len(ec) == 7 + 3 * 8
    for k, minute in enumerate((690, 660, 630)):
        s = dm.capture.half.slot(wall_minute(START.replace(hour=0)) + minute)
        assert u32(ec[7 + 8 * k:11 + 8 * k]) == dm.capture.half.fwd[s]
        assert u32(ec[11 + 8 * k:15 + 8 * k]) == dm.capture.half.rev[s]


def test_one_minute_history_ee_covers_the_whole_ring_in_six_reads(dm):
    now = wall_minute(START) + 120
    seen = {}
    for read in range(6):
        start = now - 10 * read
        y, mo, d, h, mi = caltime.ymdhm(start)
        ef = y.to_bytes(2, "big") + bytes((mo, d, h, mi, 10))
        assert setc(dm, (0xEF, ef))["esv"] == 0x71
        ee = value(dm, 0xEE)
        assert ee[:7] == ef and len(ee) == 87
        for k in range(10):
            seen[start - k] = (u32(ee[7 + 8 * k:11 + 8 * k]), u32(ee[11 + 8 * k:15 + 8 * k]))
    ring = dm.capture.ring
    assert len(seen) == 60
    for minute, (fwd, rev) in seen.items():
        s = ring.slot(minute)
        assert s >= 0, minute
        assert (fwd, rev) == (ring.fwd[s], ring.rev[s])


def test_one_minute_history_outside_the_ring_is_no_data(dm):
    ef = bytes.fromhex("07EA0B1C0A00") + b"\x02"  # 10:00, two hours back
    setc(dm, (0xEF, ef))
    ee = value(dm, 0xEE)
    assert ee[7:] == b"\xff\xff\xff\xfe" * 4


def test_unset_start_points_read_as_ffff_and_follow_the_clock(dm):
    assert value(dm, 0xEF) == b"\xff" * 6 + b"\x0a"
    ee = value(dm, 0xEE)
    assert datetime7(ee[:6] + b"\x00")[:5] == (2026, 11, 28, 12, 0) and ee[6] == 10


def test_time_date_and_fixed_properties(dm):
    dm.advance(75)  # 12:01:15
    assert value(dm, 0x97) == bytes((12, 1))
    assert value(dm, 0x98) == bytes.fromhex("07EA0B1C")
    assert value(dm, 0x80) == b"\x30"
    assert value(dm, 0x81) == b"\x00"
    assert value(dm, 0x82) == b"\x00\x00R\x00"
    assert value(dm, 0x88) == b"\x42"
    assert value(dm, 0x8A) == dm.identity.maker
    assert value(dm, 0x8D) == b"DEMO00000001"
    assert value(dm, 0xC0) == dm.identity.broute_id and len(dm.identity.broute_id) == 16


def test_time_and_date_are_refused_while_the_clock_is_invalid(dm):
    dm.valid = False
    r = get(dm, 0x97, 0x98, 0xE0)
    assert r["esv"] == 0x52
    assert r["props"][0] == (0x97, b"") and r["props"][1] == (0x98, b"")
    assert u32(r["props"][2][1]) == dm.regs.count[FWD]


def test_property_maps_list_every_property_and_the_writable_ones(dm):
    get_map = codec.decode_map(value(dm, 0x9F))
    assert get_map == sorted([0x80, 0x81, 0x82, 0x88, 0x8A, 0x8D, 0x97, 0x98, 0x9D, 0x9E,
                              0x9F, 0xC0, 0xD0, 0xD3, 0xD7, 0xE0, 0xE1, 0xE2, 0xE3, 0xE4,
                              0xE5, 0xE7, 0xE8, 0xEA, 0xEB, 0xEC, 0xED, 0xEE, 0xEF])
    assert len(value(dm, 0x9F)) == 17  # 29 properties: bitmap form
    assert codec.decode_map(value(dm, 0x9E)) == [0x81, 0xE5, 0xED, 0xEF]
    assert codec.decode_map(value(dm, 0x9D)) == [0x80, 0x81, 0x88]
    for epc in get_map:  # every listed property really reads
        assert get(dm, epc)["esv"] == 0x72, hex(epc)


def test_get_of_an_unknown_property_is_get_sna_with_the_others_answered(dm):
    r = get(dm, 0xE0, 0xF5, 0xE7)
    assert r["esv"] == 0x52
    assert [p[0] for p in r["props"]] == [0xE0, 0xF5, 0xE7]
    assert r["props"][1][1] == b"" and len(r["props"][0][1]) == 4
    assert dm.service.count[7] == 1  # refused


def test_only_e5_ed_ef_and_81_are_writable(dm):
    for epc, edt in ((0xE0, b"\x00\x00\x00\x00"), (0x80, b"\x31"), (0xE1, b"\x01"),
                     (0xD3, b"\x00\x00\x00\x0a"), (0x97, b"\x01\x02"), (0x9F, b"\x00")):
        r = setc(dm, (epc, edt))
        assert r["esv"] == 0x51 and r["props"] == [(epc, edt)], hex(epc)
    assert setc(dm, (0x81, b"\x09"))["props"] == [(0x81, b"")]
    assert value(dm, 0x81) == b"\x09"
    assert dm.regs.unit == 0x02 and dm.regs.coefficient == 1


def test_out_of_range_selectors_are_refused_and_change_nothing(dm):
    before = (dm.meter.day, dm.meter.ec_start, dm.meter.ec_n, dm.meter.ee_start,
              dm.meter.ee_n, dm.meter.location)
    bad = [(0xE5, b"\x64"), (0xE5, b"\x01\x02"), (0xED, bytes.fromhex("07EA0B1C0B1F03")),
           (0xED, bytes.fromhex("07EA0B1C0B1E0D")), (0xED, bytes.fromhex("07EA021E0B1E01")),
           (0xEF, bytes.fromhex("07EA0B1C0B3C01")), (0xEF, bytes.fromhex("07EA0B1C0B0000")),
           (0xEF, bytes.fromhex("07EA0B1C0B000B")), (0xEF, b"\x07"), (0x81, b"\x03"),
           (0xE5, b"")]
    for epc, edt in bad:
        r = setc(dm, (epc, edt))
        assert r["esv"] == 0x51 and r["props"] == [(epc, edt)], (hex(epc), edt)
    assert before == (dm.meter.day, dm.meter.ec_start, dm.meter.ec_n, dm.meter.ee_start,
                      dm.meter.ee_n, dm.meter.location)


def test_seti_is_silent_when_accepted_and_answers_seti_sna_when_refused(dm):
    assert setc(dm, (0xE5, b"\x02"), esv=0x60) is None
    assert dm.meter.day == 2
    r = setc(dm, (0xE0, b"\x00\x00\x00\x01"), esv=0x60)
    assert r["esv"] == 0x50 and r["props"] == [(0xE0, b"\x00\x00\x00\x01")]


def test_setget_sets_then_reads_in_one_frame(dm):
    ef = bytes.fromhex("07EA0B1C0B3B") + b"\x02"
    r = decode(dm.handle(request(0x6E, [(0xEF, ef)], props2=[0xEE, 0xEF])))
    assert r["esv"] == 0x7E and r["props"] == [(0xEF, b"")]
    assert r["props2"][1] == (0xEF, ef) and r["props2"][0][1][:7] == ef
    r = decode(dm.handle(request(0x6E, [(0xE0, b"\x00\x00\x00\x00")], props2=[0xE5])))
    assert r["esv"] == 0x5E and r["props2"] == [(0xE5, b"\x00")]


def test_inf_req_answers_inf_for_the_group(dm):
    r = decode(dm.handle(request(0x63, [0x80, 0xE0])))
    assert r["esv"] == 0x73 and dm.service.to_group
    assert r["props"][0] == (0x80, b"\x30")
    r = decode(dm.handle(request(0x63, [0xF0])))
    assert r["esv"] == 0x53


def test_node_profile_identity_and_instance_lists(dm):
    assert value(dm, 0x80, NODE) == b"\x30"
    assert value(dm, 0x82, NODE)[:2] == b"\x01\x0e"
    uid = value(dm, 0x83, NODE)
    assert len(uid) == 17 and uid[0] == 0xFE and uid[1:4] == dm.identity.maker
    assert value(dm, 0x8A, NODE) == dm.identity.maker
    assert value(dm, 0xD3, NODE) == b"\x00\x00\x01"
    assert value(dm, 0xD4, NODE) == b"\x00\x02"
    assert value(dm, 0xD5, NODE) == b"\x01\x02\x88\x01" == value(dm, 0xD6, NODE)
    assert value(dm, 0xD7, NODE) == b"\x01\x02\x88"
    assert codec.decode_map(value(dm, 0x9D, NODE)) == [0x80, 0xD5]
    assert codec.decode_map(value(dm, 0x9E, NODE)) == []
    assert 0xD6 in codec.decode_map(value(dm, 0x9F, NODE))
    assert value(dm, 0xD6, deoj=0x0EF000) == b"\x01\x02\x88\x01"  # instance 0 = all


def test_instance_list_notification_d5(dm):
    n = dm.service.announce()
    r = decode(bytes(dm.service.tx.buf[:n]))
    assert (r["seoj"], r["deoj"], r["esv"]) == (NODE, NODE, 0x73)
    assert r["props"] == [(0xD5, b"\x01\x02\x88\x01")]
    assert dm.service.to_group


def test_a_get_that_does_not_fit_answers_sna_for_the_rest(dm):
    r = get(dm, *([0xE2] * 6))  # 6 x 196 bytes > the 1024-byte reply buffer
    assert r["esv"] == 0x52
    sizes = [len(edt) for _, edt in r["props"]]
    assert sizes[:5] == [194] * 5 and sizes[5] == 0


OVERSIZED = [0xE2, 0xE4, 0xEA, 0xEB, 0xEC, 0xEE, 0xD0, 0xE0, 0xE3, 0xE7, 0xE8, 0x9F, 0x9D,
             0x9E, 0x8D, 0xC0] * 2  # 32 properties, ~1.6 KB of values


def listed(r):
    return [epc for epc, _ in r["props"]]


def test_an_oversized_get_lists_every_requested_property_in_order(dm):
    frame = dm.handle(request(0x62, OVERSIZED, tid=0x77))
    r = decode(frame)
    assert len(frame) <= 1024
    assert r["esv"] == 0x52 and listed(r) == OVERSIZED
    sizes = [len(edt) for _, edt in r["props"]]
    assert sizes[:6] == [194, 194, 11, 11, 103, 87]  # values while they fit
    assert 0 in sizes  # the rest refused with PDC 0, still listed
    assert dm.service.count[7] == sizes.count(0)


@pytest.mark.parametrize("repeat", [1, 2, 6, 16, 32])
def test_every_property_is_listed_whatever_the_mix(dm, repeat):
    epcs = ([0xE2, 0xE4] * 16)[:repeat] + ([0xE0] * 32)[:32 - repeat]
    r = decode(dm.handle(request(0x62, epcs)))
    assert listed(r) == epcs
    assert all(len(edt) in (0, 4, 194) for _, edt in r["props"])


def test_a_small_reply_limit_keeps_the_listing_complete(dm):
    dm.service.set_limit(513)  # a Wi-SUN module's datagram
    epcs = [0xE2, 0xE4, 0xEA, 0xEB, 0xEC, 0xEE, 0xE0]
    frame = dm.handle(request(0x62, epcs))
    r = decode(frame)
    assert len(frame) <= 513 and listed(r) == epcs and r["esv"] == 0x52
    assert [len(e) for _, e in r["props"]] == [194, 194, 11, 11, 0, 0, 4]


def test_setget_lists_every_set_and_get_property_when_the_get_block_overflows(dm):
    gets = [0xE2] * 6 + [0xE0] * 14
    r = decode(dm.handle(request(0x6E, [(0xE5, b"\x01"), (0xE5, b"\xff")], props2=gets)))
    assert r["esv"] == 0x5E
    assert r["props"] == [(0xE5, b""), (0xE5, b"\xff")]  # accepted, refused (echoed)
    assert listed({"props": r["props2"]}) == gets


def test_a_request_whose_smallest_reply_cannot_fit_is_dropped_whole_and_counted(dm):
    dm.service.set_limit(60)  # a link too small for 32 PDC-0 entries (12 + 64 bytes)
    day = dm.meter.day
    assert dm.handle(request(0x6E, [(0xE5, b"\x02")], props2=[0xE0] * 31)) == b""
    assert dm.service.count[8] == 1 and dm.meter.day == day  # nothing was set
    assert decode(dm.handle(request(0x62, [0xE0] * 8)))["esv"] == 0x72  # small ones pass
