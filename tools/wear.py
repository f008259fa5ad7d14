"""Flash wear of the journal: sector erase rate and projected lifetime at 100k cycles.

Runs the default store policy (a commit every minute: registers + minute block, a 5-minute
block every 5 minutes, a half-hour block every 30 minutes; compaction in idle) on the
default partition. The journal is first brought to its largest live set (102 days of
half-hour history, a full 5-minute day, a full event log) so that compaction carries as
much as it ever will, then metered minute by minute for --days days while erases are
counted per sector.

Usage: python tools/wear.py [--sectors 64] [--days 2] [--cycles 100000]
"""

import os
import sys
import time

if __name__ == "__main__":
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for _sub in ("board/cpython", "firmware", "board", "host_tests"):
        sys.path.insert(0, os.path.join(_root, _sub))

from meter.storage import journal as J  # noqa: E402
from meter.events import EventLog, POWER_FAIL  # noqa: E402
from meter.metering.intervals import IntervalCapture  # noqa: E402
from meter.mac import Hmac  # noqa: E402
from meter.metering.samples import Metering, Sample  # noqa: E402
from meter.metering.registers import EnergyRegisters  # noqa: E402
from meter.storage.store import Store, default_keep  # noqa: E402
from hosthal.flash import NorFlash  # noqa: E402

DAY0 = 9_000 * 1440


def measure(sectors=64, days=2, cycles=100_000, events_per_day=10):
    dev = NorFlash(sectors)
    regs = EnergyRegisters()
    cap = IntervalCapture(regs)
    met = Metering(regs, cap)
    ev = EventLog()
    j = J.Journal(dev, 0, sectors, Hmac(b"w" * 32), default_keep())
    st = Store(j, regs, cap, ev)
    st.restore()
    s = Sample()
    s.e_fwd = 1500 * 60
    s.q_lag = 300 * 60
    s.v_dv = 1010
    s.dt_ms = 60_000
    # Fill the history: one tick per half hour for 102 days, then a full day of 5-minute
    # values and a full event log.
    start = DAY0 - 103 * 1440
    m = start
    while m < DAY0 - 1440:
        st.on_tick(m * 60_000, met.tick(s, m, 0, True))
        st.compact_step()
        m += 30
    while m < DAY0:
        st.on_tick(m * 60_000, met.tick(s, m, 0, True))
        st.compact_step()
        m += 5
    for i in range(ev.entries):
        ev.log(POWER_FAIL, m, 0, i, 0)
    live = j.live_slots()
    # Measure: minute commits for `days` days.
    e0 = list(dev.erase_counts)
    erases0, programs0, bytes0, carried0 = dev.erases, dev.programs, dev.bytes_programmed, \
        j.carried
    t0 = time.time()
    minutes = days * 1440
    for i in range(minutes):
        minute = DAY0 + i
        st.on_tick(minute * 60_000, met.tick(s, minute, 0, True))
        if i % (1440 // events_per_day) == 0:
            ev.log(POWER_FAIL, minute, 0)
        st.compact_step()
    per_sector = [(dev.erase_counts[k] - e0[k]) / days for k in range(sectors)]
    erases_day = (dev.erases - erases0) / days
    worst = max(per_sector)
    return {
        "sectors": sectors,
        "partition_kb": sectors * 4,
        "live_records": live,
        "capacity_records": j.capacity_slots(),
        "commits_per_day": 1440,
        "page_programs_per_day": (dev.programs - programs0) / days,
        "bytes_programmed_per_day": (dev.bytes_programmed - bytes0) / days,
        "records_carried_per_day": (j.carried - carried0) / days,
        "erases_per_day": erases_day,
        "sector_erases_per_day_mean": erases_day / sectors,
        "sector_erases_per_day_max": worst,
        "lifetime_years_mean": cycles / (erases_day / sectors) / 365.25 if erases_day else 0,
        "lifetime_years_worst_sector": cycles / worst / 365.25 if worst else 0,
        "cycles": cycles,
        "seconds": time.time() - t0,
    }


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sectors", type=int, default=64, help="journal partition in 4 KB sectors")
    ap.add_argument("--days", type=int, default=2, help="metered days to measure")
    ap.add_argument("--cycles", type=int, default=100_000, help="erase endurance per sector")
    a = ap.parse_args(argv)
    r = measure(a.sectors, a.days, a.cycles)
    print("journal partition: %d sectors (%d KB), live records %d of %d slots"
          % (r["sectors"], r["partition_kb"], r["live_records"], r["capacity_records"]))
    print("per day: %d commits, %.0f page programs, %.0f bytes programmed, "
          "%.0f records carried by compaction"
          % (r["commits_per_day"], r["page_programs_per_day"], r["bytes_programmed_per_day"],
             r["records_carried_per_day"]))
    print("sector erases per day: %.1f total, %.2f per sector (mean), %.2f (worst sector)"
          % (r["erases_per_day"], r["sector_erases_per_day_mean"],
             r["sector_erases_per_day_max"]))
    print("projected lifetime at %d cycles: %.0f years (mean), %.0f years (worst sector); "
          "target >= 20 years: %s"
          % (r["cycles"], r["lifetime_years_mean"], r["lifetime_years_worst_sector"],
             "met" if r["lifetime_years_worst_sector"] >= 20 else "NOT MET"))
    return 0 if r["lifetime_years_worst_sector"] >= 20 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
