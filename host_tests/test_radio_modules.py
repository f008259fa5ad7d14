"""Pluggable B-route radio modules: registry with lazy imports, the Wi-Fi and Ethernet
modules against a fake `network`, the host UDP module, swapping with challenge-response
authentication, and no metering data lost across a swap."""

import datetime
import sys
import types

import pytest

from broute_udp import HostUdpModule
from demo_meter import DemoMeter
from echonet_frames import decode, request, u32
from meter import caltime
from meter.events import BROUTE_MODULE, EventLog
from meter.broute import pump as broute
from meter.broute.radio import auth, registry
from meter.broute.pump import ACTIVE, BRoute, EMPTY, REJECTED
from hosthal.radio import MemoryModule

MASTER = b"A-route master key for tests"
START = datetime.datetime(2026, 11, 28, 10, 0, 0)


class FakeNic:
    """Stand-in for network.WLAN / network.LAN."""

    def __init__(self, mac=b"\x24\x6f\x28\x01\x02\x03"):
        self.mac = mac
        self.is_active = False
        self.connected = False
        self.connects = []

    def config(self, name):
        assert name == "mac"
        return self.mac

    def active(self, on=None):
        if on is not None:
            self.is_active = on
        return self.is_active

    def connect(self, ssid, password):
        self.connects.append((ssid, password))

    def disconnect(self):
        self.connected = False

    def isconnected(self):
        return self.connected

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")


@pytest.fixture
def fake_network(monkeypatch):
    made = {}
    net = types.ModuleType("network")
    net.STA_IF = 0

    def wlan(iface):
        made["wlan"] = FakeNic()
        return made["wlan"]

    def lan(**kw):
        made["lan"] = FakeNic(b"\x24\x6f\x28\x0a\x0b\x0c")
        made["lan_args"] = kw
        return made["lan"]

    net.WLAN = wlan
    net.LAN = lan
    monkeypatch.setitem(sys.modules, "network", net)
    return made


def test_registry_imports_a_module_only_when_the_board_asks_for_it():
    for name in ("meter.broute.radio.wifi", "meter.broute.radio.ethernet",
                 "meter.broute.radio.wisun"):
        sys.modules.pop(name, None)
    assert "wifi" in registry.kinds() and "wisun" in registry.kinds()
    cls = registry.load("ethernet")
    assert cls.kind == "ethernet"
    assert "meter.broute.radio.ethernet" in sys.modules
    assert "meter.broute.radio.wifi" not in sys.modules
    assert "meter.broute.radio.wisun" not in sys.modules
    with pytest.raises(registry.UnknownModule) as e:
        registry.create("plc")
    assert e.value.args[0] == "E_RADIO_KIND plc"


def test_wifi_module_joins_the_access_point_and_opens_udp_3610_on_link(fake_network):
    net = sys.modules["network"]
    m = registry.create("wifi", "home-ap", "secret", lambda: net.WLAN(net.STA_IF),
                        host="127.0.0.3", port=0, group=None)
    assert "wlan" not in fake_network  # nothing made before it is used
    ident = m.identity()
    assert ident == ("wifi", "246F28010203", "esp32-wlan")
    m.open()
    w = fake_network["wlan"]
    assert w.is_active and w.connects == [("home-ap", "secret")]
    assert not m.link_up()
    assert m.recvfrom_into(bytearray(8)) == (0, None)
    w.connected = True
    assert m.link_up()
    assert m._ep is not None
    w.connected = False
    assert not m.link_up() and m._ep is None  # socket closed with the link
    m.close()
    assert not w.is_active


def test_ethernet_module_builds_network_lan_from_board_arguments(fake_network):
    net = sys.modules["network"]
    m = registry.create("ethernet", lambda: net.LAN(phy_type=1, phy_addr=0),
                        host="127.0.0.3", port=0, group=None)
    assert m.identity() == ("ethernet", "246F280A0B0C", "esp32-lan")
    assert fake_network["lan_args"] == {"phy_type": 1, "phy_addr": 0}
    m.open()
    assert not m.link_up()
    fake_network["lan"].connected = True
    assert m.link_up()
    m.close()


class Slot:
    """The board's module slot: what detect() reports."""

    def __init__(self):
        self.module = None

    def __call__(self):
        return self.module


class Counter:
    def __init__(self):
        self.n = 0

    def __call__(self, size):
        self.n += 1
        return self.n.to_bytes(size, "big")


def provisioned(module_id, master=MASTER, port=0, group=None):
    key = auth.module_key(master, "udp", module_id)
    return HostUdpModule(key=key, host="127.0.0.1", port=port, module_id=module_id,
                         group=group)


def rig():
    dm = DemoMeter(start=START)
    slot = Slot()
    log = EventLog()
    br = BRoute(dm.service, auth.ModuleAuth(MASTER), slot, Counter(), events=log)
    return dm, slot, log, br


def events(log):
    out = []
    for k in range(log.n - 1, -1, -1):
        e = log.get(k)
        if e[1] == BROUTE_MODULE:
            out.append(e[4])
    return out


def test_a_provisioned_module_is_authenticated_opened_and_announced():
    dm, slot, log, br = rig()
    m = provisioned("module-A")
    slot.module = m
    br.poll(dm.now(0))
    assert br.state == ACTIVE and br.link
    assert events(log) == [broute.EV_FITTED, broute.EV_AUTH_OK, broute.EV_LINK_UP]
    assert br.count[broute.ANNOUNCED] == 0  # no group on this module: nothing to send
    m.close()


def test_a_module_with_the_wrong_key_stays_unused_until_removed():
    dm, slot, log, br = rig()
    rogue = provisioned("module-B", master=b"some other utility")
    slot.module = rogue
    br.poll(dm.now(0))
    assert br.state == REJECTED and rogue._ep is None and not rogue._opened
    for t in range(5):
        assert br.poll(dm.now(t)) == 0
    assert br.count[broute.AUTH_FAIL] == 1
    slot.module = None
    br.poll(dm.now(10))
    assert br.state == EMPTY
    assert events(log) == [broute.EV_FITTED, broute.EV_AUTH_FAIL, broute.EV_REMOVED]


def test_a_module_that_cannot_answer_the_challenge_is_rejected():
    dm, slot, log, br = rig()
    slot.module = HostUdpModule(key=None, host="127.0.0.1", port=0, group=None)
    br.poll(dm.now(0))
    assert br.state == REJECTED


def test_the_answer_binds_the_challenge_and_the_identity():
    key = auth.module_key(MASTER, "udp", "m1")
    a = auth.ModuleAuth(MASTER)
    c = b"\x01" * 16
    good = auth.response(key, c, "udp", "m1", "fw1")
    assert a.verify(("udp", "m1", "fw1"), c, good)
    assert not a.verify(("udp", "m1", "fw1"), b"\x02" * 16, good)  # replayed answer
    assert not a.verify(("udp", "m2", "fw1"), c, good)  # other module
    assert not a.verify(("udp", "m1", "fw2"), c, good)
    assert not auth.ModuleAuth(None).verify(("udp", "m1", "fw1"), c, good)


class ChannelModule(MemoryModule):
    """An in-memory module (hosthal.radio) whose notifications go to the group: the test
    plays the HEMS on the other side (inbox in, outbox out)."""

    def __init__(self, module_id, master=MASTER):
        super().__init__(master, kind="udp", module_id=module_id, firmware="fw",
                         notify="group")

    @property
    def outbox(self):
        return self.sent
def read_hour(module, br, dm, now_minute):
    """A HEMS collects the last 60 one-minute values through EF/EE (six reads)."""
    got = {}
    for read in range(6):
        start = now_minute - 10 * read
        y, mo, d, h, mi = caltime.ymdhm(start)
        ef = y.to_bytes(2, "big") + bytes((mo, d, h, mi, 10))
        module.inbox.append(request(0x61, [(0xEF, ef)], tid=2 * read))
        module.inbox.append(request(0x62, [0xEE], tid=2 * read + 1))
        br.poll(dm.now(1000 * read))
        (set_res, _), (get_res, _) = module.outbox[-2:]
        assert decode(set_res)["esv"] == 0x71
        ee = decode(get_res)["props"][0][1]
        for k in range(10):
            got[start - k] = u32(ee[7 + 8 * k:11 + 8 * k])
    return got


def test_swap_detects_removal_and_the_new_module_and_loses_no_metering_data():
    dm, slot, log, br = rig()
    dm.advance(1800)
    old = ChannelModule("wisun-old")
    slot.module = old
    br.poll(dm.now(0))
    assert br.state == ACTIVE and old.outbox[-1][1] == "group"  # D5 announced
    assert decode(old.outbox[-1][0])["props"] == [(0xD5, b"\x01\x02\x88\x01")]
    # the module is pulled; metering goes on for 40 minutes with nothing fitted
    slot.module = None
    br.poll(dm.now(1))
    assert br.state == EMPTY and not old.opened
    dm.advance(40 * 60)
    # a new module is fitted: unused until authenticated
    new = ChannelModule("wifi-new")
    new.inbox.append(request(0x62, [0xE0]))
    slot.module = new
    dm.advance(30)
    br.poll(dm.now(2))
    assert br.state == ACTIVE and new.opened
    assert decode(new.outbox[0][0])["esv"] == 0x73  # announced when it came up
    assert decode(new.outbox[1][0])["props"][0][1] == dm.regs.count[0].to_bytes(4, "big")
    now_minute = dm.minute
    got = read_hour(new, br, dm, now_minute)
    ring = dm.capture.ring
    assert len(got) == 60
    for minute, fwd in got.items():
        s = ring.slot(minute)
        assert s >= 0 and fwd == ring.fwd[s], minute
    assert events(log) == [broute.EV_FITTED, broute.EV_AUTH_OK, broute.EV_LINK_UP,
                           broute.EV_REMOVED, broute.EV_FITTED, broute.EV_AUTH_OK,
                           broute.EV_LINK_UP]
    assert br.count[broute.FITTED] == 2 and br.count[broute.REMOVED] == 1


def test_a_different_module_object_in_the_slot_is_a_swap_even_without_a_gap():
    dm, slot, log, br = rig()
    slot.module = ChannelModule("a")
    br.poll(dm.now(0))
    slot.module = ChannelModule("b", master=b"wrong")
    br.poll(dm.now(1))
    assert br.state == REJECTED and br.count[broute.REMOVED] == 1


def test_io_errors_of_a_module_are_counted_not_raised():
    dm, slot, log, br = rig()

    class Broken(ChannelModule):
        def recvfrom_into(self, buf):
            raise OSError(5)

    slot.module = Broken("x")
    assert br.poll(dm.now(0)) == 0
    assert br.count[broute.IO_ERRORS] >= 1 and br.state == ACTIVE


def test_host_udp_module_serves_a_real_socket():
    import socket

    dm, slot, log, br = rig()
    dm.advance(120)
    m = provisioned("udp-1")
    slot.module = m
    br.poll(dm.now(0))
    port = m._ep.sock.getsockname()[1]
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(2)
    try:
        c.sendto(request(0x62, [0xE0, 0xD7]), ("127.0.0.1", port))
        for t in range(200):
            if br.poll(dm.now(t)):
                break
        data, _ = c.recvfrom(1500)
        r = decode(data)
        assert r["esv"] == 0x72 and r["props"][1] == (0xD7, b"\x08")
        c.sendto(bytes(600), ("127.0.0.1", port))  # oversize datagram: dropped, counted
        for t in range(200):
            if br.poll(dm.now(t)):
                break
        assert dm.service.errors[3] == 1
    finally:
        c.close()
        m.close()


def test_last_gasp_and_restoration_are_announced_to_the_hems():
    dm, slot, log, br = rig()
    m = ChannelModule("m")
    slot.module = m
    br.poll(dm.now(0))
    m.outbox.clear()
    assert br.notify_power(1)  # meter.outage.lastgasp MSG_LAST_GASP
    r = decode(m.outbox[-1][0])
    assert (r["seoj"], r["deoj"], r["esv"]) == (0x028801, 0x0EF001, 0x73)
    assert r["props"] == [(0x80, b"\x31")] and m.outbox[-1][1] == "group"
    m.inbox.append(request(0x62, [0x80]))
    br.poll(dm.now(1))
    assert decode(m.outbox[-1][0])["props"] == [(0x80, b"\x31")]  # Gets agree
    m.outbox.clear()
    assert br.notify_power(2)  # MSG_RESTORED: status back on, instance list again
    assert [decode(f)["props"][0] for f, _ in m.outbox] == [(0x80, b"\x30"),
                                                            (0xD5, b"\x01\x02\x88\x01")]


def test_power_notices_without_a_usable_module_only_update_the_status():
    dm, slot, log, br = rig()
    assert not br.notify_power(1)
    assert dm.meter.operating is False
    slot.module = ChannelModule("m", master=b"wrong")
    br.poll(dm.now(0))
    assert not br.notify_power(2) and dm.meter.operating
