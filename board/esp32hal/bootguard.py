# Boot guard: what the shell decides before the meter starts, so a broken deployment stays
# recoverable over USB and a crash loop ends in safe mode instead of a reset storm.
#
# Recovery (the frozen main.py always runs, so the check is in it, before the watchdog):
#   - the flag file SKIP_PATH (/skip_app) on the board's filesystem, or
#   - the board's SKIP_APP_PIN (board_config: the BOOT button) held at its active level
#     during the first SKIP_WINDOW_MS of main.py (tap EN/RESET, then press and hold BOOT at
#     once: held through the reset itself the ROM enters its download mode instead)
#   skips the application: no HAL, no watchdog, the relay pad stays held, the REPL is free.
#   From a running (or crash-looping) meter: Ctrl-C in the REPL within the watchdog timeout,
#   `open("/skip_app", "w").close()`, then reset; `mpremote rm :/skip_app` and reset resume.
# Crash counter (RTC memory slot rtcmem.CRASHES, cleared at power-on): +1 at each boot after a
# crash reset (resetcause.crashed: panic, watchdog, the supervisor's machine.reset()),
# cleared once the supervisor reports healthy_ms of healthy running. At SAFE_AFTER or more
# the meter boots in safe mode: metering and storage only (no radio, no B-route, no remote
# commands; the limiter keeps the relay and ends a scheduled limit on time).

from micropython import const

from esp32hal import rtcmem
from esp32hal.resetcause import crashed

SKIP_PATH = "/skip_app"
SKIP_WINDOW_MS = const(500)  # how long main.py watches the skip pin at start-up
_SKIP_POLL_MS = const(10)
SAFE_AFTER = const(3)  # crash resets in a row that put the meter in safe mode
HALT_AFTER = const(6)  # ... after which a boot that fails stays in the REPL (main.py)
_COUNT_MAX = const(255)


def skip_file(path=SKIP_PATH):
    import os

    try:
        os.stat(path)
        return True
    except OSError:
        return False


def skip_pin(cfg, sleep_ms, window_ms=SKIP_WINDOW_MS):
    """True when cfg.SKIP_APP_PIN reads cfg.SKIP_APP_LEVEL at any poll in the window
    (internal pull-up on, for a button to GND). No pin configured: False at once."""
    pin = getattr(cfg, "SKIP_APP_PIN", None)
    if pin is None:
        return False
    from machine import Pin

    p = Pin(pin, Pin.IN, Pin.PULL_UP)
    level = getattr(cfg, "SKIP_APP_LEVEL", 0)
    for _ in range(window_ms // _SKIP_POLL_MS + 1):
        if p.value() == level:
            return True
        sleep_ms(_SKIP_POLL_MS)
    return False


def skip_requested(cfg, sleep_ms):
    """The application must not start (recovery): the flag file, or the skip pin held."""
    return skip_file() or skip_pin(cfg, sleep_ms)


def start():
    """At boot, before the HAL: the reset kind, RTC memory validated (cleared on power-on
    or brown-out), and this boot's crash count. Returns (kind, CrashCounter)."""
    from esp32hal.resetcause import RESET_POWER_ON, reset_kind

    kind = reset_kind()
    rtcmem.load(power_on=kind == RESET_POWER_ON)
    return kind, CrashCounter(kind)


class CrashCounter:
    """The crash-loop count in RTC memory. Build once per boot, after rtcmem.load()."""

    def __init__(self, kind, safe_after=SAFE_AFTER):
        n = rtcmem.get(rtcmem.CRASHES)
        if crashed(kind):
            n = min(n + 1, _COUNT_MAX)
            rtcmem.put(rtcmem.CRASHES, n)
        self.count = n  # crash resets in a row, this boot included
        self.safe_mode = n >= safe_after

    def clear(self):
        """Healthy running: the next crash starts the count again (this boot's mode stays)."""
        if rtcmem.get(rtcmem.CRASHES):
            rtcmem.put(rtcmem.CRASHES, 0)


def ram_only_allowed(cfg):
    """A meter without durable storage meters only when the board says so explicitly."""
    return getattr(cfg, "ALLOW_RAM_ONLY", False) is True
