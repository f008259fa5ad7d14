"""A small self-contained simulated meter (core registers, capture, metering, ECHONET
service) for the B-route tools and interop tests: a steady household load on a virtual
wall clock. tools/sim.py has the full simulation; this one exists so the Wi-SUN emulator
and the UDP server can run on their own."""

import datetime

from meter import caltime
from meter.broute.echonet import service
from meter.broute.echonet.node import Identity
from meter.metering.intervals import IntervalCapture
from meter.metering.samples import Metering, Sample
from meter.metering.registers import EnergyRegisters


def wall_minute(dt):
    """Wall minute (since 2000-01-01 local) of a naive datetime."""
    return caltime.to_minute(dt.year, dt.month, dt.day, dt.hour, dt.minute)


class DemoMeter:
    """Core objects plus a Service. advance(seconds) feeds one-second samples of
    power_w (and export_w) with current current_ma on the virtual clock."""

    def __init__(self, start=None, unit=0x02, coefficient=1, power_w=1234, export_w=0,
                 current_ma=12_300, current_t_ma=-1, identity=None):
        self.regs = EnergyRegisters(unit=unit, coefficient=coefficient)
        self.capture = IntervalCapture(self.regs)
        self.metering = Metering(self.regs, self.capture)
        self.identity = identity or Identity(serial=b"DEMO00000001")
        self.service = service.build(self.regs, self.metering, self.capture, self.identity)
        self.meter = self.service.objects[0]
        self.node = self.service.node
        if start is None:
            start = datetime.datetime.now().replace(second=0, microsecond=0)
        self.minute = wall_minute(start)
        self.second = start.second
        self.valid = True
        self.power_w = power_w
        self.export_w = export_w
        self.current_ma = current_ma
        self.current_t_ma = current_t_ma
        self._sample = Sample()

    def advance(self, seconds):
        s = self._sample
        for _ in range(seconds):
            s.clear()
            s.dt_ms = 1000
            s.e_fwd = self.power_w
            s.e_rev = self.export_w
            s.p_w = self.power_w - self.export_w
            s.i_ma = self.current_ma
            s.i2_ma = self.current_t_ma
            s.v_dv = 1010
            self.second += 1
            if self.second == 60:
                self.second = 0
                self.minute += 1
            self.metering.tick(s, self.minute, self.second, self.valid)

    def now(self):
        return self.minute, self.second, self.valid

    def handle(self, data, now_ms=0):
        """Reply bytes to one request (b"" for none): convenience for tools and tests."""
        n = len(data)
        if n > len(self.service.rx):
            n = len(self.service.rx)
        self.service.rx[:n] = data[:n]
        r = self.service.handle(self.service.rx, len(data), self.minute, self.second,
                                self.valid, now_ms)
        return bytes(self.service.tx.buf[:r])
