"""The command counter space is renewed by epochs (REBASE), so a counter near its maximum
never locks the meter out and no request signed before a rebase acts after it; and an
expiry has an upper bound, so a captured request dies within MAX_EXPIRY_MIN
(meter.control.command, tools/headend.py; issue 11 item 3)."""

import struct

from meter.control import status as S
from meter.control.command import CMD_REBASE, MAX_EXPIRY_MIN, RESP_STATUS
from meter.events import TAMPER_AUTH
from meter.storage.persist import KIND_COUNTER

import headend
from headend import HeadEnd, parse_rebase, parse_status
from remote_rig import KEY, METER_ID, Rig

TOP = 0xFFFF_FFFF  # the largest counter a request can carry


# -- the expiry bound --------------------------------------------------------------------

def test_an_expiry_further_ahead_than_the_bound_is_refused_and_consumes_nothing():
    r = Rig(contract=60)
    m = r.minute()
    before = r.state()
    for far in (m + MAX_EXPIRY_MIN + 1, m + 525_600 * 10, 0x7FFF_FFFF):
        req = r.he.contract(30, far)
        assert r.send(req).status == S.E_EXPIRY_RANGE
    assert r.state() == before and r.proc.counter == 0
    assert r.audit.get(0)[5] == S.E_EXPIRY_RANGE
    assert r.send(r.he.contract(30, m + MAX_EXPIRY_MIN)).status == S.OK  # the bound itself


def test_a_request_at_the_bound_is_usable_for_at_most_that_long():
    r = Rig(contract=60)
    req = r.he.contract(30, r.minute() + MAX_EXPIRY_MIN)
    r.tick(seconds=MAX_EXPIRY_MIN * 60)
    assert r.send(req).status == S.E_EXPIRED and r.limiter.contract == 60


def test_with_an_invalid_clock_the_bound_cannot_be_checked_and_the_counter_guards_alone():
    r = Rig(contract=60)
    far = r.minute() + 525_600
    r.clock.invalidate()
    assert r.send(r.he.contract(30, far)).status == S.E_CLOCK  # scheduling needs a clock
    req = r.he.status(far)
    assert r.send(req).status == S.OK and r.send(req).status == S.E_REPLAY


def test_the_head_end_defaults_stay_inside_the_bound():
    assert headend.DEFAULT_EXPIRY_MIN <= headend.MAX_EXPIRY_MIN == MAX_EXPIRY_MIN


# -- counter renewal ---------------------------------------------------------------------

def test_a_counter_at_its_maximum_locks_out_every_command_but_a_rebase():
    r = Rig(contract=60)
    r.he.counter = TOP - 1
    assert r.send(r.he.status(r.exp())).status == S.OK  # counter 2**32 - 1
    assert r.proc.counter == TOP
    for c in (TOP, 1, 5):
        assert r.send(r.he.build(0x0B, b"", r.exp(), counter=c)).status == S.E_REPLAY
    resp = r.send(r.he.rebase(1, r.exp()))
    assert resp.status == S.OK and parse_rebase(resp.data) == (1, 0)
    assert r.he.adopt(resp) and (r.he.epoch, r.he.counter) == (1, 0)
    assert (r.proc.epoch, r.proc.counter) == (1, 0)
    resp = r.send(r.he.contract(30, r.exp()))
    assert resp.status == S.OK and resp.counter == 1 and r.limiter.contract == 30
    assert parse_status(resp.data).epoch == 1


def test_no_request_signed_before_a_rebase_acts_after_it():
    r = Rig(contract=60)
    he = r.he
    assert r.send(he.status(r.exp())).status == S.OK
    old = [he.contract(30, r.exp()), he.reset(r.exp()), he.status(r.exp())]  # never sent
    stale_rebase = he.rebase(1, r.exp())
    resp = r.send(he.rebase(1, r.exp()))
    assert he.adopt(resp)
    for k in range(5):  # counters of the new epoch pass the old ones' counters
        assert r.send(he.status(r.exp())).status == S.OK
    before = r.state()
    n_auth = len(r.events_of(TAMPER_AUTH))
    for req in old:
        assert r.send(req, check_tag=False).status == S.E_REPLAY
    assert r.send(stale_rebase, check_tag=False).status == S.E_REPLAY
    assert r.state() == before and r.limiter.contract == 60
    assert len(r.events_of(TAMPER_AUTH)) == n_auth + 4
    assert r.events_of(TAMPER_AUTH)[-1][4] == S.E_REPLAY


def test_a_rebase_cannot_be_replayed_go_back_or_skip_epochs():
    r = Rig()
    req = r.he.rebase(1, r.exp())
    assert r.he.adopt(r.send(req))
    assert r.send(req).status == S.E_REPLAY  # signed in the epoch it ended
    assert r.he.adopt(r.send(r.he.rebase(2, r.exp())))
    for e in (2, 1):
        resp = r.send(r.he.rebase(e, r.exp()))
        assert resp.status == S.E_REPLAY and r.proc.epoch == 2
    assert r.send(r.he.rebase(4, r.exp())).status == S.E_RANGE
    # a REBASE is guarded by its epoch, not by the counter (0 is below any consumed one)
    assert r.he.adopt(r.send(r.he.build(CMD_REBASE, b"\x00\x03", r.exp(), counter=0)))
    assert r.proc.epoch == 3


def test_a_request_two_epochs_old_is_forged_for_the_meter():
    r = Rig()
    ancient = r.he.status(r.exp())
    assert r.he.adopt(r.send(r.he.rebase(1, r.exp())))
    assert r.he.adopt(r.send(r.he.rebase(2, r.exp())))
    assert r.send(ancient, check_tag=False).status == S.E_MAC


def test_the_epoch_survives_a_reboot_and_old_epoch_requests_stay_refused():
    r = Rig()
    old = r.he.contract(20, r.exp())
    assert r.he.adopt(r.send(r.he.rebase(1, r.exp())))
    assert r.send(r.he.status(r.exp())).status == S.OK
    b = r.reboot()
    assert (b.proc.epoch, b.proc.counter) == (1, 1)
    assert b.send(old, check_tag=False).status == S.E_REPLAY
    assert b.send(b.he.status(b.exp())).status == S.OK


def test_a_counter_record_written_before_epochs_restores_as_epoch_0():
    r = Rig()
    r.proc.restore_counter(struct.pack(">BI", 1, 41))
    assert (r.proc.epoch, r.proc.counter) == (0, 41)
    r.he.counter = 41
    assert r.send(r.he.status(r.exp())).status == S.OK
    assert r.store.latest(KIND_COUNTER) == struct.pack(">BHI", 2, 0, 42)


def test_a_rebase_that_cannot_be_made_durable_changes_nothing():
    r = Rig()
    r.store.refuse(KIND_COUNTER)
    before = r.state()
    resp = r.send(r.he.rebase(1, r.exp()))
    assert resp.status == S.E_NOT_DURABLE and not r.he.adopt(resp)
    assert r.state() == before and r.proc.epoch == 0
    r.store.accept()
    assert r.send(r.he.status(r.exp())).status == S.OK  # still epoch 0


def test_a_rebase_is_checked_like_any_request_but_needs_no_clock():
    r = Rig()
    m = r.minute()
    he = r.he
    assert r.send(he.rebase(1, m)).status == S.E_EXPIRED
    assert r.send(he.rebase(1, m + MAX_EXPIRY_MIN + 1)).status == S.E_EXPIRY_RANGE
    assert r.send(he.build(CMD_REBASE, b"\x01", r.exp())).status == S.E_MALFORMED
    forged = bytearray(he.rebase(1, r.exp()))
    forged[20] ^= 1
    assert r.send(bytes(forged), check_tag=False).status == S.E_MAC
    assert r.proc.epoch == 0
    r.clock.invalidate()
    assert he.adopt(r.send(he.rebase(1, m + 5)))  # a meter without a clock can be renewed
    assert r.proc.epoch == 1


def test_the_head_end_signs_for_its_epoch_and_reminds_to_rebase_past_rebase_at():
    he = HeadEnd(METER_ID, KEY, counter=headend.REBASE_AT - 1)
    assert not he.rebase_due()
    he.status(0)
    assert he.rebase_due()
    r = Rig()
    e1 = HeadEnd(METER_ID, KEY, epoch=1)
    assert r.proc.handle(e1.status(r.exp()), r.now())[RESP_STATUS] == S.E_MAC


def test_headend_cli_rebases_and_keeps_the_epoch_in_its_state_file(tmp_path, capsys):
    import json
    r = Rig()
    m = r.minute()
    state = str(tmp_path / "he.json")
    common = ["--meter-id", METER_ID.decode(), "--key-hex", KEY.hex(), "--state", state,
              "--expiry", str(m + 5)]
    headend.main(common + ["rebase"])
    raw = r.proc.handle(bytes.fromhex(capsys.readouterr().out.strip()), r.now())
    headend.main(common + ["parse", "--hex", raw.hex()])
    assert "rebase #1: ok" in capsys.readouterr().out
    assert json.load(open(state)) == {"counter": 0, "epoch": 1}
    headend.main(common + ["status"])
    out = capsys.readouterr().out.strip()
    raw = r.proc.handle(bytes.fromhex(out), r.now())
    assert raw[RESP_STATUS] == S.OK
    headend.main(common + ["parse", "--hex", raw.hex()])
    assert "counter epoch 1" in capsys.readouterr().out


def test_the_last_epoch_is_usable_and_cannot_be_left():
    r = Rig()
    r.proc.restore_counter(struct.pack(">BHI", 2, 0xFFFE, 9))
    r.he.epoch, r.he.counter = 0xFFFE, 9
    assert r.he.adopt(r.send(r.he.rebase(0xFFFF, r.exp())))
    assert r.send(r.he.status(r.exp())).status == S.OK
    assert r.send(r.he.build(CMD_REBASE, b"\x00\x00", r.exp())).status == S.E_REPLAY
