# Wi-Fi B-route module: the ESP32's WLAN in station mode, ECHONET Lite over UDP 3610
# (unicast and multicast 224.0.23.0). `network` is imported only when the board creates
# the interface; pass `wlan` to use an interface the board already made.

from meter.radio.ip import IpModule


def _hex(mac):
    return "".join("%02X" % b for b in mac)


class WifiModule(IpModule):
    kind = "wifi"

    def __init__(self, ssid, password, key=None, wlan=None, firmware="esp32-wlan", **kw):
        IpModule.__init__(self, key=key, **kw)
        self.ssid = ssid
        self.password = password
        self._wlan = wlan
        self.firmware = firmware
        self._ident = None

    def _iface(self):
        if self._wlan is None:
            import network

            self._wlan = network.WLAN(network.STA_IF)
        return self._wlan

    def identity(self):
        if self._ident is None:
            self._ident = (self.kind, _hex(self._iface().config("mac")), self.firmware)
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
