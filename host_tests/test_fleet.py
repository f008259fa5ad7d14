# The fleet simulation (tools/fleet.py): real meters (build_meter, host HAL, their own keys and
# flash images) against a real Mosquitto and the head-end, faults injected; the service levels
# of issue 12 asserted. The quick run is part of `make test`; the full one is `make fleet`.

import pytest

import fleet


def check(r):
    assert r["r30"] >= 99.7, r  # 30-minute values within 60 minutes
    assert r["r5"] >= 90.0 and r["r5_n"] > 0 and r["realtime_meters"] >= 1, r
    assert r["final30"] == 100.0 and r["final5"] == 100.0, r  # after drain and backfill
    assert r["differ"] == 0 and r["dup_rows"] == 0 and r["conflicts"] == 0, r
    assert r["rejected"] == 0 and r["rollbacks"] == 0, r
    assert fleet.targets_met(r)


def test_quick_fleet_meets_the_service_levels_through_every_fault():
    r = fleet.run(["--meters", "5", "--hours", "6", "--seed", "2"])
    check(r)
    inj = r["injected"]
    assert inj["uplink cut"] >= 1 and inj["broker restart"] >= 1
    assert inj["meter outage"] >= 1 and inj["power cut"] >= 1
    assert r["broker_starts"] == 1 + inj["broker restart"]
    assert r["last_gasp_alarms"] >= 1 and r["restorations"] >= 1  # the power cut, seen live
    assert r["sessions"] > r["meters"]  # reconnects after the faults
    assert r["final30_n"] >= 5 * 12 and r["final5_n"] >= 5 * 12 * 6
    assert "LAST GASP" in " ".join(r["alarm_lines"])
    print("\n" + fleet.format_table(r))


@pytest.mark.slow
def test_full_fleet_100_meters_one_simulated_day():
    r = fleet.run(["--meters", "100", "--hours", "24", "--seed", "1"])
    print("\n" + fleet.format_table(r))
    check(r)
