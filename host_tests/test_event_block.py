"""Event blocks are packed straight from the event log's columns: SeqRing.find(seq) names the
slot of an entry by its seq (also across the gaps a restore may leave), and a block packed
from the columns is byte for byte the block the entry tuples give."""

import struct

from hypothesis import given, strategies as st

from meter.events import EventLog
from meter.ringlog import SeqRing


@given(st.lists(st.integers(0, 3), min_size=0, max_size=60), st.integers(1, 20))
def test_find_gives_the_slot_holding_that_seq_or_minus_one(gaps, entries):
    ring = SeqRing(entries, "i")
    seq = 0
    for g in gaps:  # restored entries, oldest first, with gaps in the numbering
        seq += g
        i = ring.claim(seq)
        ring.cols[0][i] = seq
        seq += 1
    held = {ring.seqs[ring.slot(k)]: ring.slot(k) for k in range(ring.n)}
    for s in range(seq + 3):
        assert ring.find(s) == held.get(s, -1)


def reference_block(ev, key):
    """The block as the entry tuples (EventLog.get) give it."""
    buf = bytearray(8 + 16 * 10)
    bits = 0
    for k in range(ev.n):
        seq, code, minute, second, a, b = ev.get(k)
        i = seq - key * 10
        if 0 <= i < 10:
            bits |= 1 << i
            struct.pack_into("<HBxiii", buf, 8 + 16 * i, code, second, minute, a, b)
    struct.pack_into("<II", buf, 0, key * 10, bits)
    return bytes(buf)


def test_a_block_packed_from_the_columns_equals_the_one_from_the_entries():
    from hosthal.flash import NorFlash
    from meter.mac import Hmac
    from meter.metering.intervals import FiveMinuteRing, HalfHourHistory, IntervalCapture
    from meter.metering.registers import EnergyRegisters
    from meter.storage.assembly import build_storage

    regs = EnergyRegisters()
    ev = EventLog(16)
    cap = IntervalCapture(regs, five=FiveMinuteRing(24), half=HalfHourHistory(days=1))
    store = build_storage(NorFlash(12), Hmac(b"k" * 32), regs, cap, ev, half_blocks=4)
    store.restore()
    for restored in (0, 1, 2, 5, 6, 9, 12):  # a gappy restore, then live entries
        ev.restore(restored, 60 + restored % 3, 1000 + restored, restored % 60, -restored, 7)
    for n in range(25):
        ev.log(90, 5_000_000 + n, n, n * 1000, -1)
    for key in range(ev.seq // 10 + 2):
        assert bytes(store._event_block(key)) == reference_block(ev, key), key
