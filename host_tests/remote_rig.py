# Test rig for remote current control: a meter's limiter, breaker, reservation table,
# command processor and audit log on a virtual clock and a fake relay, plus a head-end.
# The parts are built and restored as the meter builds them (meter.control.assembly).

from meter.clock import Now
from meter.control.assembly import build_control, restore_control
from meter.events import EventLog
from meter.storage.persist import (KIND_AUDIT, KIND_COUNTER, KIND_DRILL, KIND_LIMITER,
                                   KIND_RESERVATIONS)
from hosthal.clock import VirtualClock
from hosthal.pins import FakeRelay

from headend import HeadEnd, parse_record

METER_ID = b"TEST0001"
KEY = bytes(range(1, 33))
DAY = 9_500 * 1440  # a wall minute in 2026, 00:00
ALLOWED = (10, 15, 20, 30, 40, 50, 60)


TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms() wraps here


def wrapping_clock(wall_min=DAY, before_wrap_ms=5000):
    """A virtual clock whose ticks_ms() starts before_wrap_ms short of the 2**30 wrap:
    ticks_ms() = (start + elapsed) & (2**30 - 1), as on the board after 12.4 days."""
    return VirtualClock(wall_s=wall_min * 60, ticks_start=TICKS_PERIOD - before_wrap_ms)


class FakeSaver:
    """The save-only handle of one kind on a FakeStore."""

    def __init__(self, store, kind):
        self.store = store
        self.kind = kind

    def save(self, data):
        return self.store.save(self.kind, data)


class FakeStore:
    """A store of the meter.storage.persist contract (saver/latest/all) that keeps every
    saved blob per kind (copied, as the contract requires), and the order of all saves in
    `log` (kind, blob), so a power cut after any save can be replayed. A save returns True
    (durable) unless the store was told to refuse its kind (refuse(): a full journal),
    then False and nothing is kept (counted in `refused`)."""

    def __init__(self):
        self.blobs = {}
        self.log = []
        self.refusing = ()  # kinds whose saves are refused
        self.refused = 0

    def refuse(self, *kinds):
        """Refuse the saves of these kinds from now on (no kinds: every kind)."""
        self.refusing = kinds or (KIND_LIMITER, KIND_RESERVATIONS, KIND_COUNTER, KIND_AUDIT,
                                  KIND_DRILL)

    def accept(self):
        self.refusing = ()

    def saver(self, kind):
        return FakeSaver(self, kind)

    def save(self, kind, data):
        if kind in self.refusing:
            self.refused += 1
            return False
        self.blobs.setdefault(kind, []).append(bytes(data))
        self.log.append((kind, bytes(data)))
        return True

    def cut_after(self, n):
        """The store as a power cut after the first n saves left it."""
        s = FakeStore()
        for kind, blob in self.log[:n]:
            s.save(kind, blob)
        return s

    def latest(self, kind):
        return self.blobs.get(kind, [None])[-1]

    def all(self, kind):
        return list(self.blobs.get(kind, []))


class FakeTamper:
    """A tamper register as the command processor sees it (Store.tamper_pending and
    Store.ack_tamper in the meter): evidence stands until acknowledged; `acks` logs the
    minute of each acknowledgement; durable=False makes it fail to persist one."""

    def __init__(self, pending=True):
        self.standing = pending
        self.durable = True
        self.acks = []

    def pending(self):
        return self.standing

    def ack(self, now):
        self.acks.append(now.ev_minute)
        self.standing = False
        return self.durable


class Rig:
    def __init__(self, wall_min=DAY, contract=60, min_over_ms=3000, reclose_ms=10_000,
                 max_recloses=3, max_duration_min=1440, store=None, relay=None,
                 clock=None, counter=0, tamper=None):
        self.clock = clock or VirtualClock(wall_s=wall_min * 60)
        self.relay = relay or FakeRelay(closed=True)
        self.events = EventLog(256)
        self.store = store or FakeStore()
        self.tamper = tamper
        self.ctl = build_control(self.relay, self.events, self.store, METER_ID, KEY, ALLOWED,
                                 contract, max_duration_min, min_over_ms, reclose_ms,
                                 max_recloses,
                                 ack_tamper=tamper.ack if tamper is not None else None,
                                 tamper_pending=tamper.pending if tamper is not None else None)
        self.table = self.ctl.table
        self.breaker = self.ctl.breaker
        self.limiter = self.ctl.limiter
        self.audit = self.ctl.audit
        self.proc = self.ctl.commands
        self.he = HeadEnd(METER_ID, KEY, counter)

    def now(self):
        """The clock's reading as a meter.clock.Now (a new one each call)."""
        return Now().read(self.clock)

    def minute(self):
        return self.clock.wall_minute()

    def tick(self, i_ma=0, i2_ma=-1, seconds=1):
        """Advance the clock one second at a time and run the limiter each second."""
        for _ in range(seconds):
            self.clock.advance(1000)
            self.limiter.tick(self.now(), i_ma, i2_ma)

    def until_minute(self, minute, i_ma=0):
        while self.clock.wall_minute() < minute:
            self.tick(i_ma)

    def send(self, req, check_tag=True):
        """Deliver a request; returns the parsed, verified response."""
        return self.he.parse(self.proc.handle(req, self.now()), check_tag)

    def exp(self, minutes=5):
        return self.clock.wall_minute() + minutes

    def reserve(self, rid, start, end, limit, drill=False):
        """Create, read back and confirm a reservation; returns the confirm response."""
        r = self.send(self.he.create(rid, start, end, limit, self.exp(), drill))
        assert r.status == 0, r
        back = parse_record(self.send(self.he.read(rid, self.exp())).data)
        return self.send(self.he.confirm(rid, back.digest, self.exp()))

    def events_of(self, code):
        return [self.events.get(k) for k in range(self.events.n - 1, -1, -1)
                if self.events.get(k)[1] == code]

    def state(self):
        """Everything a command may change (audit log excluded)."""
        return self.control_state() + (self.proc.counter_bytes(),)

    def control_state(self):
        """What a command's operation may change: state() without the command counter."""
        return (self.limiter.to_bytes(), self.table.to_bytes(), self.limiter.demand_a,
                self.limiter.drill.to_bytes())

    def stamps(self):
        """Every monotonic ms stamp the control code keeps (each must be a ticks value)."""
        lim, d = self.limiter.rule, self.limiter.drill.rule
        return ([lim.over_ms, lim.opened_ms, lim.closed_ms, self.limiter.demand_end_ms,
                 self.breaker.cmd_ms, d.over_ms, d.opened_ms, d.closed_ms, self.proc._win_ms]
                + list(self.table.act_ms))

    def reboot(self, wall_min=None, valid=True, relay_closed=None, store=None):
        """A new meter process restored from this rig's store, or from `store` (same relay
        unless given). Its monotonic clock restarts at 0, as after a power-on."""
        clock = VirtualClock(wall_s=(wall_min if wall_min is not None
                                     else self.clock.wall_minute()) * 60)
        if not valid:
            clock.invalidate()
        relay = self.relay
        if relay_closed is not None:
            relay = FakeRelay(closed=relay_closed)
        s = store or self.store
        new = Rig(store=s, relay=relay, clock=clock, counter=self.he.counter,
                  tamper=self.tamper, contract=60, min_over_ms=self.limiter.min_over_ms,
                  reclose_ms=self.limiter.reclose_ms, max_recloses=self.limiter.max_recloses,
                  max_duration_min=self.table.max_duration_min)
        assert restore_control(new.ctl, s) == 0
        new.limiter.start(new.now())
        new.he = self.he  # the same head-end talks to the rebooted meter
        return new
