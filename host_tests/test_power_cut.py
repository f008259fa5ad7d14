"""Power-cut campaign (sample): a simulated day with minute commits, compaction, clock jumps
and outages, cut after flash steps spread over the whole day; every reboot keeps the
registers of a complete commit, loses at most one minute of energy, keeps every captured
interval exactly, verifies the seal chain and runs on. The exhaustive run is
tools/power_cut_campaign.py."""

import pytest

import power_cut_campaign as C

PARTS = 3
STRIDE = 11  # ~400 cut points per part, plus every erase
RUN_ON = 4  # the run-on reboot on every 4th cut point


@pytest.fixture(scope="module")
def trace():
    return C.run_scenario()


def sample(tr, part):
    pts = list(C.cut_points(tr))
    chosen = set(pts[part::STRIDE * PARTS])
    chosen |= {(i, 0) for i, op in enumerate(tr.ops) if op[0] == "e" and i % PARTS == part}
    return sorted(chosen)


def test_the_scenario_covers_a_day_of_commits_compaction_clock_jumps_and_outages(trace):
    kinds = {op[0] for op in trace.ops}
    assert kinds == {"p", "e"}
    assert len(trace.groups) > 1400  # a commit a minute over a day
    erases = sum(1 for op in trace.ops if op[0] == "e")
    assert erases > C.SECTORS  # compaction went round the whole partition
    assert len(trace.half) >= 45 and len(trace.five) >= 270


@pytest.mark.parametrize("part", range(PARTS))
def test_every_sampled_cut_point_is_survived(trace, part):
    points = sample(trace, part)
    assert len(points) > 350
    tried, failures = C.campaign(trace, points, run_on=RUN_ON)
    assert tried == len(points)
    assert failures == [], failures[:3]


def test_the_checks_catch_a_rollback_and_an_invented_interval(trace):
    op = trace.groups[700][0]
    image = bytearray(b"\xff" * (C.SECTORS * 4096))
    for i in range(op):
        C._apply(image, trace.ops[i])
    assert C.check_cut(trace, bytes(image), op, 0, run_on=False) == []
    # pretend the meter had committed more than it restores: a rollback must be caught
    ci = C._checkpoint_index(trace, op)
    saved = trace.checkpoints[ci].regs, trace.checkpoints[ci].total
    try:
        c = trace.checkpoints[ci]
        c.regs = ((c.regs[0][0] + 1,) + c.regs[0][1:],) + c.regs[1:]
        c.total += 10 ** 9
        fails = C.check_cut(trace, bytes(image), op, 0, run_on=False)
        assert any("committed state" in f for f in fails)
        assert any("backwards" in f for f in fails)
    finally:
        trace.checkpoints[ci].regs, trace.checkpoints[ci].total = saved
    # an interval value that differs from the measured one must be caught
    b = max(x for x in trace.minute if x <= trace.checkpoints[ci].hw)
    saved_v = trace.minute[b]
    try:
        trace.minute[b] = (saved_v[0] + 1, saved_v[1])
        fails = C.check_cut(trace, bytes(image), op, 0, run_on=False)
        assert any("altered or invented" in f for f in fails)
    finally:
        trace.minute[b] = saved_v
