# The B-route pump: one radio-module slot, swap detection, module authentication, and the
# loop that feeds received ECHONET frames to the service and sends the replies.
#
# Slot states: EMPTY (nothing fitted), PENDING (fitted, not yet authenticated), REJECTED
# (answered the challenge wrongly: never used until removed), ACTIVE (authenticated; opened
# and carrying traffic). detect() is the board's view of the slot: it returns the module
# object fitted now, or None; a different object than before means a swap. Metering never
# waits on any of this: the B-route only reads the core, so a swap loses no data.

from micropython import const

from meter.events import BROUTE_MODULE

EMPTY = const(0)
PENDING = const(1)
REJECTED = const(2)
ACTIVE = const(3)
STATE_NAMES = ("empty", "pending", "rejected", "active")

# EventLog BROUTE_MODULE argument a (b is the slot state after the event)
EV_FITTED = const(1)
EV_REMOVED = const(2)
EV_AUTH_OK = const(3)
EV_AUTH_FAIL = const(4)
EV_LINK_UP = const(5)
EV_LINK_DOWN = const(6)
EV_OPEN_FAIL = const(7)

_POWER_FAIL = const(1)  # notify_power kinds: meter.outage.lastgasp MSG_LAST_GASP / MSG_RESTORED

# counters (index into BRoute.count)
FITTED = const(0)
REMOVED = const(1)
AUTH_OK = const(2)
AUTH_FAIL = const(3)
RX = const(4)
TX = const(5)
IO_ERRORS = const(6)
ANNOUNCED = const(7)
COUNTERS = const(8)
COUNTER_NAMES = ("fitted", "removed", "auth_ok", "auth_fail", "rx", "tx", "io_errors",
                 "announced")


class BRoute:
    """service: echonet.service.Service; auth: radio.auth.ModuleAuth; detect(): module or
    None; nonce(n): n fresh random bytes (os.urandom on the board); events: EventLog."""

    def __init__(self, service, auth, detect, nonce, events=None, budget=8):
        self.service = service
        self.auth = auth
        self.detect = detect
        self.nonce = nonce
        self.events = events
        self.budget = budget  # most frames handled per poll
        self.module = None
        self.state = EMPTY
        self.link = False
        self.count = [0] * COUNTERS
        self._tx = memoryview(service.tx.buf)
        self._minute = -1
        self._second = 0
        self._power_pending = 0  # a restoration notice waiting for the link

    def poll(self, now):
        """One B-route step at `now` (meter.clock.Now); returns the number of frames
        handled."""
        now_ms = now.ms
        self._minute = now.ev_minute
        self._second = now.second
        m = self.detect()
        if m is not self.module:
            if self.module is not None:
                self._removed()
            if m is not None:
                self._fitted(m)
        if m is None:
            return 0
        if self.state == PENDING:
            self._authenticate(m, now_ms)
        if self.state != ACTIVE:
            return 0
        try:
            m.poll(now_ms)
            up = m.link_up()
        except OSError:
            self.count[IO_ERRORS] += 1
            up = False
        if up != self.link:
            self.link = up
            self._log(EV_LINK_UP if up else EV_LINK_DOWN)
            if up:
                if self._power_pending:
                    self.notify_power(self._power_pending)  # 0x80 = 0x30, then D5
                else:
                    self.announce()
        if not up:
            return 0
        svc = self.service
        handled = 0
        while handled < self.budget:
            try:
                n, addr = m.recvfrom_into(svc.rx)
            except OSError:
                self.count[IO_ERRORS] += 1
                break
            if n <= 0:
                break
            handled += 1
            self.count[RX] += 1
            r = svc.handle(svc.rx, n, now)
            if r:
                dest = addr
                if svc.to_group:
                    group = m.notify_addr()
                    if group is not None and group != addr:
                        self._send(m, r, group)
                self._send(m, r, dest)  # the requester hears an INF even off-group
        return handled

    def announce(self):
        """Instance-list notification (INF 0xD5) where the active module sends
        notifications (its group, or its one peer)."""
        m = self.module
        if m is None or self.state != ACTIVE:
            return False
        dest = m.notify_addr()
        if dest is None:
            return False
        r = self.service.announce()
        self.count[ANNOUNCED] += 1
        return self._send(m, r, dest)

    def notify_power(self, kind):
        """Tell the HEMS about a power failure (kind 1, Last Gasp: operation status 0x80
        announced as 0x31) or its end (kind 2: 0x80 = 0x30, then the instance list as at
        start-up). Best effort: only an active module with a link carries it."""
        objs = self.service.objects
        if not objs:
            return False
        meter = objs[0]
        meter.operating = kind != _POWER_FAIL
        m = self.module
        if m is None or self.state != ACTIVE or not self.link:
            # a restoration is announced when the link comes back (see poll)
            self._power_pending = 0 if kind == _POWER_FAIL else kind
            return False
        self._power_pending = 0
        n = self.service.notify(meter, 0x80)
        dest = m.notify_addr()
        if not n or dest is None:
            return False
        sent = self._send(m, n, dest)
        if kind != _POWER_FAIL:
            self.announce()
        return sent

    def suspend(self):
        """Radios off (Last Gasp): close the active module; the link counts as down."""
        m = self.module
        if m is not None and self.state == ACTIVE:
            try:
                m.close()
            except OSError:
                self.count[IO_ERRORS] += 1
        if self.link:
            self.link = False
            self._log(EV_LINK_DOWN)

    def resume(self):
        """Radios on again: reopen the active module (only an authenticated one); the link
        and any pending power notice follow at the next poll."""
        m = self.module
        if m is not None and self.state == ACTIVE:
            try:
                m.open()
            except OSError:
                self.count[IO_ERRORS] += 1

    def state_name(self):
        return STATE_NAMES[self.state]

    def _send(self, m, n, dest):
        try:
            m.sendto(self._tx[:n], dest)
        except OSError:
            self.count[IO_ERRORS] += 1
            return False
        self.count[TX] += 1
        return True

    def _fitted(self, m):
        try:
            m.reset()
        except OSError:
            self.count[IO_ERRORS] += 1
        self.module = m
        self.state = PENDING
        self.link = False
        self.count[FITTED] += 1
        self._log(EV_FITTED)

    def _removed(self):
        m = self.module
        self.module = None
        self.link = False
        if self.state == ACTIVE:
            try:
                m.close()
            except OSError:
                self.count[IO_ERRORS] += 1
        self.state = EMPTY
        self.count[REMOVED] += 1
        self._log(EV_REMOVED)

    def _authenticate(self, m, now_ms):
        # A module may need time to identify itself (a UART module asks its firmware):
        # it is polled, unused for traffic, until identity() answers.
        try:
            m.poll(now_ms)
            ident = m.identity()
        except OSError:
            self.count[IO_ERRORS] += 1
            return
        if ident is None:
            return
        challenge = self.nonce(16)
        try:
            answer = m.respond(challenge)
        except (OSError, NotImplementedError):
            answer = None
        if not self.auth.verify(ident, challenge, answer):
            self.state = REJECTED
            self.count[AUTH_FAIL] += 1
            self._log(EV_AUTH_FAIL)
            return
        self.count[AUTH_OK] += 1
        try:
            m.open()
        except OSError:
            self.state = REJECTED
            self._log(EV_OPEN_FAIL)
            return
        self.state = ACTIVE
        self.service.set_limit(getattr(m, "mtu", 0))  # replies fit the module's datagrams
        self._log(EV_AUTH_OK)

    def _log(self, what):
        if self.events is not None:
            self.events.log(BROUTE_MODULE, self._minute, self._second, what, self.state)
