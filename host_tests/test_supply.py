"""ADC supply monitor: hysteresis between the fail and restore thresholds."""

import pytest

from meter.outage.supply import AdcPowerGood


def test_level_falls_below_fail_and_rises_only_above_restore():
    readings = iter([12000, 9000, 8400, 9500, 10200, 10600, 9000])
    pg = AdcPowerGood(lambda: next(readings), fail_mv=8500, restore_mv=10500)
    levels = [pg.value() for _ in range(7)]
    assert levels == [1, 1, 0, 0, 0, 1, 1]


def test_thresholds_must_leave_a_hysteresis_band():
    with pytest.raises(ValueError):
        AdcPowerGood(lambda: 0, fail_mv=9000, restore_mv=9000)
    with pytest.raises(ValueError):
        AdcPowerGood(lambda: 0, fail_mv=0, restore_mv=9000)


def test_an_adc_monitor_drives_the_last_gasp_machine(monkeypatch):
    from rigs import MeterRig
    rig = MeterRig()
    supply = {"mv": 12000}
    rig.meter.power_good = AdcPowerGood(lambda: supply["mv"], 8500, 10500)
    rig.seconds(5)
    supply["mv"] = 7000
    rig.load.mains = False
    rig.ms(100)
    assert rig.meter.lastgasp.failures == 1
    assert len(rig.alarms("last_gasp")) == 1
