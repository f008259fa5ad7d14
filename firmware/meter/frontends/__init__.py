# Metrology front ends: each implements meter.hal.MetrologySource (poll(sample, now_ms)).
#
#   s0.S0PulseInput            S0 / LED pulse output (edge timestamps or a hardware counter)
#   bl0942.Bl0942              BL0942 metering IC over UART (sans-IO Bl0942Parser inside)
#   simulated.SimulatedHousehold  a household load profile for the host simulation and demos
#
# Modules are imported by name (lazily) so a board only loads the front end it has.
# Shared here: the elapsed-time helper for monotonic ms that wrap at 2**30 (MicroPython's
# ticks period on 32-bit ports); it also accepts the host's unwrapped virtual ms.

from micropython import const

_TICKS_MASK = const(0x3FFF_FFFF)  # 2**30 - 1
_TICKS_HALF = const(0x2000_0000)  # 2**29


def elapsed_ms(now, then):
    """now - then for ms stamps that wrap at 2**30; valid while the gap is < 2**29 ms."""
    return ((now - then + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF


def scale(x, num, den):
    """floor(x * num / den) for 0 <= x without an intermediate above den * num: exact, and
    allocation-free on a 31-bit small-int port while den * num < 2**30."""
    return (x // den) * num + (x % den) * num // den
