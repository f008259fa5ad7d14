"""ECHONET Lite format 1 codec: parsing with specific error codes, building replies into a
preallocated buffer, stream reassembly whole and byte by byte, property maps."""

from hypothesis import given, strategies as st

from echonet_frames import request
from meter.broute.echonet import codec
from meter.broute.echonet.codec import Assembler, Builder, Frame, parse

GET_E0 = request(0x62, [0xE0])


def parsed(frame):
    f = Frame()
    assert parse(frame, len(frame), f) == codec.OK
    return f


def test_a_get_request_parses_into_its_header_and_properties():
    f = parsed(request(0x62, [0xE0, 0xE7], tid=0x1234))
    assert (f.tid, f.seoj, f.deoj, f.esv, f.opc) == (0x1234, 0x05FF01, 0x028801, 0x62, 2)
    assert bytes(f.epc[:2]) == b"\xE0\xE7" and list(f.pdc[:2]) == [0, 0]


def test_setget_carries_a_set_block_and_a_get_block():
    frame = request(0x6E, [(0xE5, b"\x01")], props2=[0xE2, 0xE5])
    f = parsed(frame)
    assert (f.opc, f.opc2) == (1, 2)
    assert bytes(f.epc[:3]) == b"\xE5\xE2\xE5"
    assert frame[f.at[0]] == 1


def test_fewer_than_twelve_bytes_is_short():
    f = Frame()
    for n in range(12):
        assert parse(GET_E0, n, f) == codec.E_SHORT


def test_wrong_ehd_is_rejected():
    f = Frame()
    for head in (b"\x10\x82", b"\x11\x81", b"\x00\x00"):
        bad = head + GET_E0[2:]
        assert parse(bad, len(bad), f) == codec.E_EHD


def test_property_running_past_the_end_is_truncated():
    f = Frame()
    frame = request(0x61, [(0xE5, b"\x01")])
    assert parse(frame[:-1], len(frame) - 1, f) == codec.E_TRUNCATED
    more = bytearray(GET_E0)
    more[11] = 2  # OPC says two properties, one is there
    assert parse(more, len(more), f) == codec.E_TRUNCATED


def test_bytes_after_the_last_property_are_trailing():
    f = Frame()
    frame = GET_E0 + b"\x00"
    assert parse(frame, len(frame), f) == codec.E_TRAILING
    fewer = bytearray(request(0x62, [0xE0, 0xE7]))
    fewer[11] = 1  # OPC smaller than the properties present
    assert parse(fewer, len(fewer), f) == codec.E_TRAILING


def test_request_without_property_and_unknown_esv_and_too_many_properties():
    f = Frame()
    empty = request(0x62, [])
    assert parse(empty, len(empty), f) == codec.E_OPC_ZERO
    odd = bytearray(GET_E0)
    odd[10] = 0x99
    assert parse(odd, len(odd), f) == codec.E_ESV
    many = request(0x62, [0x80] * (codec.MAX_PROPS + 1))
    assert parse(many, len(many), f) == codec.E_OPC_LIMIT


def test_oversize_frames_are_rejected_before_anything_else():
    f = Frame()
    big = bytes(codec.MAX_FRAME + 1)
    assert parse(big, len(big), f) == codec.E_OVERSIZE


def test_builder_writes_header_properties_and_opc_in_place():
    b = Builder(64)
    buf = b.buf
    b.start(7, 0x028801, 0x05FF01, codec.GET_RES)
    at = b.begin_prop(0xE1)
    buf[at] = 0x02
    b.end_prop(1)
    assert b.prop(0xD7, b"\x08", 0, 1)
    assert bytes(buf[:b.n]) == bytes.fromhex("1081000702880105ff017202e10102d70108")


def test_builder_refuses_what_does_not_fit():
    b = Builder(16)
    b.start(1, 1, 2, codec.GET_RES)
    assert b.prop(0x80, b"\x30\x30", 0, 2)  # 12 + 4 = 16
    assert b.begin_prop(0x81) == -1
    assert not b.prop(0x81, b"\x00", 0, 1)


props = st.lists(st.tuples(st.integers(0x80, 0xFF), st.binary(max_size=40)), max_size=8)


@given(st.sampled_from([0x60, 0x61, 0x62, 0x63, 0x72, 0x73, 0x51, 0x52]), props,
       st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFF), st.integers(0, 0xFFFFFF))
def test_built_frames_parse_back_to_what_was_built(esv, ps, tid, seoj, deoj):
    b = Builder(codec.MAX_FRAME)
    b.start(tid, seoj, deoj, esv)
    for epc, edt in ps:
        assert b.prop(epc, edt, 0, len(edt))
    f = Frame()
    err = parse(b.buf, b.n, f)
    if not ps and esv < 0x70:
        assert err == codec.E_OPC_ZERO
        return
    assert err == codec.OK
    assert (f.tid, f.seoj, f.deoj, f.esv, f.opc) == (tid, seoj, deoj, esv, len(ps))
    for i, (epc, edt) in enumerate(ps):
        assert f.epc[i] == epc and bytes(b.buf[f.at[i]:f.at[i] + f.pdc[i]]) == edt


def frames_of(stream, chunk):
    a = Assembler()
    out = []
    i = 0
    while i < len(stream):
        i += a.feed(stream, i, min(len(stream), i + chunk))
        if a.ready:
            out.append(bytes(a.buf[:a.n]))
            a.clear()
    return out, a


@given(st.lists(st.tuples(st.sampled_from([0x61, 0x62, 0x6E, 0x72]), props, props),
                min_size=1, max_size=5), st.integers(1, 7))
def test_stream_reassembly_gives_the_same_frames_whole_and_byte_by_byte(frames, chunk):
    built = []
    for esv, ps, ps2 in frames:
        built.append(request(esv, ps, props2=ps2 if esv == 0x6E else None))
    stream = b"".join(built)
    whole, _ = frames_of(stream, len(stream))
    by_byte, _ = frames_of(stream, 1)
    chunked, _ = frames_of(stream, chunk)
    assert whole == by_byte == chunked == built


def test_reassembly_skips_noise_and_drops_frames_larger_than_its_buffer():
    big = request(0x61, [(0xE5, bytes(200))] * 3)  # 12 + 3 * 202 > 512
    stream = b"\x00\xff\x10" + GET_E0 + big + GET_E0
    got, a = frames_of(stream, 1)
    assert got == [GET_E0, GET_E0]
    assert a.skipped >= 2 and a.oversize == 1


def test_property_map_below_16_is_a_list_and_from_16_a_bitmap():
    buf = bytearray(20)
    n = codec.encode_map(b"\x80\x81\x88", buf, 0)
    assert bytes(buf[:n]) == b"\x03\x80\x81\x88"
    epcs = bytes(range(0x80, 0x90))  # 16 properties
    n = codec.encode_map(epcs, buf, 0)
    assert n == 17 and buf[0] == 16
    # byte i bit j <=> EPC 0x80 + 0x10 * j + i: 0x80..0x8F are bit 0 of bytes 0..15
    assert bytes(buf[1:17]) == b"\x01" * 16


@given(st.sets(st.integers(0x80, 0xFF)))
def test_property_maps_round_trip(epcs):
    buf = bytearray(140)
    ordered = bytes(sorted(epcs))
    n = codec.encode_map(ordered, buf, 0)
    assert n == (1 + len(epcs) if len(epcs) < 16 else 17)
    assert codec.decode_map(bytes(buf[:n])) == sorted(epcs)
