"""Soak run: a meter on a flash journal for simulated weeks, with outages (announced by the
Last Gasp or not), reboots and clock adjustments, checking its invariants throughout.

    make soak                       30 simulated days (ARGS="--days 7 --seed 3" to change)

Checked after every reboot and at the end:
  * the registers never go backwards, and they hold exactly the energy the front end
    delivered, less at most one minute of it for each power cut without a Last Gasp;
  * every captured 1-minute value is non-decreasing in time and no minute is captured twice;
  * the journal's seal chain verifies at every mount, nothing corrupt is found;
  * the meter runs on (commits, compaction) after each reboot.
Prints figures: simulated days, reboots, commits, erases, projected wear, days/s.
"""

import argparse
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("board/cpython", "firmware", "board", "host_tests"):
    sys.path.insert(0, os.path.join(ROOT, sub))

from meter.assembly import build_meter  # noqa: E402
from meter.metering.frontends.simulated import SimulatedHousehold  # noqa: E402
from meter.metering.registers import FWD  # noqa: E402
from hosthal.board import HostHal  # noqa: E402
from hosthal.clock import VirtualClock  # noqa: E402
from hosthal.flash import NorFlash  # noqa: E402
from hosthal.pins import ScriptedPowerGood  # noqa: E402
from hosthal.uplink import FakeUplink  # noqa: E402

KEY = b"soak-test-key-0123456789abcdef!!"
DAY0_S = 9_400 * 86_400


class Metered:
    """Wraps the front end and sums the energy it delivers (the exact reference)."""

    def __init__(self, inner):
        self.inner = inner
        self.delivered = 0

    def poll(self, s, now_ms):
        ok = self.inner.poll(s, now_ms)
        if ok:
            self.delivered += s.e_fwd
        return ok


class Config:
    METER_ID = b"SOAK0001"
    HOLDUP_BUDGET_MS = 4000
    LASTGASP = {}


class Soak:
    def __init__(self, days, seed, sectors):
        self.rng = random.Random(seed)
        self.days = days
        self.flash = NorFlash(sectors=sectors)
        self.clock = VirtualClock(wall_s=DAY0_S)
        self.front = Metered(SimulatedHousehold(self.clock, seed=seed))
        self.pg = ScriptedPowerGood(1)
        self.uplink = FakeUplink()
        self.reboots = 0
        self.cuts = 0  # power cuts without a Last Gasp
        self.outages = 0
        self.adjusts = 0
        self.allowed_loss = 0  # J the documented bound lets us lose
        self.captured = {}  # minute -> value, across the whole run
        self.problems = []
        self.boot()

    def boot(self):
        hal = HostHal(self.clock, self.front, power_good=self.pg, uplink=self.uplink,
                      flash=self.flash)
        self.meter = build_meter(hal, Config(), key=KEY)
        before = getattr(self, "last_total", 0)
        self.meter.boot()
        rep = self.meter.mount_report
        if rep is not None and (not rep.chain_ok() or rep.corrupt):
            self.problems.append("mount at reboot %d: %r" % (self.reboots, rep))
        total = self.meter.regs.total_joules(FWD)
        if total < before - self.allowed_loss_now:
            self.problems.append("registers went back beyond the bound at reboot %d"
                                 % self.reboots)

    allowed_loss_now = 0

    def run_seconds(self, n):
        m = self.meter
        for _ in range(n):
            m.step()
            m.idle()
            hw = m.capture.high_water
            s = m.capture.ring.slot(hw)
            if s >= 0:
                v = m.capture.ring.fwd[s]
                if self.captured.setdefault(hw, v) != v:
                    self.problems.append("minute %d captured twice (%d, %d)"
                                         % (hw, self.captured[hw], v))
            self.clock.advance(1000)

    def last_gasp_outage(self):
        self.outages += 1
        self.pg.set(0)
        for _ in range(600):  # 3 s of the fast power path
            self.meter.power_poll()
            self.clock.advance(5)
        self.reboot(self.rng.randint(60, 7200), announced=True)
        self.pg.set(1)

    def reboot(self, off_s, announced):
        self.last_total = self.meter.regs.total_joules(FWD)
        self.allowed_loss_now = 0 if announced else 60 * self.meter.metering.limits.max_power_w
        if not announced:
            self.cuts += 1
        self.reboots += 1
        self.clock.advance(off_s * 1000)
        self.front.inner.poll(self.meter.sample, self.clock.ticks_ms())  # no energy while off
        self.boot()
        lost = self.last_total - self.meter.regs.total_joules(FWD)
        self.allowed_loss += max(lost, 0)

    def run(self):
        t0 = time.perf_counter()
        end = DAY0_S + self.days * 86_400
        while self.clock.wall_seconds() < end:
            self.run_seconds(self.rng.randint(1800, 6 * 3600))
            r = self.rng.random()
            if r < 0.5:
                self.last_gasp_outage()
            elif r < 0.75:
                self.reboot(self.rng.randint(5, 600), announced=False)
            else:
                self.adjusts += 1
                now = self.clock.wall_seconds() + self.rng.randint(-300, 300)
                self.meter.set_clock(now // 60, now % 60)
        elapsed = time.perf_counter() - t0
        self.check()
        return elapsed

    def check(self):
        m = self.meter
        total = m.regs.total_joules(FWD)
        delivered = self.front.delivered
        if not delivered - self.allowed_loss == total:
            self.problems.append("energy: delivered %d J, lost at cuts %d J, registers %d J"
                                 % (delivered, self.allowed_loss, total))
        values = [self.captured[k] for k in sorted(self.captured)]
        if values != sorted(values):
            self.problems.append("captured 1-minute values go backwards in time")
        if not m.audit().chain_ok():
            self.problems.append("final audit: seal chain broken")


def main(argv=None):
    p = argparse.ArgumentParser(description="soak the meter on a flash journal")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sectors", type=int, default=64)
    a = p.parse_args(argv)
    soak = Soak(a.days, a.seed, a.sectors)
    elapsed = soak.run()
    f = soak.flash
    per_day = f.erases / a.days
    worst = max(f.erase_counts) / a.days
    print("soak: %d simulated days in %.1f s (%.2f days/s), seed %d" % (
        a.days, elapsed, a.days / elapsed, a.seed))
    print("  reboots %d (Last Gasp outages %d, unannounced cuts %d), clock adjustments %d" % (
        soak.reboots, soak.outages, soak.cuts, soak.adjusts))
    print("  energy delivered %.3f kWh, lost at unannounced cuts %.3f kWh (bound: 1 minute each)"
          % (soak.front.delivered / 3.6e6, soak.allowed_loss / 3.6e6))
    print("  journal: %d page programs, %d erases (%.1f a day; worst sector %.2f a day, %.0f"
          " years to 100k cycles)" % (f.programs, f.erases, per_day, worst,
                                      100_000 / worst / 365 if worst else float("inf")))
    print("  minutes captured %d, alarms sent %d" % (len(soak.captured),
                                                     len(soak.uplink.sent)))
    if soak.problems:
        print("PROBLEMS:")
        for pr in soak.problems:
            print("  " + pr)
        return 1
    print("all invariants held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
