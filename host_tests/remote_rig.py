# Test rig for remote current control: a meter's limiter, breaker, reservation table,
# command processor and audit log on a virtual clock and a fake relay, plus a head-end.

from meter.control.audit import AuditLog
from meter.control.breaker import Breaker
from meter.control.command import CommandProcessor
from meter.events import EventLog
from meter.control.limiter import Limiter
from meter.storage.persist import (KIND_AUDIT, KIND_COUNTER, KIND_DRILL, KIND_LIMITER,
                                   KIND_RESERVATIONS)
from meter.control.reservations import ReservationTable
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


class FakeStore:
    """Keeps every saved blob per kind (copied, as the contract requires), and the order
    of all saves in `log` (kind, blob), so a power cut after any save can be replayed."""

    def __init__(self):
        self.blobs = {}
        self.log = []

    def save(self, kind, data):
        self.blobs.setdefault(kind, []).append(bytes(data))
        self.log.append((kind, bytes(data)))

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


class Rig:
    def __init__(self, wall_min=DAY, contract=60, min_over_ms=3000, reclose_ms=10_000,
                 max_recloses=3, max_duration_min=1440, store=None, relay=None,
                 clock=None, counter=0):
        self.clock = clock or VirtualClock(wall_s=wall_min * 60)
        self.relay = relay or FakeRelay(closed=True)
        self.events = EventLog(256)
        self.store = store or FakeStore()
        self.table = ReservationTable(self.events, self.store, ALLOWED, max_duration_min)
        self.breaker = Breaker(self.relay, self.events)
        self.limiter = Limiter(self.table, self.breaker, self.events, self.store, contract,
                               min_over_ms, reclose_ms, max_recloses)
        self.audit = AuditLog(self.store)
        self.proc = CommandProcessor(METER_ID, KEY, self.limiter, self.audit, self.events,
                                     self.store)
        self.he = HeadEnd(METER_ID, KEY, counter)

    def now(self):
        c = self.clock
        return c.ticks_ms(), c.wall_minute(), c.wall_second(), c.wall_valid()

    def minute(self):
        return self.clock.wall_minute()

    def tick(self, i_ma=0, i2_ma=-1, seconds=1):
        """Advance the clock one second at a time and run the limiter each second."""
        for _ in range(seconds):
            self.clock.advance(1000)
            self.limiter.tick(*self.now(), i_ma, i2_ma)

    def until_minute(self, minute, i_ma=0):
        while self.clock.wall_minute() < minute:
            self.tick(i_ma)

    def send(self, req, check_tag=True):
        """Deliver a request; returns the parsed, verified response."""
        return self.he.parse(self.proc.handle(req, *self.now()), check_tag)

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
        lim, d = self.limiter, self.limiter.drill
        return ([lim.over_ms, lim.opened_ms, lim.closed_ms, lim.demand_end_ms,
                 self.breaker.cmd_ms, d._over_ms, d._opened_ms, self.proc._win_ms]
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
                  contract=60, min_over_ms=self.limiter.min_over_ms,
                  reclose_ms=self.limiter.reclose_ms, max_recloses=self.limiter.max_recloses,
                  max_duration_min=self.table.max_duration_min)
        if s.latest(KIND_LIMITER):
            new.limiter.from_bytes(s.latest(KIND_LIMITER))
        if s.latest(KIND_RESERVATIONS):
            new.table.from_bytes(s.latest(KIND_RESERVATIONS))
        if s.latest(KIND_COUNTER):
            new.proc.restore_counter(s.latest(KIND_COUNTER))
        if s.latest(KIND_DRILL):
            new.limiter.drill.from_bytes(s.latest(KIND_DRILL))
        for blob in s.all(KIND_AUDIT):
            new.audit.restore(blob)
        new.limiter.start(*new.now())
        new.he = self.he  # the same head-end talks to the rebooted meter
        return new
