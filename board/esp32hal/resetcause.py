# Reset cause as the meter's reset kinds (logged in the STARTUP event, a: kind).
#
# What machine.reset_cause() really reports on the ESP32 port (ports/esp32/modmachine.c maps
# esp_reset_reason()), and what the meter does with each kind:
#
#   reported          real causes                       RTC memory, pad hold  meter
#   PWRON_RESET       power-on, brown-out, EN pin        not trusted, lost     RESET_POWER_ON
#                     (the ESP32 never reports EXT)
#   HARD_RESET        machine.reset() (ESP_RST_SW),     kept                  RESET_HARD
#                     panic / unhandled exception in C
#   WDT_RESET         machine.WDT (task WDT), interrupt  kept                  RESET_WDT
#                     WDT, RTC WDT
#   DEEPSLEEP_RESET   wake from deep sleep               kept                  RESET_DEEPSLEEP
#   SOFT_RESET        Ctrl-D / machine.soft_reset()      kept (chip not reset) RESET_SOFT
#   0 (other)         SDIO, unknown                      treated as kept       RESET_OTHER
#
# RESET_POWER_ON: rtcmem.load(power_on=True) clears RTC memory (clock validity, crash
# counter, retained registers: the journal alone restores), the relay pad is not held and
# reads its external pull (the de-energised state). A brown-out cannot be told from a power
# cut here: the Last Gasp record in the journal tells an outage apart.
# RESET_HARD, RESET_WDT: a crash (or the supervisor's reset): counted by bootguard's crash
# counter (safe mode after repeated ones); RTC memory, the retained registers and the held
# relay level carry over. RESET_SOFT, RESET_DEEPSLEEP: maintenance / wake, not counted.

from micropython import const
import machine

RESET_OTHER = const(0)
RESET_POWER_ON = const(1)  # power-on, brown-out or EN pin
RESET_HARD = const(2)  # machine.reset() or a panic
RESET_WDT = const(3)
RESET_DEEPSLEEP = const(4)
RESET_SOFT = const(5)

_CAUSES = (
    ("PWRON_RESET", RESET_POWER_ON),
    ("HARD_RESET", RESET_HARD),
    ("WDT_RESET", RESET_WDT),
    ("DEEPSLEEP_RESET", RESET_DEEPSLEEP),
    ("SOFT_RESET", RESET_SOFT),
)


def reset_kind():
    cause = machine.reset_cause()
    for name, kind in _CAUSES:
        if cause == getattr(machine, name, None):
            return kind
    return RESET_OTHER


def crashed(kind):
    """True for the resets nobody asked for from outside: a panic, a watchdog, or the
    supervisor's machine.reset() after a task kept failing."""
    return kind == RESET_HARD or kind == RESET_WDT
