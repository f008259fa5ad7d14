"""The composition wires the store's standing findings into the ECHONET meter object: 0x88
reports a fault while a tamper finding stands, and the cumulative registers are "no data"
(with a fault) while the store says the register records are lost."""

from echonet_frames import decode, request
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from hosthal.loads import ConstantLoad
from meter.assembly import build_meter
from rigs import DAY0_S, KEY, Config


class Slot:
    """A radio slot with nothing fitted yet: enough for the meter to carry an ECHONET stack."""

    def present(self):
        return False


def meter():
    clock = VirtualClock(wall_s=DAY0_S + 8 * 3600)
    hal = HostHal(clock, ConstantLoad(1000), flash=NorFlash(), radio=Slot())
    m = build_meter(hal, Config(), key=KEY)
    m.boot()
    for _ in range(120):
        m.step()
        clock.advance(1000)
    return m


def get(m, *epcs):
    svc = m.echonet
    req = request(0x62, list(epcs))
    svc.rx[:len(req)] = req
    n = svc.handle(svc.rx, len(req), m.now.read(m.clock))
    return dict(decode(bytes(svc.tx.buf[:n]))["props"])


def test_a_standing_tamper_finding_sets_the_fault_status():
    m = meter()
    assert get(m, 0x88)[0x88] == b"\x42"
    m.store._tamper_pending = True  # what a tamper finding leaves until acknowledged
    assert m.store.tamper_pending()
    assert get(m, 0x88)[0x88] == b"\x41"


def test_lost_register_records_serve_no_data_and_a_fault():
    m = meter()
    assert get(m, 0xE0)[0xE0] != b"\xff\xff\xff\xfe"
    m.store.registers_valid = False  # what restore() leaves after rebuilding lost registers
    v = get(m, 0xE0, 0xE3, 0x88)
    assert v[0xE0] == v[0xE3] == b"\xff\xff\xff\xfe" and v[0x88] == b"\x41"
