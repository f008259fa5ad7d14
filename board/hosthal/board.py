# The host "board": the meter.hal.Board a Meter is built from in tests, tools and the simulation.

import os

from meter.hal import Board


class HostHal(Board):
    """Host parts by keyword (every part not given stays None, as on a board without it).
    sleep() only counts: the host shell does not block while mains is off."""

    def __init__(self, clock, metrology, power_good=None, uplink=None, radio=None,
                 relay=None, flash=None, broute_key=None, meter_id=None, key=None,
                 retained=None, link=None, console=None):
        super().__init__(clock, metrology)
        self.power_good = power_good
        self.uplink = uplink
        self.link = link  # hosthal.tcplink.TcpLink (A-route MQTT) or None
        self.console = console  # meter.hal.BenchConsole (the bench console's port) or None
        self.provisioned = None  # (meter_id, key) the console's provision command stored
        self.radio = radio
        self.relay = relay
        self.flash = flash
        self.broute_key = broute_key
        self.meter_id = meter_id
        self.key = key
        self.retained = retained  # hosthal.retained.RamRetained / FileRetained or None
        self.random = os.urandom
        self.sleeps = 0

    def sleep(self):
        self.sleeps += 1

    def provision(self, meter_id, key):
        """Kept in memory for the next boot of this host meter (tests, the simulation)."""
        self.provisioned = (bytes(meter_id), bytes(key))
        return True
