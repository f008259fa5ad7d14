"""A small simulated meter for the B-route tools and interop tests: the product's own
composition (meter.assembly.build_meter) on a virtual clock with a steady household load, a
journal in RAM and a public demo key; its radio slot is empty unless a module is given.
tools/sim.py has the full simulation; this one lets the Wi-SUN emulator, the UDP server and
the ECHONET tests run a meter on their own."""

import datetime

import hostpaths  # noqa: F401  (firmware, host HAL and the CPython shim on sys.path)
from hosthal.board import HostHal
from hosthal.clock import VirtualClock
from hosthal.flash import NorFlash
from meter import caltime
from meter.assembly import build_meter
from meter.clock import Now
from meter.hal import MetrologySource

EPOCH_2000 = datetime.datetime(2000, 1, 1)
DEMO_KEY = b"demo-meter-key-not-a-secret-0123"  # public: a demo seals nothing for real


def wall_minute(dt):
    """Wall minute (since 2000-01-01 local) of a naive datetime."""
    return caltime.to_minute(dt.year, dt.month, dt.day, dt.hour, dt.minute)


class SteadyLoad(MetrologySource):
    """One sample per second: power_w imported, export_w exported, the given currents."""

    def __init__(self, power_w, export_w, current_ma, current_t_ma):
        self.power_w = power_w
        self.export_w = export_w
        self.current_ma = current_ma
        self.current_t_ma = current_t_ma

    def poll(self, s, now_ms):
        s.clear()
        s.dt_ms = 1000
        s.e_fwd = self.power_w
        s.e_rev = self.export_w
        s.p_w = self.power_w - self.export_w
        s.i_ma = self.current_ma
        s.i2_ma = self.current_t_ma
        s.v_dv = 1010
        return True


class NoModule:
    """An empty radio module slot: the meter builds its B-route, nothing is fitted (the
    tools feed the ECHONET service directly)."""

    def present(self):
        return False


class DemoConfig:
    METER_ID = b"DEMO0000"
    BROUTE_SERIAL = b"DEMO00000001"

    def __init__(self, unit, coefficient):
        self.UNIT = unit
        self.COEFFICIENT = coefficient


class DemoMeter:
    """A meter built by the composition root. advance(seconds) runs that many metering
    seconds; handle(data) answers one ECHONET Lite request; now(ms) is the clock as a Now."""

    def __init__(self, start=None, unit=0x02, coefficient=1, power_w=1234, export_w=0,
                 current_ma=12_300, current_t_ma=-1, radio=None, broute_key=None):
        if start is None:
            start = datetime.datetime.now().replace(second=0, microsecond=0)
        self.clock = VirtualClock(wall_s=int((start - EPOCH_2000).total_seconds()))
        self.load = SteadyLoad(power_w, export_w, current_ma, current_t_ma)
        # a journal in RAM and a demo key: a durable meter (a RAM-only one reports a fault)
        hal = HostHal(self.clock, self.load, radio=radio or NoModule(), broute_key=broute_key,
                      flash=NorFlash(64), key=DEMO_KEY)
        self.m = build_meter(hal, DemoConfig(unit, coefficient))
        self.m.boot()
        self.regs = self.m.regs
        self.capture = self.m.capture
        self.metering = self.m.metering
        self.service = self.m.echonet
        self.meter = self.service.objects[0]
        self.node = self.service.node
        self.identity = self.node.identity
        self._now = Now()

    @property
    def minute(self):
        return self.clock.wall_minute()

    @property
    def second(self):
        return self.clock.wall_second()

    @property
    def valid(self):
        return self.clock.wall_valid()

    @valid.setter
    def valid(self, on):
        """False: the wall clock is lost (as after a power-on without a time source)."""
        if on:
            self.clock.set_wall(self.clock.wall_minute(), self.clock.wall_second())
        else:
            self.clock.invalidate()

    def advance(self, seconds):
        for _ in range(seconds):
            self.clock.advance(1000)
            self.m.step()

    def now(self, ms=None):
        """The clock as a meter.clock.Now; ms overrides the monotonic part (tools that
        keep their own)."""
        n = self._now.read(self.clock)
        if ms is not None:
            n.ms = ms
        return n

    def handle(self, data, now_ms=0):
        """Reply bytes to one request (b"" for none): convenience for tools and tests."""
        n = len(data)
        if n > len(self.service.rx):
            n = len(self.service.rx)
        self.service.rx[:n] = data[:n]
        r = self.service.handle(self.service.rx, len(data), self.now(now_ms))
        return bytes(self.service.tx.buf[:r])
