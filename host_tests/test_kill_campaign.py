"""SIGKILLs of the running simulation (crashes): no served E0/E3 is lower after the restart.

A small sample of tools/kill_campaign.py (the long run: hundreds of kills, its own target)."""

import kill_campaign


def test_a_simulation_killed_at_random_moments_never_serves_a_lower_register(tmp_path):
    c = kill_campaign.Campaign(str(tmp_path), kill_campaign.free_addr(), seed=3)
    ok = c.run(kills=5, max_life_s=0.8)
    assert ok, c.failures
    assert c.states.get("used", 0) >= 4  # every crash restart ran on from retained memory
    assert c.states.get("blank", 0) == 2  # the fresh start and the start after Ctrl-C
    assert c.high[0xE0] > 0 and c.reads > 0
