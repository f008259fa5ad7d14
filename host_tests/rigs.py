# Test rigs: a whole meter on the host (virtual clock, scripted supply, fake uplink).

from meter.assembly import build_meter
from meter.mac import Hmac
from hosthal.board import HostHal
from meter.outage.lastgasp import SLEEP
from hosthal.clock import VirtualClock
from hosthal.loads import ConstantLoad
from hosthal.pins import ScriptedPowerGood
from hosthal.uplink import FakeUplink

DAY0_S = 9_000 * 86_400  # a midnight, in seconds since 2000-01-01
KEY = b"test-meter-key-0123456789abcdef!"


class Config:
    METER_ID = b"TEST0001"
    UNIT = 0x04  # 0.1 Wh counts: fine resolution for exact checks
    HOLDUP_BUDGET_MS = 4000

    def __init__(self, **lastgasp):
        self.LASTGASP = dict(debounce_ms=20, restore_ms=200, repeats=2, repeat_ms=500)
        self.LASTGASP.update(lastgasp)


class MeterRig:
    def __init__(self, start_s=DAY0_S + 8 * 3600, watts=1000, uplink_up=True, flash=None,
                 ticks_start=0, relay=None, pg_level=1, **lastgasp):
        self.clock = VirtualClock(wall_s=start_s, ticks_start=ticks_start)
        self.load = ConstantLoad(watts)
        self.load.mains = bool(pg_level)
        self.pg = ScriptedPowerGood(pg_level)
        self.uplink = FakeUplink(uplink_up)
        self.hal = HostHal(self.clock, self.load, power_good=self.pg, uplink=self.uplink,
                           flash=flash, relay=relay)
        self.mac = Hmac(KEY)
        self.config = Config(**lastgasp)
        self.meter = build_meter(self.hal, self.config, key=KEY)
        self.meter.boot()
        self._t0 = self.clock.ticks_ms()

    def seconds(self, n):
        """n metering seconds at the 1 s cadence (slow power polling only)."""
        for _ in range(n):
            self.meter.step()
            self.meter.idle()
            self.clock.advance(1000)

    def ms(self, n, step=5):
        """n ms of the fast power path (the board's power task), metering every 1000 ms."""
        for _ in range(0, n, step):
            if self.meter.power_poll() == SLEEP:
                self.hal.sleep()  # the board's shell light-sleeps here; the host counts
            self.clock.advance(step)
            if (self.clock.ticks_ms() - self._t0) % 1000 == 0:
                self.meter.step()
                self.meter.idle()

    def mains(self, on):
        self.pg.set(1 if on else 0)
        self.load.mains = on

    def alarms(self, kind=None):
        """What the head-end decodes from the uplink (tools/headend_alarms.py): every
        message verified under KEY, optionally only those of one type."""
        from headend_alarms import decode
        out = [decode(p, KEY) for _, p in self.uplink.sent]
        return [a for a in out if kind is None or a["type"] == kind]
