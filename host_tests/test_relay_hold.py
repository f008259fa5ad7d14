"""The relay holds through every reset: the board's relay pad (esp32hal.pins.RelayPins on the
fake ESP32 Pin of test_board_definitions, which models pad hold, chip reset and power-on) is
read before anything drives it, re-applied at that level with hold=True, held after every
change; a whole meter rebooted by a watchdog reset, panic, soft reset or a brown-out that
kept the hold never moves a closed contact."""

import importlib
import sys

import pytest

from test_board_definitions import FakePin, FakeRTC, variant
from test_board_definitions import esp_env

KEY = b"relay-hold-test-key-0123456789ab"


@pytest.fixture
def esp(monkeypatch):
    yield from esp_env(monkeypatch)
PWRON, HARD, WDT, SOFT = 1, 2, 3, 5


def relay_pad(cfg):
    return FakePin.pads[cfg.PIN_RELAY]


def wire(esp, cfg):
    """Board wiring before the first boot: the relay driver's external pull."""
    from test_board_definitions import FakePad

    FakePin.pads[cfg.PIN_RELAY] = FakePad(ext=cfg.RELAY_PULL)


def reboot(esp, monkeypatch, cause, pads=None):
    """A reset: pads None (soft reset: the chip is not reset), "reset" (a chip reset that
    keeps held pads: WDT, panic, machine.reset, a brown-out that kept the hold) or
    "power_on" (hold lost). Fresh esp32hal modules, as after a reboot."""
    if pads is not None:
        for pad in FakePin.pads.values():
            pad.chip_reset(pads == "power_on")
    if pads == "power_on":
        FakeRTC.mem = b""
    esp.machine.reset_cause = lambda: cause
    for m in [m for m in sys.modules if m == "esp32hal" or m.startswith("esp32hal.")]:
        del sys.modules[m]
    for name in ("esp32hal.clock", "esp32hal.s0input", "esp32hal.entropy"):
        monkeypatch.setattr(importlib.import_module(name), "time", esp.time)
    factory = importlib.import_module("esp32hal.factory")
    monkeypatch.setattr(factory, "SECRETS_PATH", "/nonexistent/secrets.json")
    return factory


def boot_meter(esp, factory, cfg):
    from meter.assembly import build_meter

    hal = factory.build_hal(cfg)
    hal.power_good._pin.level = cfg.POWER_GOOD_LEVEL
    m = build_meter(hal, cfg, key=KEY)
    m.boot(hal.reset_kind)
    for _ in range(3):
        esp.time.ms += 1000
        m.step()
    return hal, m


def breaker_events(m):
    from meter import events as ev

    return m.events.count(ev.BREAKER_CLOSE) + m.events.count(ev.BREAKER_OPEN)


def breaker_events_since_boot(m):
    """BREAKER_CLOSE/OPEN logged after this boot's STARTUP event (seqs)."""
    from meter import events as ev

    start = m.events.newest(ev.STARTUP)[0]
    return [e for e in (m.events.get(k) for k in range(m.events.n))
            if e[1] in (ev.BREAKER_CLOSE, ev.BREAKER_OPEN) and e[0] > start]


# --- the driver -------------------------------------------------------------------------------

def test_a_held_closed_pad_is_read_and_re_held_without_an_edge(esp):
    from esp32hal.pins import RelayPins

    r = RelayPins(26, 35, closed_level=1)
    r.command(True)
    pad = FakePin.pads[26]
    assert pad.held and pad.wire() == 1
    pad.chip_reset(power_on=False)  # a watchdog reset: registers cleared, the pad held
    assert pad.wire() == 1
    before = list(pad.history)
    r2 = RelayPins(26, 35, closed_level=1)
    assert r2.commanded() and pad.held and pad.wire() == 1
    assert pad.history == before  # no edge at all: the contact never moved


def test_every_change_is_held_and_survives_a_chip_reset(esp):
    from esp32hal.pins import RelayPins

    r = RelayPins(26, None, closed_level=1)
    pad = FakePin.pads[26]
    for closed in (True, False, True):
        r.command(closed)
        assert pad.held and pad.wire() == (1 if closed else 0)
        pad.out = 1 - pad.out  # a stray register write while held reaches nothing
        assert pad.wire() == (1 if closed else 0)
    pad.chip_reset(power_on=False)
    assert pad.wire() == 1 and r.operations == 3


def test_after_power_on_the_pad_reads_its_external_pull_through_the_input_buffer(esp):
    """Active-low driver with a pull-up: an unconfigured pad reads 0 (input buffer off after
    reset), which would pass for 'closed'; reading it as Pin.IN gives the pull, open."""
    from test_board_definitions import FakePad
    from esp32hal.pins import RelayPins

    FakePin.pads[4] = FakePad(ext=1)
    assert FakePin(4).value() == 0  # Pin(pin) alone: nothing configured, GPIO_IN reads 0
    r = RelayPins(4, None, closed_level=0)
    pad = FakePin.pads[4]
    assert not r.commanded() and pad.held and pad.wire() == 1 and pad.history == [1]


def test_construction_drives_the_level_it_read_not_zero(esp):
    """The old driver, Pin(pin, Pin.OUT), drove the register's 0 the moment the hold was
    released: a closed contact held through a reset opened."""
    from esp32hal.pins import RelayPins

    RelayPins(26, None, closed_level=1).command(True)
    pad = FakePin.pads[26]
    pad.chip_reset(power_on=False)
    r = RelayPins(26, None, closed_level=1)
    r.command(True)  # the limiter confirming the restored state changes nothing
    assert pad.history[-1] == 1 and pad.history.count(0) == 1  # only the initial 0


# --- a whole meter through resets ---------------------------------------------------------------

@pytest.mark.parametrize("cause, pads", [(WDT, "reset"), (HARD, "reset"), (SOFT, None),
                                         (PWRON, "reset")],
                         ids=["watchdog", "panic", "soft_reset", "brown_out_hold_kept"])
def test_a_reset_with_the_contact_closed_leaves_it_closed(esp, monkeypatch, cause, pads):
    cfg = variant("esp32_devkitc", METROLOGY="simulated", RADIO="none")
    wire(esp, cfg)
    hal, m = boot_meter(esp, esp.factory, cfg)
    pad = relay_pad(cfg)
    assert hal.relay.commanded() and pad.wire() == 1 and pad.held  # closed at first boot
    assert breaker_events(m) == 1  # BREAKER_CLOSE R_BOOT: from the floating open state
    before = list(pad.history)
    factory = reboot(esp, monkeypatch, cause, pads)
    hal2, m2 = boot_meter(esp, factory, cfg)
    assert hal2.relay.commanded() and pad.wire() == 1 and pad.held
    assert pad.history == before  # not one edge through the reset and the boot
    assert hal2.relay.operations == 0 and not breaker_events_since_boot(m2)


def test_a_reset_with_the_contact_open_by_the_limiter_leaves_it_open(esp, monkeypatch):
    from meter.control.trip import LOCKED

    cfg = variant("esp32_devkitc", METROLOGY="simulated", RADIO="none")
    wire(esp, cfg)
    hal, m = boot_meter(esp, esp.factory, cfg)
    lim = m.limiter
    lim.rule.state = LOCKED  # as after a trip with every re-close used, persisted
    lim.breaker.command(False, m.now)
    lim.save()
    pad = relay_pad(cfg)
    assert pad.wire() == 0 and pad.held
    before = list(pad.history)
    factory = reboot(esp, monkeypatch, WDT, "reset")
    hal2, m2 = boot_meter(esp, factory, cfg)
    assert not hal2.relay.commanded() and pad.history == before


def test_a_power_cut_drops_the_hold_and_the_boot_closes_with_a_logged_reason(esp, monkeypatch):
    from meter import events as ev

    cfg = variant("esp32_devkitc", METROLOGY="simulated", RADIO="none")
    wire(esp, cfg)
    boot_meter(esp, esp.factory, cfg)
    pad = relay_pad(cfg)
    factory = reboot(esp, monkeypatch, PWRON, "power_on")
    assert pad.wire() == cfg.RELAY_PULL == 0  # unpowered: the de-energised, open state
    hal2, m2 = boot_meter(esp, factory, cfg)
    assert hal2.relay.commanded() and pad.wire() == 1 and pad.held
    assert m2.events.newest(ev.BREAKER_CLOSE) is not None
