# Hold-up capacitor budget: how long the Last Gasp sequence can run after mains fails.
#
# Usable energy of a capacitor discharged from v1 to v2 through a converter of efficiency
# eff:  E = C * (v1^2 - v2^2) / 2 * eff.  The sequence draws a current profile of steps
# (duration ms, current mA) at the regulated rail voltage; the budget is the time until the
# profile has used E. Integer units: capacitance mF, voltages mV, energy uJ, time ms.
# Run at boot and in tools/holdup.py (long ints are fine there: not on a hot path).

from micropython import const

_RAIL_MV = const(3300)


def usable_energy_uj(cap_mf, v_start_mv, v_min_mv, eff_pct):
    """uJ delivered to the rail: mF * mV^2 / 2000 = uJ, times efficiency."""
    if cap_mf <= 0 or v_start_mv <= v_min_mv or v_min_mv < 0 or not 0 < eff_pct <= 100:
        raise ValueError("E_HOLDUP_PARAMS")
    return cap_mf * (v_start_mv * v_start_mv - v_min_mv * v_min_mv) // 2000 * eff_pct // 100


def profile_energy_uj(profile, rail_mv=_RAIL_MV):
    """uJ used by a whole profile [(ms, mA), ...] at the rail voltage."""
    total = 0
    for ms, ma in profile:
        total += ms * ma * rail_mv // 1000
    return total


def holdup_ms(energy_uj, profile, rail_mv=_RAIL_MV, idle_ma=None):
    """Time the energy lasts for the profile; after the profile's last step the draw stays
    at idle_ma (default: the last step's current). Returns ms."""
    t = 0
    left = energy_uj
    for ms, ma in profile:
        step = ms * ma * rail_mv // 1000  # uJ
        if step >= left:
            return t + left * 1000 // (ma * rail_mv) if ma else t + ms
        left -= step
        t += ms
    tail_ma = idle_ma if idle_ma is not None else (profile[-1][1] if profile else 0)
    if tail_ma <= 0:
        return t  # nothing drawn after the profile: report the profile length
    return t + left * 1000 // (tail_ma * rail_mv)


def capacitance_mf(profile, v_start_mv, v_min_mv, eff_pct, derate_pct=200, rail_mv=_RAIL_MV):
    """Capacitance (mF, rounded up) that carries the whole profile, times derating %."""
    need = profile_energy_uj(profile, rail_mv) * 100 // eff_pct
    swing = v_start_mv * v_start_mv - v_min_mv * v_min_mv
    if swing <= 0:
        raise ValueError("E_HOLDUP_PARAMS")
    c = -(-need * 2000 // swing)
    return -(-c * derate_pct // 100)


def budget_ms(holdup):
    """Budget for the sequence from a board definition's HOLDUP dict, keeping 20 % margin."""
    e = usable_energy_uj(holdup["cap_mf"], holdup["v_start_mv"], holdup["v_min_mv"],
                         holdup["eff_pct"])
    return holdup_ms(e, holdup["profile"]) * 80 // 100
