"""A meter booted on a damaged flash is not a new meter: it reports the damage, preserves the
flash, and serves its registers as "no data" with the ECHONET fault status set (never a
valid zero)."""

import random

from echonet_frames import decode, request, u32
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from hosthal.loads import ConstantLoad
from meter.assembly import build_meter
from meter.storage.store import FROM_DAMAGED, FROM_NEW

KEY = b"damaged-flash-test-key-012345678"
SECTORS = 32
NO_DATA = 0xFFFFFFFE


class EmptySlot:
    """A B-route radio slot with nothing fitted (the ECHONET service is built)."""

    def present(self):
        return False


def boot(image=None):
    clock = VirtualClock(wall_s=9_000 * 86_400)
    flash = NorFlash(SECTORS, image)
    hal = HostHal(clock, ConstantLoad(1000), flash=flash, radio=EmptySlot())
    m = build_meter(hal, key=KEY)
    rep = m.boot()
    return m, flash, rep


def get(m, *epcs):
    svc = m.echonet
    frame = request(0x62, list(epcs))
    svc.rx[:len(frame)] = frame
    n = svc.handle(svc.rx, len(frame), m.now.read(m.clock))
    return dict(decode(bytes(svc.tx.buf[:n]))["props"])


def test_a_blank_flash_is_a_new_meter_with_valid_zero_registers():
    m, _, rep = boot()
    assert not rep.damaged and m.store.registers_valid and m.store.restored_from == FROM_NEW
    props = get(m, 0xE0, 0x88)
    assert u32(props[0xE0]) == 0 and props[0x88] == b"\x42"


def test_random_bytes_are_damage_preserved_and_served_as_no_data_with_a_fault():
    rng = random.Random(7)
    image = bytes(rng.getrandbits(8) for _ in range(SECTORS * NorFlash.SECTOR_SIZE))
    m, flash, rep = boot(image)
    assert rep.damaged == SECTORS and not rep.ok()
    assert not m.store.registers_valid and m.store.restored_from == FROM_DAMAGED
    for _ in range(120):  # two minutes of metering and idle work change nothing on flash
        m.step()
        m.idle()
        m.clock.advance(1000)
    assert bytes(flash.image()) == image
    props = get(m, 0xE0, 0xE3, 0x88)
    assert u32(props[0xE0]) == NO_DATA and u32(props[0xE3]) == NO_DATA
    assert props[0x88] == b"\x41"  # fault
