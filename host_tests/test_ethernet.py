"""Ethernet through the PHYs each chip really has: network.LAN gets phy_type/phy_addr and the
EMAC's MDC/MDIO pins (ESP32 only) or an SPI PHY's bus, CS and INT (any chip, MicroPython
>= 1.24), from the board's LAN_ARGS; a board that cannot do it refuses RADIO = "ethernet" at
build_hal with a clear error. CPython with fakes of machine/esp32 (test_board_definitions)
and of network, whose LAN takes keyword arguments only, as ports/esp32/network_lan.c."""

import sys
import types

import pytest

from test_board_definitions import BOARDS, CHIPS, FakePin, esp, load, used_pins, variant  # noqa: F401

registry = pytest.importorskip("meter.broute.radio.registry")

EMAC_RMII_PINS = {0, 19, 21, 22, 25, 26, 27}  # REF_CLK, TXD0, TX_EN, TXD1, RXD0, RXD1, CRS_DV


class FakeSPI:
    def __init__(self, id, baudrate=1_000_000, *, sck=None, mosi=None, miso=None):
        self.id, self.baudrate, self.sck, self.mosi, self.miso = id, baudrate, sck, mosi, miso


class FakeLAN:
    made = []

    def __init__(self, id=None, *, phy_addr, phy_type, mdc=None, mdio=None, reset=None,
                 power=None, spi=None, cs=None, int=None, ref_clk_mode=None, ref_clk=None):
        self.phy_addr, self.phy_type, self.mdc, self.mdio = phy_addr, phy_type, mdc, mdio
        self.spi, self.cs, self.int, self.ref_clk_mode = spi, cs, int, ref_clk_mode
        FakeLAN.made.append(self)


@pytest.fixture
def net(esp, monkeypatch):  # noqa: F811
    network = types.ModuleType("network")
    network.LAN = FakeLAN
    for i, phy in enumerate(("LAN8720", "IP101", "RTL8201", "DP83848", "KSZ8041", "KSZ8081",
                             "W5500", "KSZ8851SNL", "DM9051")):
        setattr(network, "PHY_" + phy, i)
    monkeypatch.setitem(sys.modules, "network", network)
    monkeypatch.setattr(esp.machine, "SPI", FakeSPI, raising=False)
    FakeLAN.made = []
    return types.SimpleNamespace(esp=esp, network=network)


def lan_pins(args):
    pins = {k: args[k] for k in ("mdc", "mdio", "power", "reset", "cs", "int") if k in args}
    for k in ("sck", "mosi", "miso"):
        if args.get("spi"):
            pins["spi " + k] = args["spi"][k]
    return pins


OFFERED = [b for b in BOARDS if load(b).LAN_ARGS]


def test_the_esp32_and_the_s3_offer_ethernet_and_the_c3_does_not():
    assert OFFERED == ["esp32_devkitc", "esp32_s3_devkitc"]
    assert load("esp32_c3").LAN_ARGS is None


@pytest.mark.parametrize("name", OFFERED)
def test_lan_pins_are_free_valid_and_not_on_the_board_parts(name):
    c = load(name)
    chip = CHIPS[c.CHIP]
    pins = lan_pins(c.LAN_ARGS)
    assert len(set(pins.values())) == len(pins)
    assert not set(pins.values()) & set(used_pins(c).values())
    for what, pin in pins.items():
        assert pin in chip["gpio"] and pin not in chip["reserved"], (what, pin)
        assert pin not in chip["strapping"], (what, pin)
    outputs = [pins[k] for k in pins if k != "int" and k != "spi miso"]
    assert not set(outputs) & chip["input_only"]


@pytest.mark.parametrize("name", OFFERED)
def test_build_hal_makes_network_lan_with_the_board_phy(net, name):
    c = variant(name, RADIO="ethernet", METROLOGY="simulated")
    hal = net.esp.factory.build_hal(c)
    assert isinstance(hal.radio, registry.load("ethernet")), hal.problems
    hal.radio._iface()
    (lan,) = FakeLAN.made
    a = c.LAN_ARGS
    assert lan.phy_type == net.network.PHY_W5500 and lan.phy_addr == a["phy_addr"]
    assert (lan.cs.id, lan.int.id) == (a["cs"], a["int"])
    s = a["spi"]
    assert (lan.spi.id, lan.spi.baudrate, lan.spi.sck.id, lan.spi.mosi.id, lan.spi.miso.id) == (
        s["id"], s["baudrate"], s["sck"], s["mosi"], s["miso"])
    assert lan.mdc is None and lan.mdio is None


def test_the_esp32_emac_takes_mdc_mdio_and_the_reference_clock(net):
    args = {"phy_type": "LAN8720", "phy_addr": 1, "mdc": 23, "mdio": 18, "ref_clk_mode": "in"}
    c = variant("esp32_devkitc", RADIO="ethernet", METROLOGY="simulated", LAN_ARGS=args,
                PIN_RELAY=32, PIN_S0=33)
    assert not {c.PIN_RELAY, c.PIN_S0} & EMAC_RMII_PINS  # a wiring that leaves RMII free
    hal = net.esp.factory.build_hal(c)
    hal.radio._iface()
    (lan,) = FakeLAN.made
    assert (lan.phy_type, lan.phy_addr) == (net.network.PHY_LAN8720, 1)
    assert (lan.mdc.id, lan.mdio.id, lan.ref_clk_mode) == (23, 18, FakePin.IN)
    assert lan.spi is None


@pytest.mark.parametrize("name, over, code", [
    ("esp32_c3", {}, "E_LAN_NONE"),
    ("esp32_s3_devkitc", {"LAN_ARGS": {"phy_type": "LAN8720", "phy_addr": 1, "mdc": 23,
                                       "mdio": 18}}, "E_LAN_NO_EMAC"),
    ("esp32_devkitc", {"LAN_ARGS": {"phy_type": "LAN8720", "phy_addr": 1}}, "E_LAN_ARGS"),
    ("esp32_devkitc", {"LAN_ARGS": {"phy_type": "W5500", "phy_addr": 0}}, "E_LAN_ARGS"),
    ("esp32_devkitc", {"LAN_ARGS": {"phy_type": "ENC28J60", "phy_addr": 0}}, "E_LAN_PHY"),
])
def test_a_board_that_cannot_do_ethernet_refuses_it_at_build_hal(net, name, over, code):
    hal = net.esp.factory.build_hal(variant(name, RADIO="ethernet", METROLOGY="simulated",
                                            **over))
    assert hal.radio is None and FakeLAN.made == []
    assert any(code in p for p in hal.problems), hal.problems


def test_a_firmware_without_the_spi_phy_driver_is_refused(net):
    del net.network.PHY_W5500  # built without CONFIG_ETH_SPI_ETHERNET_W5500
    hal = net.esp.factory.build_hal(variant("esp32_s3_devkitc", RADIO="ethernet",
                                            METROLOGY="simulated"))
    assert hal.radio is None
    assert any("E_LAN_PHY" in p and "PHY_W5500" in p for p in hal.problems)
