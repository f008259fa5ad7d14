"""Damaged flash is never a new meter: blank means all 0xFF, anything else that is not the
journal's own is reported and preserved (never erased by the journal), while the states a
power cut leaves (a retired sector not yet erased, a torn sector header) still recover
silently. A wrong-size flash image is refused with a clear E_ code."""

import os
import random
import struct

import pytest

from meter.errors import SettingError, code
from meter.events import JOURNAL_DAMAGED, TAMPER_SEAL
from meter.mac import Hmac
from meter.storage import journal as J
from hosthal.flash import NorFlash, PowerCut
from hosthal.flash_file import FileNorFlash

KEY = b"k" * 32
SECTORS = 16
KEEP = {J.REC_HALF: 30, J.REC_EVENT: 4}


def make(dev):
    return J.Journal(dev, 0, SECTORS, Hmac(KEY), KEEP)


def mounted(image):
    dev = NorFlash(SECTORS, image)
    j = make(dev)
    return dev, j, j.mount()


def run_log(appends=400):
    """A journal that went round the ring: compaction has reclaimed sectors."""
    dev = NorFlash(SECTORS)
    j = make(dev)
    j.mount()
    for i in range(appends):
        j.append_group([(J.REC_HALF, i // 3, b"h%d" % i), (J.REC_REGISTERS, 0, b"r%d" % i)])
        j.compact_step()
    return dev, j


def newest_sector(dev):
    heads = [s for s in range(SECTORS) if dev.mem[s * 4096:s * 4096 + 4] == b"MJS1"]
    return max(heads, key=lambda s: struct.unpack_from("<I", dev.mem, s * 4096 + 4)[0])


def test_a_flash_of_random_bytes_mounts_as_damaged_not_as_a_blank_meter():
    rnd = random.Random(6)
    image = bytes(rnd.getrandbits(8) for _ in range(SECTORS * 4096))
    dev, j, rep = mounted(image)
    assert rep.damaged == SECTORS and not rep.ok() and rep.records == 0
    assert [p for p in rep.problems if p[0] == JOURNAL_DAMAGED] == [
        (JOURNAL_DAMAGED, s, 1) for s in range(SECTORS)]
    assert rep.capacity == 0 and not rep.fits() and j.capacity_slots() == 0
    # the journal neither writes nor erases it: the evidence stays as found
    with pytest.raises(J.JournalDamaged) as e:
        j.append(J.REC_REGISTERS, b"r")
    assert code(e.value) == "E_JOURNAL_DAMAGED" and isinstance(e.value, J.JournalFull)
    while j.compact_step():
        pass
    assert dev.image() == image and dev.erases == 0 and dev.programs == 0
    # the same at every mount
    assert mounted(image)[2].damaged == SECTORS


def test_a_few_foreign_sectors_are_preserved_and_the_meter_runs_on_the_rest():
    dev, j = run_log(100)
    blank = [s for s in range(SECTORS) if dev.mem[s * 4096:(s + 1) * 4096] == b"\xff" * 4096]
    junk = bytes(range(256)) * 16
    dev.mem[blank[0] * 4096:(blank[0] + 1) * 4096] = junk
    dev2, j2, rep = mounted(dev.image())
    assert rep.damaged == 1 and rep.tamper == 0 and rep.corrupt == 0
    assert rep.problems == [(JOURNAL_DAMAGED, blank[0], 1)]
    assert j2.capacity_slots() == (SECTORS - 1) * J.SLOTS_PER_SECTOR and rep.spare >= 0
    assert j2.damaged_sectors() == [blank[0]]
    for i in range(600):  # round the ring several times
        j2.append(J.REC_REGISTERS, b"on%d" % i)
        j2.compact_step()
    assert dev2.mem[blank[0] * 4096:(blank[0] + 1) * 4096] == junk
    assert dev2.erase_counts[blank[0]] == 0
    j3 = make(NorFlash(SECTORS, dev2.image()))
    assert j3.mount().damaged == 1 and j3.latest(J.REC_REGISTERS) == b"on599"
    # the service step, once the evidence is read out, gives the sector back
    assert j3.release_damaged() == 1 and j3.damaged_sectors() == []
    assert j3.capacity_slots() == SECTORS * J.SLOTS_PER_SECTOR


def test_a_zeroed_newest_sector_is_reported_and_never_erased():
    dev, j = run_log()
    s = newest_sector(dev)
    dev.mem[s * 4096:(s + 1) * 4096] = bytes(4096)
    dev2, j2, rep = mounted(dev.image())
    assert rep.damaged == 1 and (JOURNAL_DAMAGED, s, 1) in rep.problems and not rep.ok()
    for _ in range(50):
        j2.compact_step()
        j2.append(J.REC_REGISTERS, b"x")
    assert dev2.mem[s * 4096:(s + 1) * 4096] == bytes(4096) and dev2.erase_counts[s] == 0


def test_a_retire_mark_on_the_newest_sector_is_reported_and_its_records_kept():
    dev, j = run_log()
    want = j.latest(J.REC_REGISTERS)
    s = newest_sector(dev)
    dev.mem[s * 4096 + 16:s * 4096 + 20] = bytes(4)  # the head retire mark
    dev.mem[s * 4096 + 4092:s * 4096 + 4096] = bytes(4)  # the tail retire mark
    dev2, j2, rep = mounted(dev.image())
    assert rep.damaged == 1 and rep.problems == [(JOURNAL_DAMAGED, s, 2)]
    assert rep.tamper == 0 and j2.latest(J.REC_REGISTERS) == want  # nothing it held lost
    e0 = dev2.erase_counts[s]
    j2.compact_step()  # the next idle step does not wipe it
    assert dev2.erase_counts[s] == e0
    j2.append(J.REC_REGISTERS, b"after")
    j3, rep3 = make(NorFlash(SECTORS, dev2.image())), None
    rep3 = j3.mount()
    assert rep3.problems == [(JOURNAL_DAMAGED, s, 2)] and rep3.tamper == 0
    assert j3.latest(J.REC_REGISTERS) == b"after"


def test_a_retired_sector_cut_before_its_erase_recovers_silently():
    dev, j = run_log(200)
    while j.free_sectors() >= J.TARGET_BLANK:
        j.append(J.REC_REGISTERS, b"filler")
    base = dev.image()
    probe = NorFlash(SECTORS, base)
    pj = make(probe)
    pj.mount()
    ops = []
    erase = probe.erase_sector
    probe.erase_sector = lambda s: (ops.append(probe.steps), erase(s))
    assert pj.compact_step() == 1
    cut = ops[0] - probe.steps + (probe.steps - 0)  # the steps before the erase
    d = NorFlash(SECTORS, base)
    jj = make(d)
    jj.mount()
    d.cut_after(ops[0] - d.steps)  # cut exactly at the erase: both marks are programmed
    with pytest.raises(PowerCut):
        jj.compact_step()
    d.disarm()
    assert cut >= 0
    j2, rep = make(NorFlash(SECTORS, d.image())), None
    rep = j2.mount()
    assert rep.ok() and rep.damaged == 0 and rep.sectors_dirty == 1
    assert j2.latest(J.REC_REGISTERS) == b"filler"


def test_erasing_the_oldest_sector_is_still_tamper_with_a_retired_sector_older_still():
    dev, j = run_log(200)
    while j.free_sectors() >= J.TARGET_BLANK:
        j.append(J.REC_REGISTERS, b"filler")
    d = NorFlash(SECTORS, dev.image())
    jj = make(d)
    jj.mount()
    erase = d.erase_sector
    d.erase_sector = lambda s: (_ for _ in ()).throw(PowerCut())  # cut at the erase
    with pytest.raises(PowerCut):
        jj.compact_step()
    d.erase_sector = erase
    # someone erases the oldest sector the log still needs
    opened = [s for s in range(SECTORS) if d.mem[s * 4096:s * 4096 + 4] == b"MJS1"
              and d.mem[s * 4096 + 16] != 0]
    oldest = min(opened, key=lambda s: struct.unpack_from("<I", d.mem, s * 4096 + 4)[0])
    d.erase_sector(oldest)
    rep = make(NorFlash(SECTORS, d.image())).mount()
    assert rep.tamper >= 1 and any(p[0] == TAMPER_SEAL for p in rep.problems)


def test_a_torn_sector_header_is_the_journals_own_and_recovers_silently():
    dev = NorFlash(SECTORS)
    j = make(dev)
    j.mount()
    for k in range(1, 12):
        d = NorFlash(SECTORS)
        jj = make(d)
        jj.mount()
        d.cut_after(k)  # inside the header program of the first sector
        with pytest.raises(PowerCut):
            jj.append(J.REC_REGISTERS, b"r")
        d.disarm()
        d2, j2, rep = mounted(d.image())
        assert rep.ok() and rep.damaged == 0, k
        assert j2.compact_step() == 1 and d2.erases == 1  # erased: nothing lost
        j2.append(J.REC_REGISTERS, b"r")


def test_a_wrong_size_flash_image_is_refused_with_its_sizes(tmp_path):
    p = str(tmp_path / "flash.bin")
    FileNorFlash(p, sectors=8).close()
    with pytest.raises(SettingError) as e:
        FileNorFlash(p, sectors=16)
    msg = str(e.value)
    assert code(e.value) == "E_FLASH_IMAGE_SIZE"
    assert "32768" in msg and "65536" in msg and p in msg
    assert os.path.getsize(p) == 8 * 4096  # the image is left as it was
    with pytest.raises(SettingError):
        NorFlash(4, bytes(100))
