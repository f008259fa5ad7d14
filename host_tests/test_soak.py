"""A sample of the soak run (make soak runs 30 days): two days of outages, cuts, reboots."""

import soak


def test_two_days_of_outages_reboots_and_clock_changes_keep_every_invariant(capsys):
    assert soak.main(["--days", "2", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "all invariants held" in out
    assert "reboots 0 " not in out  # the sample really rebooted the meter
