# Wired Ethernet B-route module (network.LAN with an RMII PHY such as the LAN8720),
# ECHONET Lite over UDP 3610. The board passes the LAN object, or its constructor
# arguments (mdc, mdio, phy_type, phy_addr, ...) for it to be created lazily.

from meter.radio.ip import IpModule


def _hex(mac):
    return "".join("%02X" % b for b in mac)


class EthernetModule(IpModule):
    kind = "ethernet"

    def __init__(self, key=None, lan=None, lan_args=None, firmware="esp32-lan", **kw):
        IpModule.__init__(self, key=key, **kw)
        self._lan = lan
        self._lan_args = lan_args or {}
        self.firmware = firmware
        self._ident = None

    def _iface(self):
        if self._lan is None:
            import network

            self._lan = network.LAN(**self._lan_args)
        return self._lan

    def identity(self):
        if self._ident is None:
            self._ident = (self.kind, _hex(self._iface().config("mac")), self.firmware)
        return self._ident

    def open(self):
        self._iface().active(True)
        self._opened = True

    def close(self):
        self._drop_endpoint()
        self._opened = False
        if self._lan is not None:
            self._lan.active(False)

    def _nic_up(self):
        return self._lan is not None and self._lan.isconnected()

    def _nic_addr(self):
        return self._lan.ifconfig()[0]
