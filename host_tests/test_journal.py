"""Journal on NOR flash: records survive remounts, newest wins, damage is detected and
reported, the seal chain shows tampering, compaction keeps live data with no erase inside
a commit, a full journal refuses cleanly."""

import struct

import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from meter.storage import journal as J
from meter.events import JOURNAL_CORRUPT, TAMPER_SEAL
from meter.mac import Hmac
from hosthal.flash import NorFlash, PowerCut

KEY = b"k" * 32
SECTORS = 16
KEEP = {J.REC_HALF: 30, J.REC_EVENT: 4}


def make(dev=None, key=KEY, keep=KEEP):
    dev = dev or NorFlash(SECTORS)
    j = J.Journal(dev, 0, SECTORS, Hmac(key), keep)
    return dev, j


def remount(dev, key=KEY, keep=KEEP):
    _, j = make(NorFlash(SECTORS, dev.image()), key, keep)
    seen = []
    j.listener = lambda code, a, b: seen.append((code, a, b))
    rep = j.mount()
    return j, rep, seen


def record_addrs(dev):
    """Addresses of all slots holding a record magic, in flash order."""
    out = []
    for s in range(dev.sectors):
        for p in range(1, 16):
            a = s * 4096 + p * 256
            if dev.mem[a:a + 2] == b"MJ":
                out.append(a)
    return out


def recrc(dev, addr):
    """Recompute a record's CRC after editing it (what an attacker without the key can do)."""
    n = dev.mem[addr + 4]
    end = addr + 48 + n
    crc = J.crc32(bytes(dev.mem[addr:end]))
    dev.mem[end:end + 4] = struct.pack("<I", crc)


def test_crc32_fallback_table_matches_binascii():
    import binascii
    data = bytes(range(256)) * 3
    saved = J._crc32
    try:
        J._crc32 = None
        assert J.crc32(data) == binascii.crc32(data)
        assert J.crc32(b"123456789") == 0xCBF43926
    finally:
        J._crc32 = saved


def test_blank_flash_mounts_empty():
    dev, j = make()
    rep = j.mount()
    assert rep.ok() and rep.records == 0 and rep.sectors_blank == SECTORS
    assert j.latest(J.REC_REGISTERS) is None
    assert j.free_sectors() == SECTORS


def test_append_and_remount_round_trip_every_type():
    dev, j = make()
    j.mount()
    for t in range(J.REC_REGISTERS, J.REC_CONFIG + 1):
        j.append(t, b"payload-%d" % t)
    j2, rep, seen = remount(dev)
    assert rep.ok() and seen == []
    for t in range(J.REC_REGISTERS, J.REC_CONFIG + 1):
        assert j2.latest(t) == b"payload-%d" % t


def test_newest_record_wins_at_mount():
    dev, j = make()
    j.mount()
    for i in range(40):
        j.append(J.REC_REGISTERS, b"v%d" % i)
    j2, rep, _ = remount(dev)
    assert j2.latest(J.REC_REGISTERS) == b"v39" and rep.ok()


def test_history_keeps_newest_record_per_key_and_only_the_newest_keys():
    dev, j = make()
    j.mount()
    for k in range(50):
        j.append(J.REC_HALF, b"old%d" % k, key=k)
        j.append(J.REC_HALF, b"new%d" % k, key=k)
        while j.compact_step():
            pass
    j2, _, _ = remount(dev)
    assert j2.keys(J.REC_HALF) == list(range(20, 50))
    assert j2.latest(J.REC_HALF, 49) == b"new49" and j2.latest(J.REC_HALF, 19) is None
    assert [k for k, _ in j2.records(J.REC_HALF)] == list(range(20, 50))


def test_bad_input_is_refused_and_changes_nothing():
    dev, j = make()
    j.mount()
    j.append(J.REC_CLOCK, b"x")
    before = (dev.programs, j.free_slots())
    with pytest.raises(J.RecordTooBig):
        j.append(J.REC_CLOCK, b"y" * (J.MAX_PAYLOAD + 1))
    with pytest.raises(J.BadRecord):
        j.append(0, b"y")
    with pytest.raises(J.BadRecord):
        j.append(J.MAX_TYPE, b"y")  # not configured
    with pytest.raises(J.BadRecord):
        j.append(J.REC_HALF, b"y", key=-1)
    with pytest.raises(J.RecordTooBig):
        j.append_group([(J.REC_CLOCK, 0, b"ok"), (J.REC_CLOCK, 0, b"z" * 999)])
    assert (dev.programs, j.free_slots()) == before
    assert j.latest(J.REC_CLOCK) == b"x"


def test_a_journal_too_small_for_its_retention_is_refused():
    with pytest.raises(J.JournalError):
        J.Journal(NorFlash(8), 0, 8, Hmac(KEY), {J.REC_HALF: 204})
    with pytest.raises(J.JournalError):
        J.Journal(NorFlash(8), 4, 8, Hmac(KEY))


def test_commit_cut_at_every_byte_keeps_old_or_new_state_never_a_mixture():
    dev, j = make()
    j.mount()
    j.append_group([(J.REC_MINUTE, 0, b"m-old"), (J.REC_REGISTERS, 0, b"r-old")])
    base = dev.image()
    # measure the commit
    probe = NorFlash(SECTORS, base)
    _, pj = make(probe)
    pj.mount()
    s0 = probe.steps
    pj.append_group([(J.REC_MINUTE, 0, b"m-new" * 20), (J.REC_REGISTERS, 0, b"r-new" * 30)])
    total = probe.steps - s0
    assert total > 300
    outcomes = set()
    for cut in range(total + 1):
        d = NorFlash(SECTORS, base)
        _, jj = make(d)
        jj.mount()
        d.cut_after(cut)
        try:
            jj.append_group([(J.REC_MINUTE, 0, b"m-new" * 20),
                             (J.REC_REGISTERS, 0, b"r-new" * 30)])
        except PowerCut:
            pass
        d.disarm()
        j2, rep, _ = remount(d)
        state = (j2.latest(J.REC_MINUTE), j2.latest(J.REC_REGISTERS))
        assert state in ((b"m-old", b"r-old"), (b"m-new" * 20, b"r-new" * 30)), cut
        assert rep.chain_ok()
        outcomes.add(state[1][:5])
        # runs on: the next commit lands and chains
        j2.append(J.REC_REGISTERS, b"after")
        j3, rep3, _ = remount(j2.dev)
        assert j3.latest(J.REC_REGISTERS) == b"after" and rep3.chain_ok()
    assert outcomes == {b"r-old", b"r-new"}


def test_a_torn_record_is_reported_as_corrupt_once_per_mount():
    dev, j = make()
    j.mount()
    j.append(J.REC_REGISTERS, b"a")
    dev.cut_after(20)
    with pytest.raises(PowerCut):
        j.append(J.REC_REGISTERS, b"b")
    dev.disarm()
    j2, rep, seen = remount(dev)
    assert rep.corrupt == 1 and rep.tamper == 0
    assert [c for c, _, _ in seen] == [JOURNAL_CORRUPT]
    assert j2.latest(J.REC_REGISTERS) == b"a"


def test_bit_flips_are_detected_reported_and_everything_else_recovered():
    dev, j = make()
    j.mount()
    for i in range(10):
        j.append_group([(J.REC_HALF, i, b"h%d" % i), (J.REC_REGISTERS, 0, b"r%d" % i)])
    addrs = record_addrs(dev)
    victim = addrs[6]  # the half block of i = 3
    dev.mem[victim + 40] ^= 0x10
    j2, rep, seen = remount(dev)
    assert rep.corrupt == 1 and rep.tamper == 0
    assert seen == [(JOURNAL_CORRUPT, victim // 4096, victim % 4096)]
    assert j2.latest(J.REC_HALF, 3) is None
    assert [j2.latest(J.REC_HALF, k) for k in (2, 4, 9)] == [b"h2", b"h4", b"h9"]
    assert j2.latest(J.REC_REGISTERS) == b"r9"


def test_damaged_newest_registers_fall_back_to_the_previous_commit():
    dev, j = make()
    j.mount()
    j.append(J.REC_REGISTERS, b"r1")
    j.append(J.REC_REGISTERS, b"r2")
    last = record_addrs(dev)[-1]
    dev.mem[last + 33] ^= 0x01
    j2, rep, _ = remount(dev)
    assert j2.latest(J.REC_REGISTERS) == b"r1" and rep.corrupt == 1


def test_modified_record_with_fixed_crc_breaks_the_seal_and_is_not_trusted():
    dev, j = make()
    j.mount()
    j.append(J.REC_REGISTERS, b"count=100")
    j.append(J.REC_REGISTERS, b"count=200")
    j.append(J.REC_CLOCK, b"c")
    a = record_addrs(dev)[1]
    dev.mem[a + 32:a + 41] = b"count=999"  # a tamperer rewrites... (bits can only clear
    recrc(dev, a)                          # on NOR, but an attacker may rewrite a sector)
    j2, rep, seen = remount(dev)
    assert rep.tamper == 1 and not rep.chain_ok() and rep.corrupt == 0
    assert seen == [(TAMPER_SEAL, a // 4096, 1)]
    assert j2.latest(J.REC_REGISTERS) == b"count=100"  # never trusted
    assert j2.latest(J.REC_CLOCK) == b"c"
    # reported again by every audit and every mount: never silently repaired
    assert j2.audit().tamper == 1
    j2.append(J.REC_CLOCK, b"d")
    assert j2.audit().tamper == 1 and j2.latest(J.REC_CLOCK) == b"d"
    assert remount(dev)[1].tamper == 1


def test_records_sealed_with_another_key_are_tamper():
    dev, j = make()
    j.mount()
    j.append(J.REC_REGISTERS, b"genuine")
    _, forger = make(dev, key=b"x" * 32)
    forger.mount()
    forger.append(J.REC_REGISTERS, b"forged")
    j2, rep, _ = remount(dev)
    assert rep.tamper >= 1 and j2.latest(J.REC_REGISTERS) == b"genuine"


def test_a_removed_record_breaks_the_chain():
    dev, j = make()
    j.mount()
    for i in range(5):
        j.append(J.REC_REGISTERS, b"r%d" % i)
    # Rebuild the sector without record 2 (as an attacker with a programmer would).
    addrs = record_addrs(dev)
    sector = bytearray(dev.mem[0:4096])
    a2, a3, a4 = addrs[2], addrs[3], addrs[4]
    sector[a2:a2 + 256] = dev.mem[a3:a3 + 256]
    sector[a3:a3 + 256] = dev.mem[a4:a4 + 256]
    sector[a4:a4 + 256] = b"\xff" * 256
    dev.mem[0:4096] = sector
    j2, rep, seen = remount(dev)
    assert rep.tamper == 1 and rep.corrupt == 0
    assert seen[0][0] == TAMPER_SEAL


def test_audit_of_a_healthy_journal_is_clean_and_finds_later_tampering():
    dev, j = make()
    j.mount()
    for i in range(30):
        j.append(J.REC_REGISTERS, b"r%d" % i)
        j.compact_step()
    assert j.audit().ok()
    a = record_addrs(dev)[-3]
    dev.mem[a + 32] = ord("X")
    recrc(dev, a)
    rep = j.audit()
    assert rep.tamper == 1


def test_compaction_keeps_everything_live_and_commits_never_erase():
    dev, j = make()
    j.mount()
    model = {}
    for i in range(3000):
        e0 = dev.erases
        key = i // 7
        j.append_group([(J.REC_HALF, key, b"h%d" % i), (J.REC_REGISTERS, 0, b"r%d" % i)])
        model[key] = b"h%d" % i
        if i % 97 == 0:
            j.append(J.REC_EVENT, b"e%d" % i, key=i // 97)
            model[("e", i // 97)] = b"e%d" % i
        assert dev.erases == e0  # zero erases inside a commit
        e1 = dev.erases
        j.compact_step()
        assert dev.erases - e1 <= 1  # at most one erase per step
    assert dev.erases > 3 * SECTORS  # the log went round several times
    j2, rep, _ = remount(dev)
    assert rep.ok()
    assert j2.latest(J.REC_REGISTERS) == b"r2999"
    for k in j2.keys(J.REC_HALF):
        assert j2.latest(J.REC_HALF, k) == model[k]
    assert j2.keys(J.REC_HALF) == list(range(3000 // 7 - 29, 3000 // 7 + 1))
    for k in j2.keys(J.REC_EVENT):
        assert j2.latest(J.REC_EVENT, k) == model[("e", k)]
    assert len(j2.keys(J.REC_EVENT)) == 4
    # wear is spread over the whole region
    assert min(dev.erase_counts) > 0


def test_full_journal_refuses_normal_appends_but_keeps_the_last_gasp_reserve():
    dev, j = make()
    j.mount()
    n = 0
    with pytest.raises(J.JournalFull):
        while True:
            j.append(J.REC_HALF, b"x" * 100, key=n % 30)
            n += 1
    assert j.free_slots() >= J.LAST_GASP_SLOTS + J.SLOTS_PER_SECTOR - 1
    before = (dev.programs, j.latest(J.REC_HALF, (n - 1) % 30))
    with pytest.raises(J.JournalFull):
        j.append(J.REC_REGISTERS, b"r")
    assert (dev.programs, j.latest(J.REC_HALF, (n - 1) % 30)) == before
    e0 = dev.erases
    j.append_group([(J.REC_REGISTERS, 0, b"last gasp"), (J.REC_LASTGASP, 0, b"lg")],
                   J.LAST_GASP)
    assert dev.erases == e0
    while j.compact_step():
        pass
    j.append(J.REC_REGISTERS, b"after compaction")
    j2, rep, _ = remount(dev)
    assert rep.ok() and j2.latest(J.REC_REGISTERS) == b"after compaction"
    assert j2.latest(J.REC_LASTGASP) == b"lg"


def test_power_cut_during_compaction_loses_nothing():
    dev, j = make()
    j.mount()
    for i in range(200):
        j.append_group([(J.REC_HALF, i // 5, b"h%d" % i), (J.REC_REGISTERS, 0, b"r%d" % i)])
        j.compact_step()
    # fill until compaction has work, then cut inside it at many points
    while j.free_sectors() >= J.TARGET_BLANK:
        j.append(J.REC_REGISTERS, b"filler")
    base = dev.image()
    probe = NorFlash(SECTORS, base)
    _, pj = make(probe)
    pj.mount()
    s0 = probe.steps
    assert pj.compact_step() == 1
    total = probe.steps - s0
    for cut in range(0, total + 1, 7):
        d = NorFlash(SECTORS, base)
        _, jj = make(d)
        jj.mount()
        d.cut_after(cut)
        try:
            jj.compact_step()
        except PowerCut:
            pass
        d.disarm()
        j2, rep, _ = remount(d)
        assert rep.chain_ok(), cut
        assert j2.latest(J.REC_REGISTERS) == b"filler"
        assert j2.keys(J.REC_HALF) == list(range(10, 40))
        assert j2.latest(J.REC_HALF, 39) == b"h199"
        while j2.compact_step():
            pass
        j2.append(J.REC_REGISTERS, b"on")
        assert remount(j2.dev)[0].latest(J.REC_REGISTERS) == b"on"


_ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.sampled_from([J.REC_REGISTERS, J.REC_CLOCK, J.REC_HALF]),
              st.integers(0, 40), st.binary(max_size=J.MAX_PAYLOAD)),
    st.tuples(st.just("compact"), st.integers(1, 3)),
    st.tuples(st.just("remount")),
    st.tuples(st.just("cut"), st.integers(0, 600)),
), max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_property_journal_matches_a_model_across_compaction_remounts_and_cuts(ops):
    dev, j = make()
    j.mount()
    model = {}  # (type, key) -> payload, for committed records
    maybe = {}  # a record whose append was cut: either outcome is allowed

    def newest_keys():
        # a key is dropped when a newer key with the same key % keep was committed
        n = KEEP[J.REC_HALF]
        ks = [k for (t, k) in model if t == J.REC_HALF]
        return {k for k in ks if not any(k2 > k and k2 % n == k % n for k2 in ks)}

    for op in ops:
        if op[0] == "append":
            _, t, k, p = op
            k = k if t == J.REC_HALF else 0
            try:
                j.append(t, p, key=k)
            except J.JournalFull:
                continue
            model[(t, k)] = p
            maybe.pop((t, k), None)
        elif op[0] == "compact":
            for _ in range(op[1]):
                j.compact_step()
        elif op[0] == "cut":
            dev.cut_after(op[1])
            t, k, p = J.REC_REGISTERS, 0, b"cut%d" % op[1]
            try:
                j.append(t, p)
                model[(t, k)] = p
                maybe.pop((t, k), None)
                dev.disarm()
                continue
            except PowerCut:
                dev.disarm()
                maybe[(t, k)] = p
            except J.JournalFull:
                dev.disarm()
                continue
            dev = NorFlash(SECTORS, dev.image())
            _, j = make(dev)
            rep = j.mount()
            assert rep.chain_ok()
            got = j.latest(t, k)
            if got == maybe.get((t, k)):
                model[(t, k)] = got
            maybe.pop((t, k), None)
        else:
            dev = NorFlash(SECTORS, dev.image())
            _, j = make(dev)
            rep = j.mount()
            assert rep.chain_ok() and rep.tamper == 0
        live = newest_keys()
        for (t, k), p in model.items():
            if t != J.REC_HALF or k in live:
                assert j.latest(t, k) == p, (t, k)
    assert j.audit().chain_ok()


def test_erasing_the_old_end_of_the_log_is_tamper():
    dev, j = make()
    j.mount()
    for i in range(400):
        j.append_group([(J.REC_HALF, i // 3, b"h%d" % i), (J.REC_REGISTERS, 0, b"r%d" % i)])
        j.compact_step()
    assert j.audit().chain_ok()
    # the sector holding the oldest records, erased by someone else
    oldest = min((s for s in range(SECTORS) if dev.mem[s * 4096:s * 4096 + 4] == b"MJS1"),
                 key=lambda s: struct.unpack_from("<I", dev.mem, s * 4096 + 4)[0])
    dev.erase_sector(oldest)
    j2, rep, seen = remount(dev)
    assert rep.tamper == 1 and seen[-1][0] == TAMPER_SEAL
    assert rep.corrupt == 0


def test_the_named_offsets_are_the_record_and_sector_layout_on_flash():
    """The layout the header comment documents, read back from flash at the named offsets:
    magic u16 | type u8 | flags u8 | len u8 | 3 pad | seq u32 | key i32 | prev 16 | payload
    | seal 16 | crc32; sector header magic | epoch | crc32 and the two retire marks."""
    assert struct.calcsize(J._REC_FMT) == J._OFF_PREV
    assert J._OFF_PREV + J._SEAL == J._HDR == 32
    assert struct.calcsize(J._SEC_FMT) == J._OFF_SEC_CRC and J._SEC_HDR_LEN == 12
    assert J._MARK_TAIL == J.SECTOR_SIZE - J._MARK_LEN
    assert J._HDR + J.MAX_PAYLOAD + J._SEAL + J._CRC_LEN <= J.PAGE_SIZE - J._MARK_LEN
    dev, j = make()
    j.mount()
    j.append(J.REC_CLOCK, b"abc", 0)
    seq = j.append_group([(J.REC_HALF, 7, b"first"), (J.REC_HALF, 8, b"second!")])
    a = record_addrs(dev)[-1]
    rec = bytes(dev.mem[a:a + 256])
    assert struct.unpack_from("<H", rec, J._OFF_MAGIC)[0] == 0x4A4D
    assert rec[J._OFF_TYPE] == J.REC_HALF and rec[J._OFF_FLAGS] == J._LAST
    n = rec[J._OFF_LEN]
    assert n == 7 and rec[J._HDR:J._HDR + n] == b"second!"
    assert struct.unpack_from("<I", rec, J._OFF_SEQ)[0] == seq
    assert struct.unpack_from("<i", rec, J._OFF_KEY)[0] == 8
    prev = bytes(dev.mem[record_addrs(dev)[-2]:][:256])
    pn = prev[J._OFF_LEN]
    assert prev[J._OFF_FLAGS] == J._FIRST
    assert rec[J._OFF_PREV:J._HDR] == prev[J._HDR + pn:J._HDR + pn + J._SEAL]  # the chain
    end = J._HDR + n + J._SEAL
    assert struct.unpack_from("<I", rec, end)[0] == J.crc32(rec[:end])
    assert rec[J._HDR + n:end] == Hmac(KEY).digest(rec[:J._HDR + n])[:J._SEAL]
    s0 = (a // J.SECTOR_SIZE) * J.SECTOR_SIZE
    magic, epoch = struct.unpack_from(J._SEC_FMT, dev.mem, s0 + J._OFF_SEC_MAGIC)
    assert magic == 0x3153_4A4D and epoch == 0
    assert struct.unpack_from("<I", dev.mem, s0 + J._OFF_SEC_CRC)[0] == J.crc32(
        bytes(dev.mem[s0:s0 + J._OFF_SEC_CRC]))
    assert j.kept(J.REC_HALF) == 30 and j.kept(J.REC_CLOCK) == 1 and j.kept(20) == 0
