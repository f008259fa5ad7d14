"""The host HAL stubs behave like the hardware they stand in for."""

import pytest

from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash, PowerCut
from hosthal.links import LoopUart, pair
from hosthal.pins import FakeRelay, ScriptedPowerGood


def test_nor_programming_only_clears_bits_and_erase_sets_ff():
    f = NorFlash(sectors=2)
    f.program(0, b"\x0f\xf0")
    f.program(0, b"\xf3\x3f")  # can only clear further
    buf = bytearray(2)
    f.read(0, buf)
    assert buf == b"\x03\x30"
    f.erase_sector(0)
    f.read(0, buf)
    assert buf == b"\xff\xff"
    assert (f.programs, f.erases, f.bytes_programmed) == (2, 1, 4)
    assert f.erase_counts == [1, 0]


def test_nor_program_may_not_cross_a_page_or_leave_the_device():
    f = NorFlash(sectors=1)
    with pytest.raises(ValueError):
        f.program(250, bytes(10))
    with pytest.raises(ValueError):
        f.program(4090, bytes(10))
    with pytest.raises(ValueError):
        f.erase_sector(1)
    f.program(256, bytes(256))  # a whole page is fine


def test_power_cut_after_n_bytes_keeps_only_the_bytes_before_it():
    f = NorFlash(sectors=1)
    f.cut_after(3)
    with pytest.raises(PowerCut):
        f.program(0, b"\x00" * 8)
    buf = bytearray(8)
    f.read(0, buf)
    assert buf == b"\x00\x00\x00" + b"\xff" * 5


def test_power_cut_during_an_erase_leaves_the_sector_partly_erased():
    f = NorFlash(sectors=1)
    f.program(0, b"\x00" * 256)
    f.program(4096 - 256, b"\x00" * 256)
    f.cut_after(0)
    with pytest.raises(PowerCut):
        f.erase_sector(0)
    head, tail = bytearray(1), bytearray(1)
    f.read(0, head)
    f.read(4095, tail)
    assert head == b"\xff" and tail == b"\x00"


def test_virtual_clock_is_invalid_until_set_and_jumps_only_the_wall_clock():
    c = VirtualClock()
    assert not c.wall_valid()
    c.set_wall(100, 30)
    c.advance(45_000)
    assert (c.wall_minute(), c.wall_second(), c.ticks_ms()) == (101, 15, 45_000)
    c.jump(-120)
    assert (c.wall_minute(), c.wall_second(), c.ticks_ms()) == (99, 15, 45_000)


def test_relay_feedback_follows_the_command_unless_stuck():
    r = FakeRelay(closed=True)
    r.command(False)
    assert not r.sensed()
    r.stuck = True
    r.command(True)
    assert r.commanded() and not r.sensed()


def test_power_good_calls_the_handler_on_edges_only():
    seen = []
    pg = ScriptedPowerGood(1)
    pg.irq(lambda p: seen.append(p.value()))
    pg.set(1)
    pg.set(0)
    pg.set(0)
    pg.set(1)
    assert seen == [0, 1]


def test_uart_and_datagram_links_carry_bytes_both_ways():
    u = LoopUart()
    u.feed(b"abc")
    buf = bytearray(2)
    assert u.readinto(buf) == 2 and buf == b"ab" and u.any() == 1
    u.write(b"xy")
    assert u.take() == b"xy"
    a, b = pair()
    a.sendto(b"hello", "b")
    buf = bytearray(16)
    n, addr = b.recvfrom_into(buf)
    assert (bytes(buf[:n]), addr) == (b"hello", "a")
    assert b.recvfrom_into(buf) == (0, None)


def test_a_failing_erase_leaves_stuck_bytes_and_a_failing_program_does_not_stick():
    f = NorFlash(sectors=2)
    f.fail_erase(1)
    f.erase_sector(1)
    buf = bytearray(4096)
    f.read(4096, buf)
    assert buf.count(0) == 4 and buf.count(0xFF) == 4092  # silent: only a read shows it
    f.erase_sector(0)
    f.read(0, buf)
    assert buf == b"\xff" * 4096
    f.fail_program(300, 302)
    f.program(256, bytes(256))
    page = bytearray(256)
    f.read(256, page)
    assert page == bytes(44) + b"\xff\xff" + bytes(210)


def test_the_endurance_model_wears_sectors_out_one_by_one_and_deterministically():
    f = NorFlash(sectors=16, endurance=10)
    limits = [f.limit(s) for s in range(16)]
    assert min(limits) >= 10 and max(limits) <= 15 and len(set(limits)) > 2
    assert limits == [NorFlash(sectors=16, endurance=10).limit(s) for s in range(16)]
    buf = bytearray(4096)
    modes = set()
    for s in range(16):
        for _ in range(limits[s]):
            f.erase_sector(s)
            f.read(s * 4096, buf)
            assert buf == b"\xff" * 4096  # fine up to its limit
        assert f.worn(s)
        f.erase_sector(s)
        f.program(s * 4096, b"\x00\x00")
        f.read(s * 4096, buf)
        erase_failed = buf.count(0xFF) < 4094
        program_failed = buf[0] == 0xFF
        assert erase_failed != program_failed  # a worn sector fails one way
        modes.add(erase_failed)
    assert modes == {True, False}
    assert NorFlash(sectors=1).limit(0) == 0 and not NorFlash(sectors=1).worn(0)
