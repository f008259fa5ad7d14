"""Recoverable boot and supervised tasks: the supervisor (esp32hal.supervisor) feeds the
watchdog only when every critical task checked in and turns failures into restarts, then a
reset; the boot guard (esp32hal.bootguard) skips the application for recovery, counts crash
loops in RTC memory and picks safe mode; a meter without durable storage says so (event,
ECHONET 0x88, Meter.durable) and the shell refuses to run it unless the board allows RAM
only. Driven by calls on the host (fake machine/esp32 of test_board_definitions)."""

import os
import runpy
import sys
import types

import pytest

from paths import ROOT
from test_board_definitions import FakePartition, FakeTime, variant
from test_board_definitions import esp_env

KEY = b"supervisor-test-key-0123456789ab"


@pytest.fixture
def esp(monkeypatch):
    yield from esp_env(monkeypatch)


# --- the supervisor -------------------------------------------------------------------------

def make(**kw):
    from esp32hal.supervisor import Supervisor

    log = []
    healthy = []
    sup = Supervisor(on_failure=lambda tid, n: log.append((tid, n)),
                     on_healthy=lambda: healthy.append(1), **kw)
    return sup, log, healthy


def test_the_watchdog_is_fed_only_when_every_critical_task_checked_in(esp):
    sup, _, _ = make()
    m, p, b = sup.add("metering"), sup.add("power"), sup.add("broute")
    diag = sup.add("diagnostics", critical=False)
    sup.check_in(m)
    sup.check_in(p)
    assert not sup.due_feed(1000) and sup.missing() == ["broute"]
    sup.check_in(b)
    assert sup.due_feed(1000)
    sup.check_in(m)
    sup.check_in(diag)
    assert not sup.due_feed(2000)  # a new round: power and B-route again, diagnostics never
    assert sup.missing() == ["power", "broute"]


def test_a_task_that_stops_checking_in_starves_the_watchdog(esp):
    sup, _, _ = make()
    m, p = sup.add("metering"), sup.add("power")
    fed = 0
    for s in range(30):  # the power task hangs after 5 s: the metering task alone goes on
        sup.check_in(m)
        if s < 5:
            sup.check_in(p)
        fed += sup.due_feed(s * 1000)
    assert fed == 5


def test_failures_restart_the_task_then_reset_the_board(esp):
    from esp32hal.supervisor import MAX_RESTARTS, RESET, RESTART

    sup, log, _ = make()
    m, p = sup.add("metering"), sup.add("power")
    for n in range(1, MAX_RESTARTS + 1):
        assert sup.failed(p, ValueError("boom"), n * 1000) == RESTART
    assert sup.failed(p, ValueError("boom"), 9000) == RESET
    assert log == [(p, n) for n in range(1, MAX_RESTARTS + 2)]  # each one logged
    assert sup.failures[m] == 0


def test_a_healthy_period_clears_the_crash_counter_and_the_failure_counts(esp):
    from esp32hal.supervisor import RESTART

    sup, log, healthy = make(healthy_ms=60_000)
    m = sup.add("metering")
    sup.failed(m, ValueError(), 0)
    sup.failed(m, ValueError(), 500)
    for s in range(1, 61):
        sup.check_in(m)
        sup.due_feed(s * 1000)
    assert not healthy  # 59 s after the first feed, not yet
    sup.check_in(m)
    sup.due_feed(62_000)
    assert healthy == [1] and sup.healthy and sup.failures[m] == 0
    sup.check_in(m)
    sup.due_feed(200_000)
    assert healthy == [1]  # once per healthy period
    assert sup.failed(m, ValueError(), 201_000) == RESTART and not sup.healthy


def test_check_in_and_due_feed_allocate_nothing_in_shape(esp):
    """Masks are small ints: thirty tasks at most (the 31-bit small int of the board)."""
    sup, _, _ = make()
    for k in range(30):
        sup.add("t%d" % k)
    with pytest.raises(ValueError, match="E_TASKS"):
        sup.add("one too many")
    for k in range(30):
        sup.check_in(k)
    assert sup.due_feed(0)


# --- crash counter, safe mode, recovery ---------------------------------------------------

def boot_guard(esp, cause):
    """A boot of bootguard.start() after a reset with `cause` (fresh modules)."""
    esp.machine.reset_cause = lambda: cause
    for m in [m for m in sys.modules if m == "esp32hal" or m.startswith("esp32hal.")]:
        del sys.modules[m]
    from esp32hal import bootguard

    return bootguard.start()


def test_crash_resets_count_up_to_safe_mode_and_power_on_clears_them(esp):
    from esp32hal.bootguard import SAFE_AFTER

    kinds = []
    for cause in (3, 2, 5, 3):  # watchdog, panic, a soft reset (not counted), watchdog
        kind, crashes = boot_guard(esp, cause)
        kinds.append((crashes.count, crashes.safe_mode))
    assert kinds == [(1, False), (2, False), (2, False), (SAFE_AFTER, True)]
    kind, crashes = boot_guard(esp, 1)  # power-on: RTC memory cleared
    assert crashes.count == 0 and not crashes.safe_mode


def test_healthy_running_clears_the_crash_count_for_the_next_boot(esp):
    _, crashes = boot_guard(esp, 3)
    _, crashes = boot_guard(esp, 3)
    crashes.clear()
    assert crashes.count == 2  # this boot's mode stays what it was
    _, crashes = boot_guard(esp, 3)
    assert crashes.count == 1


def test_the_skip_file_or_the_held_boot_button_skips_the_application(esp, tmp_path,
                                                                     monkeypatch):
    from esp32hal import bootguard
    from test_board_definitions import FakePin

    cfg = variant("esp32_devkitc")
    naps = []
    monkeypatch.setattr(bootguard, "SKIP_PATH", str(tmp_path / "skip_app"))
    monkeypatch.setattr(bootguard.skip_file, "__defaults__", (str(tmp_path / "skip_app"),))
    FakePin(cfg.SKIP_APP_PIN).level = 1  # button released (pull-up)
    assert not bootguard.skip_requested(cfg, naps.append)
    assert sum(naps) >= bootguard.SKIP_WINDOW_MS  # watched for the whole window
    (tmp_path / "skip_app").write_text("")
    naps.clear()
    assert bootguard.skip_requested(cfg, naps.append) and naps == []  # at once
    (tmp_path / "skip_app").unlink()
    FakePin.made[cfg.SKIP_APP_PIN].level = 0  # BOOT pressed
    assert bootguard.skip_requested(cfg, naps.append)
    assert FakePin.made[cfg.SKIP_APP_PIN].pull == FakePin.PULL_UP


# --- durability ---------------------------------------------------------------------------

def test_a_meter_without_its_journal_says_so_everywhere(esp):
    from meter import events as ev
    from meter.assembly import build_meter

    FakePartition.table = {}  # stock MicroPython table: no journal partition
    cfg = variant("esp32_devkitc", METROLOGY="simulated")
    hal = esp.factory.build_hal(cfg)
    hal.radio = object()  # a B-route slot (the ECHONET object is what is checked)
    m = build_meter(hal, cfg, key=KEY)
    assert m.durable is False
    m.boot(hal.reset_kind)
    assert m.events.newest(ev.NOT_DURABLE)[4] == 1  # a: no journal flash
    assert m.echonet.objects[0].faulty()  # ECHONET 0x88: 0x41 fault


def test_a_meter_without_its_key_is_not_durable_either(esp):
    from meter import events as ev
    from meter.assembly import build_meter

    cfg = variant("esp32_devkitc", METROLOGY="simulated", RADIO="none")
    hal = esp.factory.build_hal(cfg)
    m = build_meter(hal, cfg)  # no /meter.key on the host
    m.boot(hal.reset_kind)
    assert not m.durable and m.events.newest(ev.NOT_DURABLE)[4] == 2


def test_a_durable_meter_logs_nothing_of_the_kind(esp):
    from meter import events as ev
    from meter.assembly import build_meter

    cfg = variant("esp32_devkitc", METROLOGY="simulated", RADIO="none")
    m = build_meter(esp.factory.build_hal(cfg), cfg, key=KEY)
    m.boot(3)
    assert m.durable and m.events.newest(ev.NOT_DURABLE) is None


def test_safe_mode_meters_and_stores_without_radio_or_commands(esp):
    from meter.assembly import build_meter

    cfg = variant("esp32_devkitc", METROLOGY="simulated")
    hal = esp.factory.build_hal(cfg, 3, safe_mode=True)
    assert hal.radio is None and any("E_SAFE_MODE" in p for p in hal.problems)
    hal.radio = object()  # even with a slot, no B-route is built
    m = build_meter(hal, cfg, key=KEY, safe_mode=True)
    assert m.safe_mode and m.durable and m.broute is None and m.echonet is None
    assert m.commands is None and m.limiter is not None and m.command(b"x") is None


# --- the shell's boot decisions (firmware/main.py) -------------------------------------------

def run_main(esp, monkeypatch, cfg):
    """Run firmware/main.py as the board would, up to where it returns to the REPL."""
    t = FakeTime()
    t.sleep_ms = lambda ms: None
    monkeypatch.setitem(sys.modules, "board_config", cfg)
    monkeypatch.setitem(sys.modules, "time", t)
    for m in [m for m in sys.modules if m == "esp32hal" or m.startswith("esp32hal.")]:
        del sys.modules[m]
    import esp32hal.factory as factory

    monkeypatch.setattr(factory, "SECRETS_PATH", "/nonexistent/secrets.json")
    started = []
    esp.machine.WDT = lambda **kw: started.append(kw)
    runpy.run_path(os.path.join(ROOT, "firmware", "main.py"), run_name="main")
    return started


def test_the_shell_refuses_a_ram_only_meter_without_starting_the_watchdog(esp, monkeypatch,
                                                                          capsys):
    from test_board_definitions import FakePin, FakePad

    FakePartition.table = {}
    cfg = variant("esp32_devkitc", METROLOGY="simulated", RADIO="none")
    FakePin.pads[cfg.SKIP_APP_PIN] = FakePad(ext=1)  # BOOT released
    started = run_main(esp, monkeypatch, cfg)
    out = capsys.readouterr().out
    assert "not durable" in out and "not metering" in out and "ALLOW_RAM_ONLY" in out
    assert started == []  # no watchdog: the REPL stays usable for the fix


def test_the_shell_skips_the_application_on_the_boot_button(esp, monkeypatch, capsys):
    from test_board_definitions import FakePin, FakePad

    cfg = variant("esp32_devkitc", METROLOGY="simulated", RADIO="none")
    FakePin.pads[cfg.SKIP_APP_PIN] = FakePad(ext=0)  # BOOT held down
    FakePin.pads[cfg.PIN_RELAY] = pad = FakePad(ext=0)
    started = run_main(esp, monkeypatch, cfg)
    assert "application skipped" in capsys.readouterr().out
    assert started == [] and pad.mode is None  # nothing built: the relay pad untouched


@pytest.fixture(autouse=True)
def _no_module_leak(monkeypatch):
    monkeypatch.setitem(sys.modules, "board_config", types.ModuleType("board_config"))
    yield
