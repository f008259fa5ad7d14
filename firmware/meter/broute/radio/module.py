# The radio-module contract: what the B-route needs from Wi-Fi, Ethernet, Wi-SUN or host UDP.
#
# A module is a datagram endpoint (hal.Datagram: sendto / recvfrom_into) with an identity,
# a life cycle (open / close), a link status, and presence (a removable module reports
# present() False once it was pulled). poll(now_ms) gives a module that talks to its
# hardware over a byte stream (Wi-SUN over UART) time to run its sans-IO driver.
# respond(challenge) proves the module holds the key provisioned for it (see auth.py).
# Addresses are opaque to the B-route: whatever recvfrom_into returned is what sendto
# takes back. `group` is the address notifications go to (multicast), or None. `mtu` is
# the largest datagram (bytes) sendto() carries: the B-route builds no reply larger.

from meter.hal import Datagram

# link states
DOWN = 0
UP = 1


class RadioModule(Datagram):
    kind = "none"  # "wifi", "ethernet", "wisun", "udp"
    group = None
    mtu = 1232  # bytes: an IPv6 minimum-MTU datagram (1280 - 40 - 8), unfragmented on IPv4

    def identity(self):
        """(kind, module id, firmware version) as strings."""
        raise NotImplementedError

    def open(self):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    def present(self):
        return True

    def notify_addr(self):
        """Where notifications (INF) go: the multicast group, or the one peer of a
        point-to-point link; None when there is nowhere to send them."""
        return self.group

    def reset(self):
        """Forget what is known about the hardware (called when a module is fitted: the
        same driver object may now face a different physical module)."""
        return None

    def link_up(self):
        raise NotImplementedError

    def poll(self, now_ms):
        return None

    def respond(self, challenge):
        """HMAC-SHA256 of the challenge under this module's provisioned key."""
        raise NotImplementedError
