"""Energy registers: exact integer accounting, 8-digit wrap, settings checks."""

import random

import pytest
from hypothesis import assume, given, settings, strategies as st

from meter.metering.registers import (COUNT, FWD, LAG, LEAD, MODULO, REV, UNIT_DWH,
                                      EnergyRegisters, SettingError, count_size_dwh, delta)


def joules_per_count(regs):
    return regs.count_dwh() * 360


def test_a_simulated_year_of_load_loses_nothing_to_rounding():
    # one sample per second for 365 days of a varying household load, against an exact sum
    regs = EnergyRegisters(unit=0x02, coefficient=1)
    rng = random.Random(2026)
    exact = [0] * COUNT
    loads = [rng.randrange(0, 6000) for _ in range(997)]  # W, a prime-length pattern
    n = 365 * 86_400
    i = 0
    for t in range(n):
        w = loads[i]
        i = i + 1 if i < 996 else 0
        if t % 7 == 0:
            regs.add(REV, w // 3)
            exact[REV] += w // 3
        regs.add(FWD, w)
        exact[FWD] += w
    for reg in (FWD, REV):
        assert regs.total_joules(reg) == exact[reg]
        counts, rem = divmod(exact[reg], joules_per_count(regs))
        assert regs.count[reg] == counts % MODULO
        assert regs.rem_dwh[reg] * 360 + regs.rem_j[reg] == rem


@given(st.sampled_from(sorted(UNIT_DWH)), st.integers(1, 50),
       st.lists(st.integers(0, 10_000_000), max_size=200))
def test_any_sequence_of_additions_is_exact(unit, coefficient, adds):
    assume(UNIT_DWH[unit] * coefficient < 2 ** 29)
    regs = EnergyRegisters(unit=unit, coefficient=coefficient)
    for a in adds:
        regs.add(LAG, a)
    assert regs.total_joules(LAG) == sum(adds)
    assert 0 <= regs.rem_j[LAG] < 360
    assert 0 <= regs.rem_dwh[LAG] < regs.count_dwh()
    assert 0 <= regs.count[LAG] < MODULO


def test_counter_wraps_from_99999999_to_0():
    regs = EnergyRegisters(unit=0x04, coefficient=1)  # 360 J per count
    regs.restore(FWD, MODULO - 2, 0, 0)
    regs.add(FWD, 360 * 3)
    assert regs.count[FWD] == 1
    assert regs.wraps[FWD] == 1
    assert delta(regs.count[FWD], MODULO - 2) == 3


def test_registers_are_independent():
    regs = EnergyRegisters()
    regs.add(LEAD, 10 ** 6)
    assert regs.count[FWD] == regs.count[REV] == regs.count[LAG] == 0
    assert regs.total_joules(LEAD) == 10 ** 6


@pytest.mark.parametrize("unit,coefficient,code", [
    (0x05, 1, "E_UNIT"), (0xFF, 1, "E_UNIT"), (0x02, 0, "E_COEFFICIENT"),
    (0x02, -3, "E_COEFFICIENT"), (0x02, 1_000_000, "E_COEFFICIENT"),
    (0x02, 1.5, "E_COEFFICIENT"), (0x0D, 6, "E_COUNT_TOO_LARGE"),
])
def test_out_of_range_settings_are_rejected_with_a_code(unit, coefficient, code):
    with pytest.raises(SettingError) as e:
        EnergyRegisters(unit=unit, coefficient=coefficient)
    assert e.value.args[0] == code


def test_every_count_size_stays_a_small_int():
    for unit in UNIT_DWH:
        size = count_size_dwh(unit, 1)
        assert size * 360 < 2 ** 36 and size < 2 ** 30


def test_reconfiguring_a_running_register_is_refused_and_changes_nothing():
    regs = EnergyRegisters(unit=0x02, coefficient=1)
    regs.add(FWD, 1)
    with pytest.raises(SettingError):
        regs.configure(0x01, 1)
    assert regs.unit == 0x02 and regs.count_dwh() == 100
    fresh = EnergyRegisters()
    fresh.configure(0x01, 10)
    assert fresh.count_dwh() == 10_000


def test_restore_rejects_values_out_of_range_and_keeps_state():
    regs = EnergyRegisters()
    regs.add(FWD, 36_000 * 5)
    for bad in ((MODULO, 0, 0), (-1, 0, 0), (1, 100, 0), (1, 0, 360)):
        with pytest.raises(SettingError):
            regs.restore(FWD, *bad)
    assert regs.count[FWD] == 5


@settings(max_examples=50)
@given(st.integers(0, MODULO - 1), st.integers(0, MODULO - 1))
def test_delta_is_the_forward_distance(a, b):
    assert (b + delta(a, b)) % MODULO == a


def test_a_rejected_setting_raises_the_one_setting_error_with_its_code():
    from meter import errors

    with pytest.raises(errors.SettingError) as e:
        EnergyRegisters(unit=0x05)
    assert errors.code(e.value) == "E_UNIT"
    assert SettingError is errors.SettingError
