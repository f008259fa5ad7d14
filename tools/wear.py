"""Flash wear of the journal: sector erase rate and projected lifetime at 100k cycles.

Runs the product's own meter (meter.assembly.build_meter, with a relay: every record type
the firmware writes) under its store policy (a commit every minute: registers + minute block,
a 5-minute block every 5 minutes, a half-hour block every 30 minutes; compaction in idle) on
the default partition. The journal is first brought to its largest live set (102 days of
half-hour history, a full 5-minute day, a full event log, a full command audit log, the
limiter, counter and reservation records) so that compaction carries as much as it ever
will, then metered minute by minute for --days days while erases are counted per sector.

The A-route's outbox record (REC_OUTBOX: its cursors, boot count and alarm register) is
written at its highest rate, once a minute (meter.aroute.service SAVE_MS: a connected meter
whose 1-minute stream is acknowledged every minute), through the store's save handle with
the bytes the real Outbox packs, the call the A-route makes; --no-aroute leaves it out.

Usage: python tools/wear.py [--sectors 64] [--days 2] [--cycles 100000] [--no-aroute]
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
from hosthal.flash import NorFlash  # noqa: E402
from hosthal.loads import ConstantLoad  # noqa: E402
from hosthal.pins import FakeRelay  # noqa: E402
from meter.aroute.outbox import STREAMS, Outbox  # noqa: E402
from meter.assembly import build_meter  # noqa: E402
from meter.events import POWER_FAIL  # noqa: E402
from meter.storage.records import KIND_OUTBOX  # noqa: E402

DAY0 = 9_000 * 1440
KEY = b"w" * 32


class Config:
    METER_ID = b"WEAR0001"


def boot(dev, clock):
    """The product's composition (meter.assembly) on `dev`, with a relay, so the journal
    holds every record type the firmware writes (registers, series, events, clock, limiter,
    reservations, command counter, audit log, Last Gasp state)."""
    m = build_meter(HostHal(clock, ConstantLoad(1500), relay=FakeRelay(closed=True),
                            flash=dev), Config(), key=KEY)
    m.boot()
    return m


def product_meter(sectors):
    """boot() on a fresh flash of `sectors`, the clock 103 days before DAY0."""
    dev = NorFlash(sectors)
    clock = VirtualClock(wall_s=(DAY0 - 103 * 1440) * 60)
    return boot(dev, clock), dev, clock


def at_minute(m, clock, minute):
    """One metering second at minute:00 (monotonic time moves on a minute per call)."""
    clock.advance(60_000)
    clock.set_wall(minute, 0)
    m.step()
    m.idle()


def fill(m, clock):
    """Bring the journal to its largest live set: one tick per half hour for 102 days, a
    full day of 5-minute values, the control records (a full command audit log, the
    counter, the limiter state, a reservation table) and a full event log. Returns the
    minute reached (DAY0)."""
    minute = DAY0 - 103 * 1440
    while minute < DAY0 - 1440:
        at_minute(m, clock, minute)
        minute += 30
    while minute < DAY0:
        at_minute(m, clock, minute)
        minute += 5
    he = HeadEnd(Config.METER_ID, KEY, 0)
    for i in range(m.command_log.entries):
        he.parse(m.command(he.contract(50 if i % 2 else 60, clock.wall_minute() + 5)))
        m.idle()
    he.parse(m.command(he.create(1, minute + 600, minute + 660, 30, minute + 5)))
    for i in range(m.events.entries):
        m.events.log(POWER_FAIL, minute, 0, i, 0)
    return minute


class OutboxWriter:
    """The A-route's outbox saves at their highest rate: every minute, the cursors moved to
    the newest items (everything acknowledged), packed by the real Outbox and saved through
    the store's KIND_OUTBOX handle, as ARoute._save_outbox does."""

    def __init__(self, m):
        self.box = Outbox(m.capture, m.events, m.store)
        self.saver = m.store.saver(KIND_OUTBOX)
        self.saved = 0

    def minute(self):
        for s in range(STREAMS):
            self.box.cursor[s] = self.box.next_item(s)
        if self.saver.save(self.box.pack(0, 0)):
            self.saved += 1


def measure(sectors=64, days=2, cycles=100_000, events_per_day=10, aroute=True):
    m, dev, clock = product_meter(sectors)
    j = m.journal
    fill(m, clock)
    box = OutboxWriter(m) if aroute else None
    if box is not None:
        box.minute()  # the record exists before the measurement starts
        m.idle()
        box.saved = 0
    live = j.live_slots()
    # Measure: minute commits for `days` days.
    e0 = list(dev.erase_counts)
    erases0, programs0, bytes0, carried0 = dev.erases, dev.programs, dev.bytes_programmed, \
        j.carried
    t0 = time.time()
    minutes = days * 1440
    for i in range(minutes):
        at_minute(m, clock, DAY0 + i)
        if box is not None:
            box.minute()
        if i % (1440 // events_per_day) == 0:
            m.events.log(POWER_FAIL, DAY0 + i, 0)
    per_sector = [(dev.erase_counts[k] - e0[k]) / days for k in range(sectors)]
    erases_day = (dev.erases - erases0) / days
    worst = max(per_sector)
    return {
        "sectors": sectors,
        "partition_kb": sectors * 4,
        "live_records": live,
        "capacity_records": j.capacity_slots(),
        "commits_per_day": 1440,
        "outbox_records_per_day": box.saved / days if box is not None else 0,
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
    ap.add_argument("--no-aroute", dest="aroute", action="store_false",
                    help="leave out the A-route's outbox record (one a minute)")
    a = ap.parse_args(argv)
    r = measure(a.sectors, a.days, a.cycles, aroute=a.aroute)
    print("journal partition: %d sectors (%d KB), live records %d of %d slots"
          % (r["sectors"], r["partition_kb"], r["live_records"], r["capacity_records"]))
    print("per day: %d commits, %.0f A-route outbox records, %.0f page programs, "
          "%.0f bytes programmed, %.0f records carried by compaction"
          % (r["commits_per_day"], r["outbox_records_per_day"], r["page_programs_per_day"],
             r["bytes_programmed_per_day"], r["records_carried_per_day"]))
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
