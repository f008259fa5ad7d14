"""Hold-up model: energy, hold-up time, capacitor sizing and the calculator tool."""

import pytest

from meter.outage import holdup
import holdup as holdup_tool


def test_reference_example_point_six_farad_for_a_watt_for_five_seconds():
    # 0.9 W for 5 s from 5.0 V down to 2.7 V at 85 %: about 0.6 F before derating
    profile = [(5000, 270)]  # 270 mA at 3.3 V = 0.89 W
    c = holdup.capacitance_mf(profile, 5000, 2700, 85, derate_pct=100)
    assert 580 <= c <= 600
    e = holdup.usable_energy_uj(c, 5000, 2700, 85)
    assert holdup.holdup_ms(e, profile) >= 5000


def test_hold_up_time_follows_the_profile_steps():
    e = holdup.profile_energy_uj([(100, 100), (200, 300)])
    assert holdup.holdup_ms(e, [(100, 100), (200, 300)]) == 300
    # half the energy of the second step runs out half way through it
    half = holdup.profile_energy_uj([(100, 100), (100, 300)])
    assert holdup.holdup_ms(half, [(100, 100), (200, 300)]) == 200


def test_energy_left_after_the_profile_is_spent_at_the_last_current():
    e = holdup.profile_energy_uj([(1000, 200)]) * 3
    assert holdup.holdup_ms(e, [(1000, 200)]) == 3000
    assert holdup.holdup_ms(e, [(1000, 200)], idle_ma=100) == 1000 + 4000


@pytest.mark.parametrize("args", [(0, 5000, 2700, 85), (600, 2700, 5000, 85),
                                  (600, 5000, 2700, 0), (600, 5000, 2700, 101)])
def test_impossible_parameters_are_rejected(args):
    with pytest.raises(ValueError):
        holdup.usable_energy_uj(*args)


def test_budget_keeps_a_fifth_in_reserve():
    h = {"cap_mf": 600, "v_start_mv": 5000, "v_min_mv": 2700, "eff_pct": 85,
         "profile": [(5000, 270)]}
    e = holdup.usable_energy_uj(600, 5000, 2700, 85)
    assert holdup.budget_ms(h) == holdup.holdup_ms(e, [(5000, 270)]) * 80 // 100


def test_calculator_tool_prints_time_and_size(capsys):
    assert holdup_tool.main(["time", "--cap-mf", "600", "--v-start", "5000", "--v-min", "2700",
                             "--eff", "85", "--profile", "5000:270"]) == 0
    out = capsys.readouterr().out
    assert "hold-up time" in out and "5068 ms" in out
    assert holdup_tool.main(["size", "--v-start", "5000", "--v-min", "2700", "--eff", "85",
                             "--profile", "5000:270"]) == 0
    assert "1184 mF" in capsys.readouterr().out
    assert holdup_tool.main(["time", "--cap-mf", "600", "--v-start", "2000", "--v-min", "2700",
                             "--eff", "85", "--profile", "5000:270"]) == 1
