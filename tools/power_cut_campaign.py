"""Power-cut campaign: a simulated metering day, cut after every flash step, reboot, check.

The scenario (one day and a bit of metering, two ticks a minute, a minute commit at every
boundary, compaction in idle, clock jumps forward and backward by command, one outage with
a Last Gasp commit and one without) runs once on a flash that records every program and
erase. A cut at byte k of operation i is then rebuilt exactly as NorFlash.cut_after() makes
it (the image before operation i, operation i replayed with cut_after(k)), and the meter
boots from that image. After each reboot:
  * the registers equal those of the last complete commit or of the commit being written
    (never behind the last complete commit, never ahead of what was measured), and the
    energy lost is below the documented bound (one minute of the scenario's peak power);
  * every captured boundary in the ring, the 5-minute values, the RAM half-hours and the
    flash history equals the value measured for it (nothing altered or invented), and every
    boundary committed before the cut is there (nothing lost);
  * the journal mount reports no seal-chain break;
  * with --run-on (default in the tool) the firmware runs on: it meters, commits and
    compacts after the reboot, and a second reboot restores that commit.

Usage:
  python tools/power_cut_campaign.py                 every op, bytes 0, 1, middle, last
  python tools/power_cut_campaign.py --every-byte    every byte of every op (hours)
  python tools/power_cut_campaign.py --stride 50     every 50th cut point (quick sample)
  python tools/power_cut_campaign.py --every-byte --part 2/4   one of 4 parallel shares
Prints how many cut points were tried and the failures; exit status 1 on any failure.
"""

import os
import sys
import time

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hostpaths  # noqa: E402,F401  (firmware, host HAL, CPython shim)
from headend import HeadEnd  # noqa: E402
from hosthal.board import HostHal  # noqa: E402
from hosthal.clock import VirtualClock  # noqa: E402
from hosthal.flash import NorFlash, PowerCut  # noqa: E402
from hosthal.pins import FakeRelay, ScriptedPowerGood  # noqa: E402
from hosthal.uplink import FakeUplink  # noqa: E402
from meter.assembly import build_meter  # noqa: E402
from meter.hal import MetrologySource  # noqa: E402
from meter.metering.intervals import CAPTURED, FIVE, HALF_HOUR, MISSING, RING_MINUTES  # noqa: E402
from meter.metering.registers import FWD, REV, LAG, LEAD  # noqa: E402

KEY = bytes(range(32))  # a test key: the campaign must be reproducible
METER_ID = b"CUT00001"
SECTORS = 64  # default journal partition: 256 KB
DAY0 = 9_500 * 1440  # a midnight, in wall minutes since 2000
PEAK_W = 6_000
TICK_S = 30
LOSS_BOUND_J = PEAK_W * 60  # one minute of energy at the scenario's peak power


class RecordingFlash(NorFlash):
    """NorFlash that records every operation: ('p', offset, bytes) or ('e', sector)."""

    def __init__(self, sectors):
        super().__init__(sectors)
        self.ops = []

    def program(self, offset, buf):
        self.ops.append(("p", offset, bytes(buf)))
        super().program(offset, buf)

    def erase_sector(self, sector):
        self.ops.append(("e", sector, None))
        super().erase_sector(sector)


class ProfileSource(MetrologySource):
    """The campaign's deterministic load: one sample of TICK_S seconds per poll, the
    energy of _energy(t) for the t-th poll (t is set by the scenario)."""

    def __init__(self):
        self.t = 0
        self.on = True

    def poll(self, s, now_ms):
        if not self.on:
            return False
        e_fwd, e_rev, q_lag = _energy(self.t)
        s.clear()
        s.dt_ms = TICK_S * 1000
        s.e_fwd, s.e_rev, s.q_lag = e_fwd, e_rev, q_lag
        s.p_w = (e_fwd - e_rev) // TICK_S
        s.i_ma = s.p_w * 10_000 // 1010 if s.p_w > 0 else 0
        s.v_dv = 1010
        return True


class Config:
    METER_ID = METER_ID
    LASTGASP = {"debounce_ms": 20}


def boot(dev, clock=None, source=None, pg=None, relay=None):
    """The product's meter (meter.assembly.build_meter) booted from `dev`: every record type
    the firmware writes is in play. Without a clock, the wall clock is invalid (a meter that
    restarts without a time source)."""
    hal = HostHal(clock or VirtualClock(), source or ProfileSource(),
                  power_good=pg or ScriptedPowerGood(1), uplink=FakeUplink(),
                  relay=relay or FakeRelay(closed=True), flash=dev)
    m = build_meter(hal, Config(), key=KEY)
    m.boot()
    return m


def regs_state(regs):
    return tuple((regs.count[r], regs.rem_dwh[r], regs.rem_j[r], regs.wraps[r])
                 for r in (FWD, REV, LAG, LEAD))


class Checkpoint:
    def __init__(self, op_end, meter):
        self.op_end = op_end  # operations issued when the commit returned
        self.regs = regs_state(meter.regs)
        self.total = meter.regs.total_joules(FWD)
        self.hw = meter.capture.high_water


class Trace:
    """What the uncut run did: operations, commits (checkpoints) and measured values."""

    def __init__(self):
        self.ops = []
        self.checkpoints = []  # in op order
        self.groups = []  # (op_start, op_end, checkpoint index) of each commit
        self.truth_total = []  # (op count, FWD J measured so far)
        self.minute = {}  # boundary -> (fwd, rev) as captured
        self.five = {}
        self.half = {}


def _energy(t):
    """Deterministic load profile: (import J, export J, lag var*s) over TICK_S at tick t."""
    x = (t * 1_103_515_245 + 12_345) & 0x7FFF_FFFF
    p = (x >> 8) % PEAK_W
    if (t // 240) % 7 == 3:  # a sunny spell: export
        return 0, (p // 3) * TICK_S, 0
    return p * TICK_S, 0, (p // 5) * TICK_S


def run_scenario(minutes=1440 + 120):
    """Run the day once on a recording flash. Returns the Trace."""
    dev = RecordingFlash(SECTORS)
    tr = Trace()
    tr.ops = dev.ops
    clock = VirtualClock((DAY0 - 10) * 60)
    src = ProfileSource()
    pg = ScriptedPowerGood(1)
    relay = FakeRelay(closed=True)
    m = boot(dev, clock, src, pg, relay)
    he = HeadEnd(METER_ID, KEY, 0)

    def checkpoint(start):
        tr.checkpoints.append(Checkpoint(len(dev.ops), m))
        tr.groups.append((start, len(dev.ops), len(tr.checkpoints) - 1))

    start = len(dev.ops)
    m.store.commit_minute()  # first state on a new meter
    checkpoint(start)
    t = 0
    jumps = {6 * 120: 2 * 3600, 12 * 120: -20 * 60, 18 * 120: 7 * 60 + 1}
    # signed commands: the control records (audit entries, counter, limiter, reservations)
    commands = {2 * 120: lambda e: he.contract(50, e), 3 * 120: lambda e: he.contract(60, e),
                8 * 120: lambda e: he.create(1, DAY0 + 600, DAY0 + 660, 30, e)}
    while clock.wall_minute() < DAY0 - 10 + minutes:
        if t in jumps:
            wm, ws = divmod(clock.wall_seconds() + jumps[t], 60)
            start = len(dev.ops)
            m.set_clock(wm, ws, force=abs(jumps[t]) > 3600)  # hours: an explicit command
            checkpoint(start)
        if t in commands:
            he.parse(m.command(commands[t](clock.wall_minute() + 5)))
        if t == 20 * 120 or t == 22 * 120:
            # Outage: at 20 h with the Last Gasp sequence (its commit, its state record), at
            # 22 h without. The meter reboots from the flash as it is; the registers carry
            # on from what was restored.
            if t == 20 * 120:
                start = len(dev.ops)
                pg.set(0)
                src.on = False
                for _ in range(100):  # 0.5 s of the power path: debounce, commit, alarm
                    m.power_poll()
                    clock.advance(5)
                checkpoint(start)
                pg.set(1)
                src.on = True
            before = m.regs.total_joules(FWD)
            m = boot(dev, clock, src, pg, relay)
            after = m.regs.total_joules(FWD)
            assert after <= before and before - after <= LOSS_BOUND_J, (before, after)
            if t == 20 * 120:
                assert after == before, "Last Gasp commit lost energy"
            tr.checkpoints.append(Checkpoint(len(dev.ops), m))
        src.t = t
        start = len(dev.ops)
        commits = m.store.commits
        bits = m.step()
        wm = clock.wall_minute()
        tr.truth_total.append((start, m.regs.total_joules(FWD)))  # before the commit
        cap = m.capture
        if bits & CAPTURED:
            s = cap.ring.slot(wm)
            tr.minute[wm] = (cap.ring.fwd[s], cap.ring.rev[s])
        if bits & FIVE:
            c = cap.five
            s = c.slot(wm)
            tr.five[wm] = (c.fwd[s], c.rev[s], c.lag[s], c.lead[s], c.volt[s])
        if bits & HALF_HOUR:
            s = cap.half.slot(wm)
            tr.half[wm] = (cap.half.fwd[s], cap.half.rev[s])
        if m.store.commits != commits:
            checkpoint(start)
        m.idle()
        clock.advance(TICK_S * 1000)
        t += 1
    tr.final_checkpoint = len(tr.checkpoints) - 1
    return tr


def cut_points(tr, every_byte=False):
    """(op index, byte k) pairs; k counts bytes of a program applied before the cut."""
    for i, (kind, _, data) in enumerate(tr.ops):
        if kind == "e":
            yield i, 0
            continue
        n = len(data)
        ks = range(n) if every_byte else sorted({0, 1, n // 2, n - 1})
        for k in ks:
            yield i, k


def _apply(image, op):
    kind, a, data = op
    if kind == "e":
        s = a * NorFlash.SECTOR_SIZE
        image[s:s + NorFlash.SECTOR_SIZE] = b"\xff" * NorFlash.SECTOR_SIZE
    else:
        for j, b in enumerate(data):
            image[a + j] &= b


def _checkpoint_index(tr, op):
    """Index of the last checkpoint complete before operation `op` starts."""
    lo, hi = 0, len(tr.checkpoints)
    while lo < hi:
        mid = (lo + hi) // 2
        if tr.checkpoints[mid].op_end <= op:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


def check_cut(tr, image, op, k, run_on=True):
    """Boot from `image` (the flash before operation `op`) with operation op cut after k
    bytes. Returns a list of failure strings (empty = survived)."""
    dev = NorFlash(SECTORS, image)
    kind, a, data = tr.ops[op]
    dev.cut_after(k)
    try:
        if kind == "e":
            dev.erase_sector(a)
        else:
            dev.program(a, data)
    except PowerCut:
        pass
    dev.disarm()
    fails = []
    try:
        m = boot(dev)
    except Exception as e:  # noqa: BLE001 - a campaign reports, it does not stop
        return ["boot raised %r" % (e,)]
    ci = _checkpoint_index(tr, op)
    allowed = [tr.checkpoints[ci]] if ci >= 0 else []
    for start, end, gi in tr.groups:
        if start <= op < end:
            allowed.append(tr.checkpoints[gi])
    got = regs_state(m.regs)
    if allowed and got not in [c.regs for c in allowed]:
        fails.append("registers %r not a committed state %r" % (got, [c.regs for c in allowed]))
    if allowed:
        base = allowed[0]
        if m.regs.total_joules(FWD) < base.total:
            fails.append("registers went backwards")
        measured = _measured_at(tr, op)
        if measured - m.regs.total_joules(FWD) > LOSS_BOUND_J:
            fails.append("lost %d J > bound" % (measured - m.regs.total_joules(FWD)))
        if m.regs.total_joules(FWD) > measured:
            fails.append("registers ahead of measurement")
    if m.mount_report.tamper:
        fails.append("seal chain broken: %r" % (m.mount_report,))
    fails += check_intervals(tr, m, allowed[0].hw if allowed else MISSING)
    if run_on and not fails:
        fails += _run_on(dev, m)
    return fails


def _measured_at(tr, op):
    lo, hi = 0, len(tr.truth_total)
    while lo < hi:
        mid = (lo + hi) // 2
        if tr.truth_total[mid][0] <= op:
            lo = mid + 1
        else:
            hi = mid
    return tr.truth_total[lo - 1][1] if lo else 0


def check_intervals(tr, m, durable_hw):
    """Restored ring/five/half/history equal the measured values; nothing committed is
    missing, nothing is invented."""
    fails = []
    hw = m.capture.high_water
    ring, five, half = m.capture.ring, m.capture.five, m.capture.half
    for s in range(RING_MINUTES):
        b = ring.stamp[s]
        if b >= 0 and tr.minute.get(b) != (ring.fwd[s], ring.rev[s]):
            fails.append("minute %d altered or invented" % b)
    for s in range(five.entries):
        b = five.stamp[s]
        if b >= 0 and tr.five.get(b) != (five.fwd[s], five.rev[s], five.lag[s],
                                         five.lead[s], five.volt[s]):
            fails.append("five %d altered or invented" % b)
    for s in range(half.entries):
        b = half.stamp[s]
        if b >= 0 and tr.half.get(b) != (half.fwd[s], half.rev[s]):
            fails.append("half %d altered or invented" % b)
    for b, v in tr.minute.items():
        if b <= durable_hw and b > hw - RING_MINUTES and ring.slot(b) < 0:
            fails.append("committed minute %d lost" % b)
    for b, v in tr.five.items():
        if b <= durable_hw and b > hw - 5 * five.entries and five.slot(b) < 0:
            fails.append("committed five %d lost" % b)
    for b, v in tr.half.items():
        got = m.store.history(b)
        if b <= durable_hw and got != v:
            fails.append("history %d: %r != %r" % (b, got, v))
        elif got != MISSING and got != v:
            fails.append("history %d invented %r" % (b, got))
    return fails[:5]


def _run_on(dev, m):
    """The firmware runs on after the reboot: meter, commit, compact, reboot, compare."""
    try:
        clock = m.clock
        clock.set_wall(max(m.capture.high_water, DAY0) + 1, 0)
        for i in range(4):
            m.step()
            m.store.commit_minute()
            m.idle()
            clock.advance(TICK_S * 1000)
        want = regs_state(m.regs)
        m2 = boot(dev)
        if regs_state(m2.regs) != want:
            return ["after run-on reboot registers %r != %r" % (regs_state(m2.regs), want)]
        if m2.mount_report.tamper:
            return ["after run-on reboot seal chain broken"]
    except Exception as e:  # noqa: BLE001
        return ["run-on raised %r" % (e,)]
    return []


def campaign(tr, points, run_on=1, progress=None):
    """Try every cut point (an ascending list of (op, k)); the run-on check on every
    `run_on`-th one (0: never). Returns (tried, failures)."""
    image = bytearray(b"\xff" * (SECTORS * NorFlash.SECTOR_SIZE))
    applied = 0
    tried = 0
    failures = []
    for op, k in points:
        while applied < op:
            _apply(image, tr.ops[applied])
            applied += 1
        fails = check_cut(tr, bytes(image), op, k, run_on and tried % run_on == 0)
        tried += 1
        if fails:
            failures.append((op, k, fails))
        if progress and tried % progress == 0:
            print("  %d cut points, %d failures" % (tried, len(failures)), flush=True)
    return tried, failures


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every-byte", action="store_true", help="cut at every byte of every op")
    ap.add_argument("--stride", type=int, default=1, help="try every Nth cut point")
    ap.add_argument("--no-run-on", action="store_true", help="skip the run-on check")
    ap.add_argument("--minutes", type=int, default=1440 + 120, help="scenario length")
    ap.add_argument("--part", default="1/1",
                    help="K/N: try only the K-th of N interleaved shares (parallel runs)")
    a = ap.parse_args(argv)
    k, n = (int(x) for x in a.part.split("/"))
    t0 = time.time()
    tr = run_scenario(a.minutes)
    progs = sum(1 for o in tr.ops if o[0] == "p")
    erases = len(tr.ops) - progs
    print("scenario: %d minutes, %d commits, %d page programs, %d erases, %d byte steps"
          % (a.minutes, len(tr.groups), progs, erases,
             sum(len(o[2]) for o in tr.ops if o[0] == "p") + erases))
    points = list(cut_points(tr, a.every_byte))[::a.stride][k - 1::n]
    print("cut points to try: %d" % len(points), flush=True)
    tried, failures = campaign(tr, points, 0 if a.no_run_on else 1, progress=2000)
    for op, k, fails in failures[:20]:
        print("FAIL op %d %r byte %d: %s" % (op, tr.ops[op][:2], k, "; ".join(fails)))
    print("cut points tried: %d, survived: %d, failures: %d (%.0f s)"
          % (tried, tried - len(failures), len(failures), time.time() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
