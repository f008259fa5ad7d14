# Wi-Fi B-route module: the ESP32's WLAN in station mode, ECHONET Lite over UDP 3610
# (unicast and multicast 224.0.23.0). The board passes iface, a callable that makes the
# network.WLAN interface (board/esp32hal/nic.py); it is called at first use, so nothing is
# created before the module is, and this file never touches `network` itself.

from meter.broute.radio.ip import IpModule, mac_hex


class WifiModule(IpModule):
    kind = "wifi"

    def __init__(self, ssid, password, iface, key=None, firmware="esp32-wlan", **kw):
        IpModule.__init__(self, key=key, **kw)
        self.ssid = ssid
        self.password = password
        self._make = iface
        self._wlan = None
        self.firmware = firmware
        self._ident = None

    def _iface(self):
        if self._wlan is None:
            self._wlan = self._make()
        return self._wlan

    def identity(self):
        if self._ident is None:
            self._ident = (self.kind, mac_hex(self._iface().config("mac")), self.firmware)
        return self._ident

    def open(self):
        w = self._iface()
        w.active(True)
        if not w.isconnected():
            w.connect(self.ssid, self.password)
        self._opened = True

    def close(self):
        self._drop_endpoint()
        self._opened = False
        if self._wlan is not None:
            self._wlan.disconnect()
            self._wlan.active(False)

    def _nic_up(self):
        return self._wlan is not None and self._wlan.isconnected()

    def _nic_addr(self):
        return self._wlan.ifconfig()[0]
