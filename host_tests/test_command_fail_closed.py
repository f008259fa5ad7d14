"""Commands fail closed: a request whose counter cannot be made durable is refused
E_NOT_DURABLE before anything runs, on a fake store told to refuse, on a meter that keeps
nothing, and on the product's journal filled by a burst of commands faster than compaction
and then cut off from power (meter.control.command, issue 11 item 3)."""

from meter.control import status as S
from meter.control.assembly import build_control, restore_control
from meter.events import EventLog, TAMPER_AUTH
from meter.storage.persist import KIND_AUDIT, KIND_COUNTER, KIND_LIMITER
from hosthal.flash import NorFlash
from hosthal.pins import FakeRelay

from headend import HeadEnd, parse_status
from remote_rig import ALLOWED, KEY, METER_ID, Rig
from test_command import flash_store


def test_a_command_whose_counter_cannot_be_made_durable_is_refused_and_runs_nothing():
    r = Rig(contract=60)
    assert r.send(r.he.status(r.exp())).status == S.OK
    r.store.refuse(KIND_COUNTER)
    req = r.he.contract(30, r.exp())
    before = r.state()  # limiter, table, demand, drill and the counter bytes
    resp = r.send(req)
    assert resp.status == S.E_NOT_DURABLE and resp.data == b""
    assert r.state() == before and r.limiter.contract == 60 and r.proc.counter == 1
    assert r.audit.get(0)[4:6] == (0x06, S.E_NOT_DURABLE)  # audited ...
    assert r.events_of(TAMPER_AUTH) == []  # ... but it is no attack
    # it never ran, so it may run once the journal takes the counter again, and only once
    r.store.accept()
    assert r.send(req).status == S.OK and r.limiter.contract == 30
    assert r.send(req).status == S.E_REPLAY


def test_every_kind_of_command_is_refused_before_its_operation_when_the_counter_is_refused():
    r = Rig(contract=20, max_recloses=0)
    m = r.minute()
    r.reserve(2, m + 1, m + 5, 10)
    r.tick(30_000, seconds=4)  # a lock-out a remote reset could clear
    r.store.refuse(KIND_COUNTER)
    he = r.he
    before = r.state()
    for req in (he.create(3, m + 2, m + 4, 10, r.exp()), he.cancel(2, r.exp()),
                he.contract(30, r.exp()), he.reset(r.exp()), he.drill(10, 30, r.exp()),
                he.status(r.exp()), he.ack_tamper(r.exp()), he.build(0x7E, b"", r.exp())):
        assert r.send(req).status == S.E_NOT_DURABLE
    assert r.state() == before and not r.relay.commanded()


def test_an_audit_entry_the_journal_refuses_stays_in_ram_and_is_reported_unsaved():
    r = Rig()
    r.store.refuse()  # the journal is full: nothing at all can be saved
    saved = len(r.store.all(KIND_AUDIT))
    assert r.send(r.he.status(r.exp())).status == S.E_NOT_DURABLE
    assert r.audit.n == 1 and r.audit.unsaved == 1 and len(r.store.all(KIND_AUDIT)) == saved
    r.store.accept()
    s = parse_status(r.send(r.he.status(r.exp())).data)
    assert s.unsaved == 1 and r.audit.get(1)[5] == S.E_NOT_DURABLE


def test_an_operation_whose_own_save_is_refused_is_lost_by_a_power_cut_never_repeated():
    # The only refusal that can leave a command half done is the operation's own save,
    # which comes after the counter: the operation is then lost by a power cut, never
    # repeated (the counter is durable).
    r = Rig(contract=60)
    r.store.refuse(KIND_LIMITER)
    req = r.he.contract(40, r.exp())
    assert r.send(req).status == S.OK and r.limiter.contract == 40
    b = r.reboot()
    assert b.limiter.contract == 60 and b.send(req).status == S.E_REPLAY


def test_a_meter_that_keeps_nothing_refuses_every_command():
    events = EventLog(32)
    ctl = build_control(FakeRelay(True), events, None, METER_ID, KEY, ALLOWED, 60, 1440)
    assert restore_control(ctl, None) == 0
    rig = Rig()  # only for its clock and head-end
    he = HeadEnd(METER_ID, KEY)
    before = (ctl.limiter.to_bytes(), ctl.table.to_bytes(), ctl.commands.counter_bytes())
    for req in (he.status(rig.exp()), he.contract(30, rig.exp()), he.reset(rig.exp())):
        resp = he.parse(ctl.commands.handle(req, rig.now()))
        assert resp.status == S.E_NOT_DURABLE
    assert (ctl.limiter.to_bytes(), ctl.table.to_bytes(),
            ctl.commands.counter_bytes()) == before
    assert ctl.audit.n == 3 and ctl.audit.unsaved == 3


def test_a_burst_faster_than_compaction_then_a_power_cut_never_lets_a_request_run_twice():
    # The scenario on the product's journal: commands arrive faster than the idle
    # loop compacts (it never runs here), so the small journal fills; then the power is
    # cut and the same signed requests are delivered again to the rebooted meter.
    dev = NorFlash(16)
    r = Rig(contract=60, store=flash_store(dev))
    sent = []  # (request, status, state before, state after)
    for k in range(400):
        req = r.he.contract(50 if k % 2 else 40, r.exp())
        before = r.state()
        st = r.send(req).status
        sent.append((req, st, before, r.state()))
        if st == S.E_NOT_DURABLE and sum(1 for s in sent if s[1] == S.E_NOT_DURABLE) == 5:
            break
    statuses = [s[1] for s in sent]
    assert S.OK in statuses and statuses[-1] == S.E_NOT_DURABLE  # the journal did fill
    assert set(statuses) == {S.OK, S.E_NOT_DURABLE}
    for req, st, before, after in sent:
        if st == S.E_NOT_DURABLE:
            assert after == before  # refused before anything ran
    image = dev.image()  # the flash as the power cut will leave it
    # (without the cut, the idle loop's compaction makes room and commands run again)
    for _ in range(16):
        r.store.compact_step()
    assert r.send(sent[-1][0]).status == S.OK  # refused before, so it may run: once
    cut = flash_store(NorFlash(16, image))
    b = r.reboot(store=cut)
    last_ok = max(i for i, s in enumerate(sent) if s[1] == S.OK)
    assert b.proc.counter == last_ok + 1  # every OK answer had a durable counter
    for req, st, _, _ in sent:
        if st == S.OK:
            before = b.state()
            assert b.send(req).status == S.E_REPLAY and b.state() == before
