# Common part of the IP radio modules (Wi-Fi, Ethernet, host UDP): the UDP endpoint is
# opened when the network interface reports a link and closed when it goes away.

from meter.broute.radio import auth
from meter.errors import ENOTCONN
from meter.broute.radio.module import RadioModule
from meter.broute.radio.udp import GROUP, PORT


def mac_hex(mac):
    """A MAC address as 12 upper-case hex digits (the module id)."""
    return "".join("%02X" % b for b in mac)


class IpModule(RadioModule):
    def __init__(self, key=None, host="0.0.0.0", port=PORT, group=GROUP):
        self.key = key  # provisioned module key (radio.auth.module_key)
        self.host = host
        self.port = port
        self.group_name = group
        self.group = None
        self._ep = None
        self._opened = False

    # subclasses: the network interface
    def _nic_up(self):
        raise NotImplementedError

    def _nic_addr(self):
        return "0.0.0.0"

    def _endpoint(self):
        from meter.broute.radio.udp import UdpEndpoint

        return UdpEndpoint(self.host, self.port, self.group_name, self._nic_addr())

    def link_up(self):
        if not self._opened or not self._nic_up():
            self._drop_endpoint()
            return False
        if self._ep is None:
            self._ep = self._endpoint()
            self.group = self._ep.group_addr
        return True

    def _drop_endpoint(self):
        if self._ep is not None:
            self._ep.close()
            self._ep = None

    def recvfrom_into(self, buf):
        if self._ep is None:
            return 0, None
        return self._ep.recvfrom_into(buf)

    def sendto(self, buf, addr):
        if self._ep is None:
            raise OSError(ENOTCONN)
        return self._ep.sendto(buf, addr)

    def respond(self, challenge):
        if self.key is None:
            return None
        kind, module_id, firmware = self.identity()
        return auth.response(self.key, challenge, kind, module_id, firmware)
