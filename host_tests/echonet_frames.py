"""Test-side ECHONET Lite frame helpers, written independently of meter.broute.echonet.codec so
the tests do not check the codec against itself."""

import struct

CONTROLLER = 0x05FF01
METER = 0x028801
NODE = 0x0EF001


def eoj_bytes(eoj):
    return bytes(((eoj >> 16) & 0xFF, (eoj >> 8) & 0xFF, eoj & 0xFF))


def request(esv, props, deoj=METER, seoj=CONTROLLER, tid=1, props2=None):
    """props: list of EPC or (EPC, EDT bytes). props2: second block (SetGet)."""
    def block(ps):
        out = bytes((len(ps),))
        for p in ps:
            epc, edt = (p, b"") if isinstance(p, int) else p
            out += bytes((epc, len(edt))) + edt
        return out

    head = b"\x10\x81" + struct.pack(">H", tid) + eoj_bytes(seoj) + eoj_bytes(deoj)
    body = block(props)
    if props2 is not None:
        body += block(props2)
    return head + bytes((esv,)) + body


def decode(frame):
    """dict(tid, seoj, deoj, esv, props=[(epc, edt)], props2=[...] or None)."""
    assert frame[:2] == b"\x10\x81", frame
    tid = struct.unpack(">H", frame[2:4])[0]
    seoj = int.from_bytes(frame[4:7], "big")
    deoj = int.from_bytes(frame[7:10], "big")
    esv = frame[10]
    pos = 11

    def block(pos):
        n = frame[pos]
        pos += 1
        out = []
        for _ in range(n):
            epc, pdc = frame[pos], frame[pos + 1]
            out.append((epc, bytes(frame[pos + 2:pos + 2 + pdc])))
            pos += 2 + pdc
        return out, pos

    props, pos = block(pos)
    props2 = None
    if esv in (0x6E, 0x7E, 0x5E):
        props2, pos = block(pos)
    assert pos == len(frame), "trailing bytes in reply"
    return {"tid": tid, "seoj": seoj, "deoj": deoj, "esv": esv, "props": props,
            "props2": props2}


def u32(b):
    return int.from_bytes(b, "big")


def datetime7(b):
    """(Y, M, D, h, m, s) of a 7-byte ECHONET date-time."""
    return (int.from_bytes(b[0:2], "big"), b[2], b[3], b[4], b[5], b[6])
