# Metrology front ends: each implements meter.hal.MetrologySource (poll(sample, now_ms)).
#
#   s0.S0PulseInput            S0 / LED pulse output (edge timestamps or a hardware counter)
#   bl0942.Bl0942              BL0942 metering IC over UART (sans-IO Bl0942Parser inside)
#   simulated.SimulatedHousehold  a household load profile for the host simulation and demos
#
# Modules are imported by name (lazily) so a board only loads the front end it has.
# Shared here: integer scaling; elapsed_ms (ticks wrap at 2**30) comes from meter.ticks.

from meter.ticks import elapsed_ms  # noqa: F401  (re-exported for the front ends)


def scale(x, num, den):
    """floor(x * num / den) for 0 <= x without an intermediate above den * num: exact, and
    allocation-free on a 31-bit small-int port while den * num < 2**30."""
    return (x // den) * num + (x % den) * num // den
