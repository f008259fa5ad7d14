# Reset cause as the meter's reset kinds (logged in the STARTUP event).
#
# The ESP32 reports a brown-out as a power-on reset, so RESET_POWER_ON covers both: an
# outage is told apart by the firmware's own persisted running flag (the Last Gasp record
# in the journal), not by this value.

from micropython import const
import machine

RESET_OTHER = const(0)
RESET_POWER_ON = const(1)  # power-on or brown-out
RESET_HARD = const(2)  # EN pin / machine.reset()
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
