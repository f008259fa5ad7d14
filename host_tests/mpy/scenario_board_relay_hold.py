# scenario-heap: 1m
# The relay holds through every reset that keeps the chip powered: with the contact closed, a
# watchdog reset (a task that never yields), a panic or machine.reset(), and a soft reset
# (Ctrl-D) never move the relay pad, not for a millisecond, through the reset and the next
# boot (issue 10 item 3). A brown-out releases the pad hold: the board's pull takes the
# relay to its de-energised state and the meter closes it again at boot, logged.

import boardsim

boardsim.setup(METROLOGY="simulated", RADIO="none")  # before any firmware import
from meter import events as ev  # noqa: E402

run = boardsim.boot(stop_ms=30_000)
assert run.outcome == "stop" and boardsim.relay_closed()
log = boardsim.relay_log()
assert len(log) == 1 and log[0][:1] + log[0][2:] == (0, 1), log  # closed once, at boot

# a hung metering step: the supervisor stops feeding, the watchdog resets the chip
boardsim.reset("soft")
boardsim.faults.append(("metering", "tick", boardsim.hang))
run = boardsim.boot()
assert run.outcome == "wdt", run.outcome
boardsim.faults.clear()
assert boardsim.relay_closed(), "relay dropped by the watchdog reset"
run = boardsim.boot(stop_ms=5_000)
assert run.hal.reset_kind == 3 and run.hal.relay.commanded(), run.hal.reset_kind
assert boardsim.relay_log() == log, boardsim.relay_log()

for kind, reported in (("panic", 2), ("hard", 2), ("soft", 5), ("wdt", 3)):
    boardsim.reset(kind)
    assert boardsim.relay_closed(), "relay dropped by the reset itself: " + kind
    run = boardsim.boot(stop_ms=5_000)
    assert run.outcome == "stop" and run.hal.reset_kind == reported, (kind, run.outcome)
    assert run.hal.relay.commanded() and run.hal.relay.sensed(), kind
    assert boardsim.relay_log() == log, (kind, boardsim.relay_log())
    assert run.meter.events.count(ev.BREAKER_OPEN) == 0, kind  # never opened, not logged

# brown-out: the pad hold goes with the RTC domain; the pull opens the contact, the meter
# restores the closed state at boot with a logged reason
boardsim.reset("brownout")
assert not boardsim.relay_closed()
run = boardsim.boot(stop_ms=5_000)
assert run.hal.reset_kind == 1 and boardsim.relay_closed()
assert run.meter.events.newest(ev.BREAKER_CLOSE) is not None
print("PASS")
