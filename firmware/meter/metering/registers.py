# Energy registers: 8-digit cumulative counters fed with integer energy, nothing lost to rounding.
#
# Each register counts in "counts" of size coefficient (ECHONET D3) x unit (E1) kWh and
# wraps 99,999,999 -> 0 (D7 = 8 digits). Energy arrives in W*s (J) per metrology sample.
# The sub-count remainder is carried in two integer stages so that every value stays a
# small int (< 2**30) on a 31-bit-small-int port:
#   stage 1: J -> deci-watt-hours (1 dWh = 0.1 Wh = 360 J), remainder _j < 360
#   stage 2: dWh -> counts (count = coefficient x unit, in dWh), remainder _d < count size
# Invariant (exact, for any sequence of additions):
#   total J added == ((wraps * 10**8 + count) * count_dwh + _d) * 360 + _j
#
# Indices into the register array (one array for the four registers, see EnergyRegisters).

from micropython import const

from meter.errors import SettingError  # noqa: F401  (re-exported: registers raise it)

_J_PER_DWH = const(360)
MODULO = const(100_000_000)  # 8 digits
DIGITS = const(8)
NO_DATA = const(0xFFFFFFFE)  # ECHONET "no data" for cumulative values
_MAX_COUNT_DWH = const(1 << 29)  # largest count size whose remainder stays a small int
MAX_COEFFICIENT = const(999_999)

# ECHONET E1 unit code -> size of one unit in dWh (0.1 Wh).
UNIT_DWH = {
    0x00: 10_000,  # 1 kWh
    0x01: 1_000,  # 0.1 kWh
    0x02: 100,  # 0.01 kWh
    0x03: 10,  # 0.001 kWh
    0x04: 1,  # 0.0001 kWh
    0x0A: 100_000,  # 10 kWh
    0x0B: 1_000_000,  # 100 kWh
    0x0C: 10_000_000,  # 1000 kWh
    0x0D: 100_000_000,  # 10000 kWh
}

FWD = const(0)  # active energy, forward (import): ECHONET E0
REV = const(1)  # active energy, reverse (export): ECHONET E3
LAG = const(2)  # reactive energy, lagging (inductive)
LEAD = const(3)  # reactive energy, leading (capacitive)
COUNT = const(4)


def count_size_dwh(unit, coefficient):
    """Size of one register count in dWh; raises SettingError for a rejected setting."""
    if unit not in UNIT_DWH:
        raise SettingError("E_UNIT")
    if not isinstance(coefficient, int) or coefficient < 1 or coefficient > MAX_COEFFICIENT:
        raise SettingError("E_COEFFICIENT")
    size = UNIT_DWH[unit] * coefficient
    if size > _MAX_COUNT_DWH:
        raise SettingError("E_COUNT_TOO_LARGE")
    return size


class EnergyRegisters:
    """The four cumulative registers (FWD, REV, LAG, LEAD) sharing one unit and coefficient.

    Reactive registers use the same count size as active ones (kvarh for kWh)."""

    def __init__(self, unit=0x02, coefficient=1):
        self.unit = unit
        self.coefficient = coefficient
        self._count_dwh = count_size_dwh(unit, coefficient)
        # Plain lists of small ints: item assignment allocates nothing.
        self.count = [0] * COUNT  # 0..99,999,999
        self.rem_dwh = [0] * COUNT  # 0..count_dwh-1
        self.rem_j = [0] * COUNT  # 0..359
        self.wraps = [0] * COUNT  # number of 99,999,999 -> 0 roll-overs since reset

    def configure(self, unit, coefficient):
        """Change unit/coefficient. Only allowed while every register is zero (a new meter):
        rescaling a running register would alter stored values."""
        size = count_size_dwh(unit, coefficient)
        for i in range(COUNT):
            if self.count[i] or self.rem_dwh[i] or self.rem_j[i] or self.wraps[i]:
                raise SettingError("E_REGISTERS_NOT_ZERO")
        self.unit = unit
        self.coefficient = coefficient
        self._count_dwh = size

    def add(self, reg, joules):
        """Add a non-negative integer energy in J (or var*s) to register reg."""
        j = self.rem_j[reg] + joules
        if j < _J_PER_DWH:
            self.rem_j[reg] = j
            return
        d = j // _J_PER_DWH
        self.rem_j[reg] = j - d * _J_PER_DWH
        d += self.rem_dwh[reg]
        size = self._count_dwh
        if d < size:
            self.rem_dwh[reg] = d
            return
        c = d // size
        self.rem_dwh[reg] = d - c * size
        c += self.count[reg]
        while c >= MODULO:
            c -= MODULO
            self.wraps[reg] += 1
        self.count[reg] = c

    def value(self, reg):
        return self.count[reg]

    def count_dwh(self):
        return self._count_dwh

    def total_joules(self, reg):
        """Exact energy added since reset (host-side checks; may be a long int)."""
        counts = self.wraps[reg] * MODULO + self.count[reg]
        return (counts * self._count_dwh + self.rem_dwh[reg]) * _J_PER_DWH + self.rem_j[reg]

    def restore(self, reg, count, rem_dwh, rem_j, wraps=0):
        """Load a register from storage; values are range-checked, nothing is changed on error."""
        if not (0 <= count < MODULO and 0 <= rem_dwh < self._count_dwh
                and 0 <= rem_j < _J_PER_DWH and wraps >= 0):
            raise SettingError("E_RESTORE_RANGE")
        self.count[reg] = count
        self.rem_dwh[reg] = rem_dwh
        self.rem_j[reg] = rem_j
        self.wraps[reg] = wraps


def delta(newer, older):
    """Counts between two readings of an 8-digit register, across one wrap."""
    d = newer - older
    if d < 0:
        d += MODULO
    return d
