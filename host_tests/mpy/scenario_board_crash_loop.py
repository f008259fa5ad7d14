# scenario-heap: 1m
# A crash loop ends in safe mode: a B-route bug that raises at every poll makes the shell's
# supervisor restart the task, then reset the board (machine.reset: a counted crash); after
# bootguard.SAFE_AFTER crash resets in a row the meter comes up in safe mode (metering and
# storage only, no B-route) and runs: the watchdog fed, the registers carried through every
# reset, the relay held closed throughout, the failures and the safe mode in the event log.

import boardsim
import espchip

SECRETS = b'{"broute_id": "00112233445566778899AABBCCDDEEFF", "broute_password": "0123456789AB"}'
boardsim.setup("esp32_s3_devkitc", METROLOGY="simulated", RADIO="wisun")
boardsim.write_file("/secrets.json", SECRETS)
from meter import events as ev  # noqa: E402
from esp32hal import bootguard  # noqa: E402

run = boardsim.boot(stop_ms=60_000)
assert run.outcome == "stop" and run.meter.broute is not None and not run.meter.safe_mode
joules = run.meter.regs.total_joules(0)
log = boardsim.relay_log()
assert len(log) == 1 and boardsim.relay_closed(), log
boardsim.reset("soft")

boardsim.faults.append(("broute", "poll", None))  # the bug ships in this deployment
kinds = []
for _ in range(bootguard.SAFE_AFTER):
    run = boardsim.boot()
    kinds.append(run.outcome)
    assert run.meter is not None and not run.meter.safe_mode
    assert run.meter.events.count(ev.TASK_FAILED) >= 1
    assert run.meter.events.newest(ev.BOARD_RESET) is not None
assert kinds == ["hard"] * bootguard.SAFE_AFTER, kinds  # the supervisor's machine.reset()

run = boardsim.boot(stop_ms=120_000)
m = run.meter
assert run.outcome == "stop", run.outcome
assert m.safe_mode and run.hal.safe_mode and m.broute is None, "not in safe mode"
assert m.events.newest(ev.SAFE_MODE)[4] == bootguard.SAFE_AFTER, m.events.newest(ev.SAFE_MODE)
assert m.regs.total_joules(0) > joules  # counted on, nothing lost across the resets
assert espchip.ms - espchip.wdt_fed <= 1000  # fed: every critical task checks in
assert boardsim.relay_log() == log and boardsim.relay_closed(), boardsim.relay_log()
assert m.store.registers_valid and m.store.restored_from in (1, 2)  # journal or retained
print("PASS")
