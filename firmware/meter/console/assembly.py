# The console sub-assembly: meter.assembly.build_meter() calls build_console() when the
# CONSOLE setting is on and the board has a console port (hal.console, meter.hal.BenchConsole).
#
# It puts the injection wrappers between the board's parts and the runtime (Meter.power_good
# and Meter.metrology; the HAL keeps the real parts) and builds the Console over the meter.
# With CONSOLE off (the default: a production build) none of this exists, so no fault can be
# injected at all; with it on, only the console drives the wrappers, and only in bench mode
# after a challenge-response.

from meter.console.auth import ConsoleAuth
from meter.console.console import Console, BENCH_S
from meter.console.inject import InjectedLoad, InjectedPowerGood


def build_console(meter, hal, key, bench_s=BENCH_S, max_power_w=40_000, nominal_v_dv=1000):
    """The Console of `meter` (built, not booted) on hal.console; wraps meter.power_good
    (when fitted) and meter.metrology. key: the per-meter key (or None); the bench key is
    hal.console.key. Returns the console (also set as meter.console)."""
    parts = hal.console
    power = None
    if meter.power_good is not None:
        power = InjectedPowerGood(meter.power_good)
        meter.power_good = power
    load = InjectedLoad(meter.metrology, nominal_v_dv, meter.metering, power)
    meter.metrology = load
    auth = ConsoleAuth(meter.meter_id, key, parts.key, hal.random)
    c = Console(meter, parts.port, auth, power, load, parts.bench, bench_s, max_power_w)
    meter.console = c
    return c
