"""SKSTACK IP: the sans-IO line parser fed whole and byte by byte, and the meter-side
Wi-SUN module driver (meter.broute.radio.wisun) against the emulated coordinator module of
tools/wisun_emulator.py over an in-memory UART."""

from hypothesis import given, strategies as st

from echonet_frames import decode, request
from meter.broute.radio import auth
from meter.broute.radio import skstack as sk
from meter.broute.radio.wisun import S_IDLE, S_LISTEN, S_UP, WisunModule
from hosthal.links import LoopUart
from wisun_emulator import SkCoordinator, link_local

HEMS = link_local("001D129087654321")
RBID = "00112233445566778899AABBCCDDEEFF"
PWD = "0123456789AB"


def lines(data, chunk):
    p = sk.SkParser()
    out = []
    i = 0
    while i < len(data):
        i += p.feed(data, i, min(len(data), i + chunk))
        if p.kind != sk.NONE:
            rec = [p.kind]
            if p.kind == sk.EVENT:
                rec += [p.event, p.param, p.field(2)]
            elif p.kind == sk.ERXUDP:
                buf = bytearray(600)
                n = p.payload_into(buf)
                rec += [p.sport, p.dport, bytes(buf[:n])]
            elif p.kind == sk.FAIL:
                rec.append(p.code)
            out.append(tuple(rec))
    return out, p


def test_parser_reads_ok_fail_event_and_erxudp():
    coord = SkCoordinator()
    data = (b"OK\r\nFAIL ER10\r\n" + coord.hems_join(HEMS)
            + b"EVENT 21 %s 0 00\r\n" % HEMS.encode()
            + coord.hems_send(HEMS, b"\x10\x81\x00\x01")
            + b"EVER 1.5.2\r\nSKSENDTO echo\r\n")
    got, _ = lines(data, len(data))
    assert got == [(sk.OK,), (sk.FAIL, 10), (sk.EVENT, 0x25, -1, HEMS.encode()),
                   (sk.EVENT, 0x21, 0, HEMS.encode()),
                   (sk.ERXUDP, 0x0E1A, 0x0E1A, b"\x10\x81\x00\x01"), (sk.EVER,),
                   (sk.OTHER,)]


@given(st.binary(max_size=80), st.integers(1, 9))
def test_parser_gives_the_same_lines_whole_and_in_pieces(payload, chunk):
    coord = SkCoordinator()
    data = b"OK 01\r\n" + coord.hems_send(HEMS, payload) + b"EVENT 27 %s 0\r\n" % HEMS.encode()
    assert lines(data, len(data))[0] == lines(data, 1)[0] == lines(data, chunk)[0]


def test_parser_drops_malformed_and_overlong_lines():
    bad = (b"ERXUDP A B 0E1A 0E1A MAC E1 1 0 0004 10\r\n"  # length says 4, data has 1
           b"EVENT zz\r\n" + b"X" * 1300 + b"\r\nOK\r\n")
    got, p = lines(bad, 7)
    assert got[-1] == (sk.OK,) and sk.ERXUDP not in [g[0] for g in got]
    assert p.bad == 2 and p.overflows == 1


def test_sendto_header_is_the_bp35c2_layout():
    assert (sk.sendto_header(HEMS.encode(), 14)
            == b"SKSENDTO 1 " + HEMS.encode() + b" 0E1A 2 0 000E ")


class Rig:
    def __init__(self, coord=None, **kw):
        self.uart = LoopUart()
        self.coord = coord or SkCoordinator()
        self.m = WisunModule(self.uart, RBID, PWD, **kw)
        self.t = 0

    def step(self, n=1):
        for _ in range(n):
            self.m.poll(self.t)
            out = self.uart.take()
            if out:
                self.uart.feed(self.coord.feed(out))
            self.t += 10


def test_driver_identifies_the_module_then_starts_the_pan_when_opened():
    r = Rig()
    r.step(10)
    assert r.m.state == S_IDLE
    assert r.m.identity() == ("wisun", "001D129012345678", "1.5.2")
    assert r.coord.log == ["SKRESET", "SKINFO", "SKVER", "ROPT"]
    r.m.open()
    r.step(10)
    assert r.m.state == S_LISTEN and not r.m.link_up()
    assert r.coord.log[4:] == ["SKSREG", "SKSREG", "SKSETRBID", "SKSETPWD", "SKSTART"]
    assert (r.coord.rbid, r.coord.password) == (RBID, PWD)
    assert r.coord.reg == {"S2": "21", "S3": "8888"}


def test_driver_switches_a_binary_mode_module_to_hex_payloads():
    r = Rig(SkCoordinator(ropt=0))
    r.step(12)
    assert r.coord.log == ["SKRESET", "SKINFO", "SKVER", "ROPT", "WOPT"]
    assert r.m.state == S_IDLE and r.coord.ropt == 1


def up(r):
    r.step(8)
    r.m.open()
    r.step(8)
    r.uart.feed(r.coord.hems_join(HEMS))
    r.step()
    assert r.m.link_up() and r.m.peer == HEMS.encode()


def test_frames_from_the_joined_hems_come_in_and_replies_go_out_by_sksendto():
    r = Rig()
    up(r)
    frame = request(0x62, [0xE0])
    r.uart.feed(r.coord.hems_send(HEMS, frame))
    r.step()
    buf = bytearray(600)
    n, addr = r.m.recvfrom_into(buf)
    assert bytes(buf[:n]) == frame and addr == HEMS.encode()
    assert r.m.recvfrom_into(buf) == (0, None)
    reply = bytes.fromhex("1081000102880105ff017201e00400000001")
    r.m.sendto(reply, addr)
    r.step(2)
    assert r.coord.sent == [(HEMS, reply)]
    assert r.m._txlen == 0  # OK came back: the slot is free


def test_a_session_end_takes_the_link_down_and_traffic_for_other_ports_is_dropped():
    r = Rig()
    up(r)
    r.uart.feed(r.coord.hems_send(HEMS, b"\x10\x81", dport=0x0E1B))
    r.step()
    assert r.m.recvfrom_into(bytearray(8)) == (0, None) and r.m.rx_dropped == 1
    r.uart.feed(r.coord.hems_leave(HEMS))
    r.step()
    assert r.m.state == S_LISTEN and not r.m.link_up()


def test_a_failing_or_silent_module_is_set_up_again_from_reset():
    r = Rig(timeout_ms=100)
    r.coord.fail_next = "SKVER"
    r.step(12)
    assert r.m.fails == 1 and r.m.state == S_IDLE
    assert r.coord.log.count("SKRESET") == 2
    r.m.open()
    r.coord.silent = True
    r.step(30)
    assert r.m.timeouts >= 1 and r.m.state != S_UP
    r.coord.silent = False
    r.step(30)
    assert r.m.state == S_LISTEN  # came back and restarted the PAN it had before


def test_the_wisun_module_answers_the_challenge_with_its_provisioned_key():
    master = b"master"
    r = Rig(key=auth.module_key(master, "wisun", "001D129012345678"))
    assert r.m.respond(b"\x00" * 16) is None  # not identified yet
    r.step(8)
    c = b"\x07" * 16
    assert auth.ModuleAuth(master).verify(r.m.identity(), c, r.m.respond(c))


def test_full_path_hems_frame_through_the_wisun_module_and_the_broute(monkeypatch):
    import datetime

    from demo_meter import DemoMeter
    from meter.broute.pump import ACTIVE, BRoute

    master = b"master"
    dm = DemoMeter(start=datetime.datetime(2026, 11, 28, 10, 0))
    dm.advance(300)
    r = Rig(key=auth.module_key(master, "wisun", "001D129012345678"))
    br = BRoute(dm.service, auth.ModuleAuth(master), lambda: r.m, lambda n: bytes(n))

    def step(k=1):
        for _ in range(k):
            br.poll(dm.now(r.t))
            out = r.uart.take()
            if out:
                r.uart.feed(r.coord.feed(out))
            r.t += 10

    step(20)
    assert br.state == ACTIVE and r.m.state == S_LISTEN
    r.uart.feed(r.coord.hems_join(HEMS))
    step(2)
    r.uart.feed(r.coord.hems_send(HEMS, request(0x62, [0xE0, 0xE1])))
    step(4)
    dest, reply = r.coord.sent[-1]
    assert dest == HEMS
    props = decode(reply)["props"]
    assert props == [(0xE0, dm.regs.count[0].to_bytes(4, "big")), (0xE1, b"\x02")]


def test_a_different_dongle_in_the_uart_slot_is_identified_afresh_and_must_authenticate():
    import datetime

    from demo_meter import DemoMeter
    from meter.broute.pump import ACTIVE, EMPTY, REJECTED, BRoute

    master = b"master"
    fitted = [True]
    r = Rig(key=auth.module_key(master, "wisun", "001D129012345678"),
            present=lambda: fitted[0])
    dm = DemoMeter(start=datetime.datetime(2026, 11, 28, 10, 0))
    br = BRoute(dm.service, auth.ModuleAuth(master),
                lambda: r.m if r.m.present() else None, lambda n: bytes(n))

    def step(k):
        for _ in range(k):
            br.poll(dm.now(r.t))
            out = r.uart.take()
            if out:
                r.uart.feed(r.coord.feed(out))
            r.t += 10

    step(20)
    assert br.state == ACTIVE and r.m.identity()[1] == "001D129012345678"
    fitted[0] = False
    step(1)
    assert br.state == EMPTY
    r.coord = SkCoordinator(mac="001D1290AAAAAAAA")  # another dongle, not provisioned
    fitted[0] = True
    step(20)
    assert r.m.identity()[1] == "001D1290AAAAAAAA"
    assert br.state == REJECTED and r.m.state != S_UP


def test_an_oversized_get_over_wisun_is_answered_within_one_sksendto_listing_every_property():
    import datetime

    from demo_meter import DemoMeter
    from meter.broute.pump import ACTIVE, BRoute, IO_ERRORS

    master = b"master"
    dm = DemoMeter(start=datetime.datetime(2026, 11, 28, 10, 0))
    dm.advance(300)
    r = Rig(key=auth.module_key(master, "wisun", "001D129012345678"))
    br = BRoute(dm.service, auth.ModuleAuth(master), lambda: r.m, lambda n: bytes(n))

    def step(k=1):
        for _ in range(k):
            br.poll(dm.now(r.t))
            out = r.uart.take()
            if out:
                r.uart.feed(r.coord.feed(out))
            r.t += 10

    step(20)
    assert br.state == ACTIVE
    r.uart.feed(r.coord.hems_join(HEMS))
    step(2)
    epcs = [0xE2, 0xE4, 0xEA, 0xEB, 0xEC, 0xEE, 0xE0, 0xE3]  # ~630 bytes of values
    r.uart.feed(r.coord.hems_send(HEMS, request(0x62, epcs)))
    step(4)
    assert br.count[IO_ERRORS] == 0
    dest, reply = r.coord.sent[-1]
    got = decode(reply)
    assert dest == HEMS and len(reply) <= 513
    assert got["esv"] == 0x52 and [e for e, _ in got["props"]] == epcs
