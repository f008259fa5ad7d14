"""The RAM cuts of issue 10 item 5 keep their promises.

* The journal writes the same bytes as before the cuts: a deterministic run (groups, drops,
  many keys, compaction, a worn sector, a power cut inside a group, a forged record,
  remounts) ends in a golden digest of the flash image, every mount report and every
  record read back. The digest was taken with the journal as it was before its index was
  packed and its parsing made allocation-free; the on-flash format did not change.
* The packed index (one flat table: i32 keys, i16 slots, i32 seqs) keeps keys, slots and
  seqs past 16 bits; the 5-minute ring's 16-bit voltage column serves every voltage the
  plausibility limits accept unchanged.
* Under the real MicroPython unix port, the journal's mount, commit and compaction paths
  allocate nothing but their HMAC objects and a few buffer views per record (the flash
  there allocates nothing, as an ESP32 partition: the host flash model's own copies are
  not the firmware's).
"""

import hashlib
import random
import subprocess

import pytest

from meter.mac import Hmac
from meter.metering.intervals import MISSING, FiveMinuteRing, SeriesRing
from meter.metering.registers import MODULO
from meter.metering.samples import Limits
from meter.storage import journal as J
from hosthal.flash import NorFlash, PowerCut
from paths import micropython_env, tool

KEY = b"ram-cuts-key-0123456789abcdef!!!"
SECTORS = 16
KEEP = {J.REC_HALF: 30, J.REC_EVENT: 4, J.REC_AUDIT: 8, J.REC_MINUTE: 3}

# sha256 of the run below with the journal before the RAM cuts (HEAD of 2026-12-02)
GOLDEN = "5c8fb439f4fcaf5d3cbc91034e8920a5f062308c653604e4bdd709fac5bd3526"


def _payload(rng, n):
    return bytes(rng.randrange(256) for _ in range(n))


def _recrc(dev, addr):
    n = dev.mem[addr + 4]
    end = addr + 48 + n
    dev.mem[end:end + 4] = J.crc32(bytes(dev.mem[addr:end])).to_bytes(4, "little")


def journal_run():
    """A deterministic journal life; returns (sha256 hex of everything observable, mounts,
    records read back at the end, appends refused as full, problems reported, records carried
    by compaction)."""
    out = hashlib.sha256()
    rng = random.Random(10)
    dev = NorFlash(SECTORS)
    mac = Hmac(KEY)
    seen = []

    def mount():
        j = J.Journal(dev, 0, SECTORS, mac, KEEP)
        j.listener = lambda c, a, b: seen.append((c, a, b))
        rep = j.mount()
        out.update(repr((rep, rep.problems, rep.next_seq, rep.capacity, rep.spare)).encode())
        return j

    j = mount()
    mounts = 1
    full = carried = 0
    for i in range(2400):
        r = rng.random()
        try:
            if r < 0.45:  # a minute commit: a block and the registers
                j.append_group([(J.REC_MINUTE, 140_000 + i // 10, _payload(rng, 88)),
                                (J.REC_REGISTERS, 0, _payload(rng, 96))])
            elif r < 0.6:
                j.append_group([(J.REC_HALF, 70_000 + i // 24, _payload(rng, 200)),
                                (J.REC_EVENT, i // 40, _payload(rng, 168)),
                                (J.REC_REGISTERS, 0, _payload(rng, 96))])
            elif r < 0.65:  # a drop of a kept key
                ks = j.keys(J.REC_HALF)
                if ks:
                    j.append(J.REC_HALF, None, ks[rng.randrange(len(ks))])
            elif r < 0.75:
                j.append(J.REC_AUDIT, _payload(rng, rng.randrange(1, 60)), i)
            elif r < 0.8:  # a key far ahead of the others (a clock set years ahead)
                j.append(J.REC_HALF, _payload(rng, 10), 900_000 + i)
            else:
                j.append(J.REC_LIMITER, _payload(rng, rng.randrange(0, 201)))
        except J.JournalFull:
            full += 1
        j.compact_step()
        if i == 700:  # a worn sector: its programs stop sticking
            dev.fail_program(11 * 4096, 12 * 4096)
        if i == 1300:  # a power cut in the middle of a group
            dev.cut_after(200)
            with pytest.raises(PowerCut):
                j.append_group([(J.REC_MINUTE, 150_000, _payload(rng, 88)),
                                (J.REC_REGISTERS, 0, _payload(rng, 96))])
            dev.disarm()
            carried += j.carried
            j = mount()
            mounts += 1
        if i == 2399:  # an attacker without the key edits a live record and its CRC
            for addr in range(0, SECTORS * 4096, 256):
                if addr % 4096 and dev.mem[addr:addr + 2] == b"MJ" and dev.mem[
                        addr + 2] == J.REC_LIMITER:
                    dev.mem[addr + 40] ^= 0x55
                    _recrc(dev, addr)
                    break
        if i % 400 == 399:
            carried += j.carried
            j = mount()
            mounts += 1
    out.update(repr((full, j.programs, j.erases, j.bad_programs, j.bad_erases, j.carried,
                     seen)).encode())
    out.update(dev.image())
    back = 0
    for t in range(1, J.MAX_TYPE + 1):
        if j.kept(t):
            for k in j.keys(t):
                p = j.latest(t, k)
                out.update(repr((t, k)).encode() + (p or b"-"))
                back += 1
    audit = j.audit()
    out.update(repr((audit, audit.problems)).encode())
    return out.hexdigest(), mounts, back, full, seen, carried + j.carried


def test_the_journal_writes_and_reads_exactly_what_it_did_before_the_ram_cuts():
    digest, mounts, back, full, seen, carried = journal_run()
    assert mounts == 8 and back > 30 and full == 0 and carried > 100
    codes = {c for c, _, _ in seen}
    # the damage paths were exercised: a worn sector, a torn record, a forged one
    assert {J.TAMPER_SEAL, J.FLASH_BAD_SECTOR, J.JOURNAL_CORRUPT} <= codes
    assert digest == GOLDEN


def test_the_packed_index_keeps_seqs_keys_and_slots_past_16_bits():
    """Seqs pass 2**16 within weeks of metering and block keys are minutes / 10 since 2000:
    both stay 32-bit. Slots are region-relative (a region far into a device)."""
    dev = NorFlash(48)
    j = J.Journal(dev, 40, 8, Hmac(KEY), {J.REC_HALF: 4})
    assert j.mount().records == 0
    j._seq = 65_534  # a journal 65 534 records old (its first record has no predecessor)
    j.append(J.REC_HALF, b"a", 70_000)  # seq 65 534
    j.append(J.REC_HALF, b"b", 70_001)  # seq 65 535
    j.append(J.REC_HALF, b"c", 70_000)  # seq 65 536: newer, whatever 16 bits would say
    assert bytes(dev.mem[:40 * 4096]) == b"\xff" * (40 * 4096)  # only the region written
    for jj in (j, J.Journal(NorFlash(48, dev.image()), 40, 8, Hmac(KEY), {J.REC_HALF: 4})):
        if jj is not j:
            rep = jj.mount()
            assert rep.ok() and rep.applied == 3 and rep.next_seq == 65_537
        assert jj.keys(J.REC_HALF) == [70_000, 70_001]
        assert jj.latest(J.REC_HALF, 70_000) == b"c" and jj.latest(J.REC_HALF, 70_001) == b"b"
        assert jj.newest()[0] == 65_536
    # the slot numbers fit their 16 bits for the largest region the journal accepts
    assert J._MAX_SECTORS * J._PAGES <= 1 << 15
    with pytest.raises(J.JournalError):
        J.Journal(NorFlash(4), 0, J._MAX_SECTORS + 1, Hmac(KEY))
    assert j._ixslot.itemsize == 2 and j._ixseq.itemsize == 4 and j._ixkey.itemsize == 4


def test_the_five_minute_ring_serves_every_plausible_voltage_and_energy_unchanged():
    ring = FiveMinuteRing()
    assert ring.volt.itemsize == 2 and ring.fwd.itemsize == 4 and ring.stamp.itemsize == 4
    top = Limits().max_volt_dv  # the highest voltage a sample may carry
    day = 9_000 * 1440
    values = [0, 1, 1010, 2020, top, MISSING, 32767]
    for k, v in enumerate(values):
        ring.record(day + 5 * k, MODULO - 1 - k, k, MODULO - 1, 7 * k, v)
    for k, v in enumerate(values):
        s = ring.slot(day + 5 * k)
        assert (ring.fwd[s], ring.rev[s], ring.lag[s], ring.lead[s], ring.volt[s]) == (
            MODULO - 1 - k, k, MODULO - 1, 7 * k, v)
    # nothing accepted by the limits comes near the column's end; beyond it: unknown, never
    # a wrapped value
    assert top < 32767
    for bad in (32768, 70_000, -2):
        ring.record(day, 1, 2, 3, 4, bad)
        assert ring.volt[ring.slot(day)] == MISSING
    assert SeriesRing(30, 4, 2).ncols == 2  # (rings without a voltage column unchanged)


# Under the real unix port: what the journal itself allocates. The flash there allocates
# nothing (reads copy in place, an erase writes a preallocated 0xFF sector), as an ESP32
# partition's readblocks and erase do.
_ALLOC_SCRIPT = """
import gc
from hosthal.flash import NorFlash
from meter.mac import Hmac
from meter.storage import journal as J
from meter.storage.store import keep_map

class BoardFlash(NorFlash):
    def __init__(self, n, image=None):
        NorFlash.__init__(self, n, image)
        self._ffs = b"\\xff" * 4096
    def read(self, offset, buf):
        m = self.mem
        for i in range(len(buf)):
            buf[i] = m[offset + i]
    def erase_sector(self, s):
        self.erases += 1
        self.mem[s * 4096:(s + 1) * 4096] = self._ffs

def alloc(fn, *a):
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    r = fn(*a)
    used = gc.mem_alloc() - a0
    gc.enable()
    return used, r

mac = Hmac(b"ram-cuts-key-0123456789abcdef!!!")
view = memoryview(bytearray(256))[0:120]
one = alloc(mac.digest1, view)[0]
keep = keep_map(five_entries=16, event_entries=20, half_blocks=8)
dev = BoardFlash(40)
j = J.Journal(dev, 0, 40, mac, keep)
j.mount()
blk = bytearray(168)
regs = bytearray(96)
for i in range(700):
    blk[0] = regs[0] = i & 255
    j.append_group([(J.REC_FIVE, 9000 + i // 8, blk), (J.REC_REGISTERS, 0, regs)])
    j.compact_step()
print("digest1", one)
used, _ = alloc(j.append, J.REC_REGISTERS, regs)
print("append", used)
steps = worst = 0
for i in range(400):
    c0 = j.carried
    used, did = alloc(j.compact_step)
    if not did:
        assert used == 0, used
        j.append(J.REC_REGISTERS, regs)
        continue
    steps += 1
    worst = max(worst, used - (j.carried - c0) * 2 * one)
print("compaction", steps, worst)
j2 = J.Journal(BoardFlash(40, dev.image()), 0, 40, mac, keep)
used, rep = alloc(j2.mount)
assert rep.ok() and rep.records > 400, rep
print("mount", rep.records, used)
"""


def test_under_the_unix_port_the_journal_allocates_little_beyond_its_hmac_objects(tmp_path):
    script = tmp_path / "alloc.py"
    script.write_text(_ALLOC_SCRIPT)
    r = subprocess.run([tool("micropython"), "-X", "heapsize=1m", str(script)],
                       capture_output=True, text=True, timeout=120, env=micropython_env())
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    got = {}
    for line in r.stdout.splitlines():
        name, *vals = line.split()
        got[name] = [int(v) for v in vals]
    one = got["digest1"][0]
    assert 0 < one <= 512  # two hash objects and two digests (~448 B on a 64-bit port)
    # one record: its seal and four views of the page buffers (seal, crc, program, verify)
    assert got["append"][0] <= one + 4 * 32 + 32, got
    # a reclaim: two HMACs per carried record (verified as read, sealed anew) and the TAIL
    # record's seal; what is left over is small and bounded
    steps, worst = got["compaction"]
    assert steps >= 10 and worst <= one + 1024, got
    # the mount: one HMAC per record, a few views in all (one per record length) and the
    # per-sector tables; before the cuts ~300 B more per record (tuples, views, lists)
    records, used = got["mount"]
    assert used <= records * (one + 32), (records, used, one)
