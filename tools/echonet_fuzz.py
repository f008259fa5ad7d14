"""Fuzz the firmware's ECHONET Lite service with random and mutated frames.

    .venv/bin/python tools/echonet_fuzz.py [--frames 100000] [--seed 1]

Every frame goes through meter.broute.echonet.service.Service.handle() of a simulated meter and,
as a byte stream, through the codec's Assembler. Checked for every frame: no exception,
every reply is a well-formed frame that fits the reply buffer, the registers are untouched
and the writable selectors stay in range. Prints frames/s and the outcome counters.
"""

import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "board", "cpython"),
           os.path.join(ROOT, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import datetime  # noqa: E402

from demo_meter import DemoMeter  # noqa: E402
from meter.broute.echonet import codec  # noqa: E402

EPCS = [0x80, 0x81, 0x82, 0x88, 0x8A, 0x8D, 0x97, 0x98, 0x9D, 0x9E, 0x9F, 0xC0, 0xD0, 0xD3,
        0xD5, 0xD6, 0xD7, 0xE0, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE7, 0xE8, 0xEA, 0xEB, 0xEC,
        0xED, 0xEE, 0xEF, 0x00, 0xFF, 0x83, 0xD4]
EOJS = [0x028801, 0x028800, 0x0EF001, 0x0EF000, 0x028802, 0x013001, 0x05FF01]
ESVS = [0x60, 0x61, 0x62, 0x63, 0x6E, 0x72, 0x73, 0x52, 0x99]


def _eoj(e):
    return bytes(((e >> 16) & 0xFF, (e >> 8) & 0xFF, e & 0xFF))


def valid_frame(rng):
    esv = rng.choice(ESVS)

    def block():
        out = bytearray()
        n = rng.randint(0, 6)
        out.append(n)
        for _ in range(n):
            epc = rng.choice(EPCS)
            size = rng.choice((0, 0, 1, 2, 4, 7, rng.randint(0, 40)))
            out += bytes((epc, size)) + bytes(rng.getrandbits(8) for _ in range(size))
        return out

    frame = (b"\x10\x81" + rng.getrandbits(16).to_bytes(2, "big") + _eoj(0x05FF01)
             + _eoj(rng.choice(EOJS)) + bytes((esv,)) + block())
    if esv == 0x6E:
        frame += block()
    return bytes(frame)


def mutate(rng, frame):
    b = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            del b[rng.randrange(len(b)):]
        elif op == 2:
            b += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
        elif op == 3 and len(b) > 11:
            b[11] = rng.randrange(256)  # OPC
        elif op == 4 and len(b) > 13:
            b[13] = rng.randrange(256)  # first PDC
        elif op == 5 and b:
            del b[rng.randrange(len(b))]
        else:
            b.insert(rng.randrange(len(b) + 1), rng.getrandbits(8))
    return bytes(b)


def random_frame(rng):
    return bytes(rng.getrandbits(8) for _ in range(rng.choice((rng.randint(0, 30),
                                                              rng.randint(0, 700)))))


def frames(rng, count):
    for i in range(count):
        k = i % 4
        if k == 0:
            yield random_frame(rng)
        elif k == 1:
            yield valid_frame(rng)
        else:
            yield mutate(rng, valid_frame(rng))


def check_invariants(dm, regs_before):
    m = dm.meter
    assert list(dm.regs.count) == regs_before, "registers changed"
    assert 0 <= m.day <= 99
    assert 1 <= m.ec_n <= 12 and 1 <= m.ee_n <= 10
    assert m.ec_start == -1 or m.ec_start % 30 == 0
    assert m.location in (0x00, 0xFF) or 0x08 <= m.location <= 0x7F


def run(count, seed=1):
    """Fuzz `count` frames; returns (frames per second, counters dict)."""
    rng = random.Random(seed)
    dm = DemoMeter(start=datetime.datetime(2026, 11, 28, 10, 0, 0))
    dm.advance(3600)
    dm.service.flood_limit = 1 << 29  # the flood limit is tested on its own
    regs_before = list(dm.regs.count)
    svc = dm.service
    rx = svc.rx
    parsed = codec.Frame()
    asm = codec.Assembler()
    replies = 0
    stream_frames = 0
    t0 = time.perf_counter()
    for i, frame in enumerate(frames(rng, count)):
        n = min(len(frame), len(rx))
        rx[:n] = frame[:n]
        r = svc.handle(rx, len(frame), dm.now(i))
        if r:
            replies += 1
            assert r <= len(svc.tx.buf)
            assert codec.parse(svc.tx.buf, r, parsed, r) == codec.OK, frame.hex()
            req = svc.frame  # the request just handled: every property of it is listed
            k = req.opc + req.opc2
            assert (parsed.opc, parsed.opc2) == (req.opc, req.opc2), frame.hex()
            assert parsed.epc[:k] == req.epc[:k], frame.hex()
        pos = 0
        while pos < len(frame):
            pos += asm.feed(frame, pos)
            if asm.ready:
                stream_frames += 1
                asm.clear()
        if i % 64 == 0:
            check_invariants(dm, regs_before)
    elapsed = time.perf_counter() - t0
    check_invariants(dm, regs_before)
    counters = svc.counters()
    counters["replies_well_formed"] = replies
    counters["stream_frames"] = stream_frames
    counters["stream_skipped"] = asm.skipped
    counters["stream_oversize"] = asm.oversize
    return count / elapsed, counters


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description="ECHONET Lite fuzz campaign")
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rate, counters = run(args.frames, args.seed)
    print("frames: %d  (%.0f frames/s, seed %d)" % (args.frames, rate, args.seed))
    for k, v in counters.items():
        print("  %-22s %d" % (k, v))
    print("no exception, registers untouched, selectors in range: OK")


if __name__ == "__main__":
    main()
