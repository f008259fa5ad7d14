"""Wear-out campaign: the product meter on a flash whose sectors wear out, to end of life.

The product's meter (meter.assembly.build_meter, with a relay: every record type the
firmware writes) meters minute by minute on the default partition of a NorFlash with the
endurance model (hosthal.flash: sector s stands limit(s) erases, E <= limit(s) <= 1.5 E, then
fails its erases or its programs; the journal's read-back verify finds it and retires the
sector). The journal is first brought to its largest live set as in tools/wear.py. The run
goes on until the journal's usable sectors can no longer hold the record set (its
spare_slots() < 0) and a commit is refused, or --max-days.

A small endurance (--endurance, default 100 cycles) gets there in seconds; wear is linear in
erase cycles, so the simulated days scale to a real chip's endurance (--cycles, 100k) by
cycles / endurance. Printed: days until the first bad sector, the capacity each time a
sector dies, the day the meter can no longer keep its record set, and the checks (no
tamper, no damage, every reboot restores the last commit).

Usage: python tools/wearout.py [--sectors 64] [--endurance 30] [--cycles 100000]
"""

import os
import sys
import time

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hostpaths  # noqa: E402,F401  (firmware, host HAL, CPython shim)
from wear import DAY0, at_minute, boot, fill  # noqa: E402
from hosthal.clock import VirtualClock  # noqa: E402
from hosthal.flash import NorFlash  # noqa: E402
from meter.events import POWER_FAIL  # noqa: E402
from meter.metering.registers import FWD  # noqa: E402


def run(sectors=64, endurance=100, max_days=400, reboot_every_bad=True, progress=False):
    """Meter until end of life. Returns a dict of figures; 'timeline' lists (day, bad
    sectors, capacity slots, spare slots) at the start and at each sector death."""
    dev = NorFlash(sectors, endurance=endurance)
    clock = VirtualClock(wall_s=(DAY0 - 103 * 1440) * 60)
    m = boot(dev, clock)
    fill(m, clock)
    j = m.journal
    fill_wear = dev.erases / sectors  # mean erase cycles the fill used
    timeline = [(0.0, 0, j.capacity_slots(), j.spare_slots())]
    failures = []
    first_bad = None
    end_day = None
    reboots = 0
    nbad = 0
    i = 0
    t0 = time.time()
    while i < max_days * 1440:
        full0 = m.store.full_errors
        at_minute(m, clock, DAY0 + i)
        i += 1
        if i % 144 == 0:
            m.events.log(POWER_FAIL, DAY0 + i, 0)
        bad = len(j.bad_sectors())
        if bad != nbad:
            nbad = bad
            day = i / 1440
            if first_bad is None:
                first_bad = day
            timeline.append((day, bad, j.capacity_slots(), j.spare_slots()))
            if progress:
                print("  day %.2f: %d bad sectors, capacity %d slots, spare %d"
                      % timeline[-1], flush=True)
            if reboot_every_bad and j.spare_slots() >= 0:
                # a reboot: the BAD set is known, the last commit comes back, no alarm
                try:
                    m.store.commit_minute()
                except Exception:  # noqa: BLE001 - full while compaction catches up
                    m.idle()
                    continue
                want = m.regs.total_joules(FWD)
                m = boot(dev, clock)
                j = m.journal
                reboots += 1
                rep = m.mount_report
                if not rep.chain_ok() or rep.damaged or rep.corrupt:
                    failures.append("day %.2f: mount %r" % (day, rep))
                if rep.fits() and m.regs.total_joules(FWD) != want:
                    failures.append("day %.2f: registers %d != %d"
                                    % (day, m.regs.total_joules(FWD), want))
        if m.store.full_errors > full0 and j.spare_slots() < 0:
            end_day = i / 1440
            break
    return {
        "sectors": sectors, "endurance": endurance, "first_bad_day": first_bad,
        "end_day": end_day, "timeline": timeline, "failures": failures,
        "reboots": reboots, "erases": dev.erases, "bad_programs": j.bad_programs,
        "bad_erases": j.bad_erases, "seconds": time.time() - t0,
        "bad_at_end": len(j.bad_sectors()), "minutes": i, "fill_wear": fill_wear,
        "rate": (dev.erases / sectors - fill_wear) / (i / 1440) if i else 0,
    }


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sectors", type=int, default=64, help="journal partition in 4 KB sectors")
    ap.add_argument("--endurance", type=int, default=100, help="simulated erase cycles")
    ap.add_argument("--cycles", type=int, default=100_000, help="a real chip's cycles")
    ap.add_argument("--max-days", type=int, default=400, help="simulated days at most")
    ap.add_argument("--progress", action="store_true", help="print each sector's death")
    a = ap.parse_args(argv)
    r = run(a.sectors, a.endurance, a.max_days, progress=a.progress)
    scale = a.cycles / a.endurance
    yr = 365.25
    # The fill (103 days of history written fast) used some cycles: counted as the days of
    # metering that would have used them, at the measured rate.
    pre = r["fill_wear"] / r["rate"] if r["rate"] else 0
    print("erase cycles per sector and day (mean): %.2f; the fill used %.1f cycles (%.1f days)"
          % (r["rate"], r["fill_wear"], pre))
    for k in ("first_bad_day", "end_day"):
        if r[k] is not None:
            r[k] += pre
    r["timeline"] = [(d + pre, b, c, sp) for d, b, c, sp in r["timeline"]]
    print("partition %d sectors, simulated endurance %d cycles (x%.0f to %d cycles)"
          % (r["sectors"], r["endurance"], scale, a.cycles))
    if r["first_bad_day"] is None:
        print("no sector wore out in %d days" % a.max_days)
    else:
        print("first bad sector: day %.1f simulated = %.1f years at %d cycles"
              % (r["first_bad_day"], r["first_bad_day"] * scale / yr, a.cycles))
    print("capacity over time (years at %d cycles: bad sectors, capacity slots, spare):"
          % a.cycles)
    for day, bad, cap, spare in r["timeline"][::max(1, len(r["timeline"]) // 12)]:
        print("  %6.1f y: %2d bad, %4d slots, spare %4d" % (day * scale / yr, bad, cap, spare))
    if r["end_day"] is None:
        print("record set still kept after %d days" % a.max_days)
    else:
        print("record set no longer kept (commit refused, E_JOURNAL_DAMAGED): day %.1f "
              "simulated = %.1f years, with %d of %d sectors bad"
              % (r["end_day"], r["end_day"] * scale / yr, r["bad_at_end"], r["sectors"]))
    print("failed verifies: %d programs, %d erases; %d reboots; %d erases in all (%.0f s)"
          % (r["bad_programs"], r["bad_erases"], r["reboots"], r["erases"], r["seconds"]))
    for f in r["failures"][:20]:
        print("FAIL " + f)
    return 1 if r["failures"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
