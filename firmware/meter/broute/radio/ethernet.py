# Wired Ethernet B-route module (network.LAN with an RMII PHY such as the LAN8720),
# ECHONET Lite over UDP 3610. The board passes iface, a callable that makes the network.LAN
# interface with its PHY arguments (board/esp32hal/nic.py), called at first use.

from meter.broute.radio.ip import IpModule, mac_hex


class EthernetModule(IpModule):
    kind = "ethernet"

    def __init__(self, iface, key=None, firmware="esp32-lan", **kw):
        IpModule.__init__(self, key=key, **kw)
        self._make = iface
        self._lan = None
        self.firmware = firmware
        self._ident = None

    def _iface(self):
        if self._lan is None:
            self._lan = self._make()
        return self._lan

    def identity(self):
        if self._ident is None:
            self._ident = (self.kind, mac_hex(self._iface().config("mac")), self.firmware)
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
