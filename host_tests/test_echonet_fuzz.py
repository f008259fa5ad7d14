"""A representative fuzz sample (5k random and mutated frames) through the ECHONET
service and the stream reassembler; the >= 100k campaign is tools/echonet_fuzz.py."""

import pytest

from echonet_fuzz import run


def test_five_thousand_hostile_frames_never_crash_and_never_change_the_meter():
    rate, c = run(5000, seed=20261128)
    assert c["received"] == 5000
    # every outcome class was exercised
    for key in ("malformed", "unknown_eoj", "ignored", "replied", "sna", "refused",
                "error_short", "error_ehd", "error_truncated", "error_trailing",
                "error_esv", "error_oversize"):
        assert c[key] > 0, key
    assert c["replies_well_formed"] == c["replied"]
    assert c["stream_frames"] > 0


@pytest.mark.slow
def test_the_full_campaign_of_a_hundred_thousand_frames():
    rate, c = run(100_000, seed=1)
    assert c["received"] == 100_000 and c["replies_well_formed"] == c["replied"]
