"""Worn flash is retired: every program and erase is read back; a page that did not take
its record moves the record to the next erased sector (the group whole or unused), a
sector that does not erase is never used again, the BAD set survives reboots (a bad sector
is neither damage nor tamper), and the capacity left is reported."""

import pytest

from meter.errors import code
from meter.events import FLASH_BAD_SECTOR
from meter.mac import Hmac
from meter.storage import journal as J
from hosthal.flash import NorFlash, PowerCut

KEY = b"k" * 32
SECTORS = 16
KEEP = {J.REC_HALF: 30, J.REC_EVENT: 4}


def make(dev):
    j = J.Journal(dev, 0, SECTORS, Hmac(KEY), KEEP)
    j.seen = []
    j.listener = lambda c, a, b: j.seen.append((c, a, b))
    return j


def remount(dev):
    j = make(NorFlash(SECTORS, dev.image()))
    return j, j.mount()


def head(j):
    return j._head


def test_a_page_that_does_not_program_moves_the_record_and_retires_the_sector():
    dev = NorFlash(SECTORS)
    j = make(dev)
    j.mount()
    j.append(J.REC_REGISTERS, b"r0")
    s = head(j)
    slot = j._used[s]  # the next slot: it will not take a record
    a = s * 4096 + slot * 256
    dev.fail_program(a + 40, a + 41)
    seq = j.append_group([(J.REC_HALF, 1, b"half"), (J.REC_REGISTERS, 0, b"r1")])
    assert j.seen == [(FLASH_BAD_SECTOR, s, 1)] and j.bad_programs == 1
    assert head(j) != s and j.latest(J.REC_REGISTERS) == b"r1"
    j.compact_step()  # persists the BAD set
    j2, rep = remount(dev)
    assert rep.chain_ok() and rep.corrupt == 0 and rep.damaged == 0 and rep.bad == 1
    assert rep.next_seq == seq + 2  # (+ the BAD-set record)
    assert j2.latest(J.REC_HALF, 1) == b"half" and j2.latest(J.REC_REGISTERS) == b"r1"
    assert j2.bad_sectors() == [s]
    # the sector is reclaimed once (its live record carried), then never opened again
    for i in range(800):
        j2.append(J.REC_REGISTERS, b"on%d" % i)
        j2.compact_step()
    assert j2.bad_sectors() == [s] and dev.image() != j2.dev.image()
    assert j2.dev.erase_counts[s] == 1
    j3, rep3 = remount(j2.dev)
    assert rep3.ok() and rep3.bad == 1 and j3.latest(J.REC_REGISTERS) == b"on799"
    assert rep3.capacity == (SECTORS - 1) * J.SLOTS_PER_SECTOR == j3.capacity_slots()


def test_a_group_cut_short_by_bad_pages_is_used_whole_or_not_at_all():
    dev = NorFlash(SECTORS)
    j = make(dev)
    j.mount()
    j.append(J.REC_REGISTERS, b"old")
    # every sector but the head refuses its header: the group cannot be finished
    for s in range(SECTORS):
        if s != head(j):
            dev.fail_program(s * 4096, s * 4096 + 1)
    items = [(J.REC_HALF, k, b"x" * 150) for k in range(J.SLOTS_PER_SECTOR + 2)]
    with pytest.raises(J.JournalFull):
        j.append_group(items, J.COMPACTION)
    assert j.latest(J.REC_HALF, 0) is None and j.latest(J.REC_REGISTERS) == b"old"
    j2, rep = remount(dev)
    assert rep.chain_ok() and rep.incomplete > 0
    assert j2.latest(J.REC_HALF, 0) is None and j2.latest(J.REC_REGISTERS) == b"old"


def test_a_sector_that_does_not_erase_is_never_used_again_and_survives_reboots():
    dev = NorFlash(SECTORS)
    j = make(dev)
    j.mount()
    bad = None
    for i in range(2000):
        j.append_group([(J.REC_HALF, i // 7, b"h%d" % i), (J.REC_REGISTERS, 0, b"r%d" % i)])
        if bad is None and i == 100:
            bad = min(s for s in range(SECTORS) if j._state[s] == J._OPEN)  # next victim
            dev.fail_erase(bad)
        j.compact_step()
    assert j.bad_sectors() == [bad] and j.bad_erases == 1
    assert (FLASH_BAD_SECTOR, bad, 2) in j.seen
    assert dev.erase_counts[bad] == 1  # one failed erase, then left alone
    stuck = dev.mem[bad * 4096:(bad + 1) * 4096]
    assert stuck != b"\xff" * 4096
    j2, rep = remount(dev)
    # garbage in a known bad sector is neither damage nor tamper
    assert rep.ok() and rep.bad == 1 and rep.damaged == 0 and j2.seen == []
    assert rep.capacity == (SECTORS - 1) * J.SLOTS_PER_SECTOR and rep.spare >= 0
    assert j2.latest(J.REC_REGISTERS) == b"r1999"
    assert j2.keys(J.REC_HALF) == list(range(1999 // 7 - 29, 1999 // 7 + 1))


def test_a_failing_page_in_a_last_gasp_commit_uses_the_reserve_and_never_erases():
    dev = NorFlash(SECTORS)
    j = make(dev)
    j.mount()
    n = 0
    with pytest.raises(J.JournalFull):
        while True:
            j.append(J.REC_HALF, b"x" * 100, key=n % 30)
            n += 1
    s = head(j)
    a = s * 4096 + j._used[s] * 256
    dev.fail_program(a, a + 1)  # the next reserved slot fails
    e0 = dev.erases
    j.append_group([(J.REC_REGISTERS, 0, b"last gasp"), (J.REC_LASTGASP, 0, b"lg")],
                   J.LAST_GASP)
    assert dev.erases == e0 and j.bad_programs == 1
    j2, rep = remount(dev)
    assert rep.chain_ok() and j2.latest(J.REC_REGISTERS) == b"last gasp"
    assert j2.latest(J.REC_LASTGASP) == b"lg"


def test_a_power_cut_before_the_bad_set_is_persisted_is_damage_never_tamper():
    dev = NorFlash(SECTORS)
    j = make(dev)
    j.mount()
    for i in range(300):
        j.append(J.REC_REGISTERS, b"r%d" % i)
        j.compact_step()
    victim = min((s for s in range(SECTORS) if j._state[s] == J._OPEN and s != head(j)),
                 key=lambda s: j._epoch[s])
    while j.free_sectors() >= J.TARGET_BLANK:
        j.append(J.REC_REGISTERS, b"filler")
    dev.fail_erase(victim)
    erase = dev.erase_sector

    def erase_then_cut(s):
        erase(s)
        dev.cut_after(0)  # power lost before the BAD record is written

    dev.erase_sector = erase_then_cut
    with pytest.raises(PowerCut):
        j.compact_step()  # the failed erase
    dev.disarm()
    assert j.bad_sectors() == [victim]
    j2, rep = remount(dev)
    assert rep.chain_ok() and rep.damaged == 1 and j2.damaged_sectors() == [victim]
    assert j2.latest(J.REC_REGISTERS) == b"filler"


def test_wear_out_to_end_of_life_retires_sectors_one_by_one_and_loses_nothing():
    """A small sample of tools/wearout.py on the bare journal: sectors die one by one, the
    journal keeps every committed record until the flash left cannot hold the record set,
    then refuses with E_JOURNAL_DAMAGED; at every remount the BAD set is known."""
    dev = NorFlash(SECTORS, endurance=12)
    j = make(dev)
    j.mount()
    bad_seen = []
    i = 0
    model = {}
    while True:
        try:
            j.append_group([(J.REC_HALF, i // 3, b"h%d" % i), (J.REC_REGISTERS, 0, b"r%d" % i)])
        except J.JournalFull as e:
            # plain "full" only while the record set still fits; then E_JOURNAL_DAMAGED
            assert isinstance(e, J.JournalDamaged) == (j.spare_slots() < 0)
            if isinstance(e, J.JournalDamaged):
                assert code(e) == "E_JOURNAL_DAMAGED"
                break
            while j.compact_step():
                pass
            continue
        model[i // 3] = b"h%d" % i
        model["r"] = b"r%d" % i
        i += 1
        try:
            j.compact_step()
            j.compact_step()
        except J.JournalFull:
            pass
        nb = len(j.bad_sectors())
        if not bad_seen or nb != bad_seen[-1]:
            bad_seen.append(nb)
            # a reboot at each change: the BAD set and the data come back
            j2, rep = remount(dev)
            assert rep.chain_ok() and rep.bad >= nb - 1, (i, rep)
            assert j2.latest(J.REC_REGISTERS) == model["r"]
        assert i < 100_000
    assert bad_seen == sorted(bad_seen) and bad_seen[-1] >= 4
    assert j.spare_slots() < 0
    j2, rep = remount(dev)
    assert rep.chain_ok() and not rep.fits() and j2.latest(J.REC_REGISTERS) == model["r"]
    for k in j2.keys(J.REC_HALF):
        assert j2.latest(J.REC_HALF, k) == model[k]
    with pytest.raises(J.JournalDamaged):
        j2.append(J.REC_REGISTERS, b"no room")
