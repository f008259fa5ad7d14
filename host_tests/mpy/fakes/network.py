# Fake `network` for the MicroPython unix port: WLAN and LAN as the ESP32 port shapes them,
# enough for the board layer to construct and query them (no traffic: the B-route radios use
# sockets, which the unix port has for real).

import espchip

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
PHY_LAN8720 = 0
PHY_IP101 = 1
PHY_RTL8201 = 2
PHY_DP83848 = 3
PHY_KSZ8041 = 4
aps = {}  # ssid -> password of the access points in range (the world)


class WLAN:
    def __init__(self, interface=STA_IF):
        self._if = interface
        self._active = False
        self._status = STAT_IDLE

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        if not on:
            self._status = STAT_IDLE

    def connect(self, ssid=None, key=None, **kw):
        if not self._active:
            raise OSError("Wifi Not Started")
        if ssid not in aps:
            self._status = STAT_NO_AP_FOUND
        elif aps[ssid] != key:
            self._status = STAT_WRONG_PASSWORD
        else:
            self._status = STAT_GOT_IP

    def disconnect(self):
        self._status = STAT_IDLE

    def isconnected(self):
        return self._status == STAT_GOT_IP

    def status(self, param=None):
        if param == "rssi":
            return -60
        return self._status

    def ifconfig(self, cfg=None):
        if self.isconnected():
            return ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kw):
        if args == ("mac",):
            return b"\x24\x6f\x28\xa1\xb2\xc4"
        return None


class LAN:
    """network.LAN(id=0, *, mdc, mdio, power=None, phy_addr, phy_type): an internal EMAC
    only on the original ESP32 (the C3 and S3 have none; they need an SPI PHY)."""

    def __init__(self, id=0, *, mdc=None, mdio=None, power=None, phy_addr=None,
                 phy_type=None, **kw):
        if espchip.chip != "esp32" and "spi" not in kw:
            raise ValueError("no internal EMAC on " + espchip.chip)
        if phy_type is None or phy_addr is None:
            raise TypeError("phy_type and phy_addr are required")
        if "spi" not in kw and (mdc is None or mdio is None):
            raise TypeError("mdc and mdio are required")
        self._active = False

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)

    def isconnected(self):
        return False

    def status(self):
        return 0

    def ifconfig(self, cfg=None):
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
