# The host "board": the set of HAL objects a Meter is built from in tests and the simulation.


class HostHal:
    def __init__(self, clock, metrology, power_good=None, uplink=None, radio=None,
                 relay=None, flash=None):
        self.clock = clock
        self.metrology = metrology
        self.power_good = power_good
        self.uplink = uplink
        self.radio = radio
        self.relay = relay
        self.flash = flash
        self.sleeps = 0

    def sleep(self):
        self.sleeps += 1
