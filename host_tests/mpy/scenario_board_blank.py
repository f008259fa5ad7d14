# scenario-heap: 1m
# firmware/main.py boots the board layer under the unix port (fake machine, esp32, time) from
# a blank journal partition: the journal is formatted in place, the meter counts and commits
# every minute on NOR semantics inside the journal partition only, the relay is closed and
# held, the watchdog runs and is fed, and the clock starts invalid until it is set.

import boardsim
import esp32
import espchip

boardsim.setup(METROLOGY="simulated", RADIO="none")  # before any firmware import
from meter import events as ev  # noqa: E402

MIN0 = 9000 * 1440 + 7 * 60 + 4  # 2024-08-22 07:04 local standard time
run = boardsim.boot(stop_ms=2_000)
m, hal = run.meter, run.hal
assert run.outcome == "stop", run.outcome
assert hal.problems == [] and hal.reset_kind == 1, (hal.problems, hal.reset_kind)
assert hal.flash is not None and hal.flash.sector_count() == 64
rep = m.mount_report
assert rep.records == 0 and rep.sectors_blank == 64 and rep.ok(), rep
assert m.durable and not m.clock.wall_valid()  # RTC at 2000-01-01 after power-on
assert m.events.count(ev.STARTUP) == 1

boardsim.reset("soft")  # Ctrl-D; the RTC is then set as a time source would, and it runs
espchip.rtc_ms = (MIN0 * 60 + 50) * 1000
programs0 = esp32.stats["programs"]
run = boardsim.boot(stop_ms=200_000)  # 07:04:50 .. 07:08:10: three minute boundaries
m = run.meter
assert run.outcome == "stop" and run.hal.reset_kind == 5, (run.outcome, run.hal.reset_kind)
assert m.clock.wall_minute() == MIN0 + 4, m.clock.wall_minute()  # the RTC ran on
assert not m.clock.wall_valid()  # nothing has vouched for the RTC's time yet
m.set_clock(MIN0 + 4, 10)  # by command: now valid
assert m.clock.wall_valid() and m.clock.wall_minute() == MIN0 + 4
assert m.regs.total_joules(0) > 0 and m.metering.samples >= 190, m.metering.samples
assert esp32.stats["programs"] - programs0 >= 3  # a commit at least every minute
assert esp32.stats["not_erased"] == 0  # NOR: no program ever needed a 0 -> 1
part = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="journal")[0]
lo, hi = part.addr // 4096, (part.addr + part.size) // 4096
assert all(lo <= s < hi for s in esp32._flash), "a write outside the journal partition"
relay = boardsim.cfg.PIN_RELAY
assert boardsim.relay_closed() and espchip.pads[relay].hold, "relay not closed and held"
assert len(boardsim.relay_log()) == 1, boardsim.relay_log()  # closed once, at boot
assert espchip.wdt_timeout == boardsim.cfg.WDT_TIMEOUT_MS  # started ...
assert espchip.ms - espchip.wdt_fed <= 1000  # ... and fed every second
print("PASS")
