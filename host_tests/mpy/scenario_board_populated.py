# scenario-heap: 1m
# firmware/main.py boots from a populated journal after a power cut and after a brown-out:
# the registers come back from flash (RTC memory is lost, or stale after the brown-out, and
# must not be trusted), the half-hour history captured before is served again, the journal
# chain is intact, and the clock is not valid at the RTC's 2000-01-01 restart.

import boardsim
import espchip

boardsim.setup(METROLOGY="simulated", RADIO="none")  # before any firmware import
from meter import events as ev  # noqa: E402
from meter.storage.store import FROM_JOURNAL  # noqa: E402

MIN0 = 9000 * 1440 + 7 * 60 + 20  # 2024-08-22 07:20 local standard time
HALF = MIN0 + 10  # 07:30, a half-hour boundary
run = boardsim.boot(stop_ms=1_000)
run.meter.set_clock(MIN0, 0)  # by command: logged and committed
boardsim.reset("soft")
run = boardsim.boot(stop_ms=15 * 60_000 + 30_000)  # to 07:35:30
m = run.meter
assert m.clock.wall_valid() and m.clock.wall_minute() == MIN0 + 15, m.clock.wall_minute()
at_half = m.store.history(HALF)
assert at_half != -1 and at_half[0] > 0, at_half
joules = m.regs.total_joules(0)
count = m.regs.count[0]

for cut in ("power_on", "brownout"):
    boardsim.reset(cut)
    run = boardsim.boot(stop_ms=5_000)
    m = run.meter
    assert run.outcome == "stop" and run.hal.reset_kind == 1, (cut, run.outcome)
    rep = m.mount_report
    assert rep.records > 0 and rep.ok() and rep.chain_ok(), (cut, rep)
    # from the journal: RTC memory (with the retained copy) was lost, or stale and refused
    assert m.store.restored_from == FROM_JOURNAL, (cut, m.store.restored_from)
    assert m.store.registers_valid
    # a power cut loses at most the seconds since the last minute commit, never more
    restored = m.regs.total_joules(0)
    assert joules - 60 * 12_000 <= restored <= joules + 5 * 12_000, (cut, joules, restored)
    assert m.regs.count[0] >= count - 1, (cut, count, m.regs.count)
    assert m.store.history(HALF) == at_half, (cut, m.store.history(HALF), at_half)
    assert m.events.count(ev.STARTUP) >= 2
    # RTC restarted at 2000-01-01: whatever RTC memory says, the clock is not valid
    assert espchip.rtc_ms < 10_000
    assert not m.clock.wall_valid(), cut + ": clock valid at 2000-01-01"
    joules = m.regs.total_joules(0)
    count = m.regs.count[0]
print("PASS")
