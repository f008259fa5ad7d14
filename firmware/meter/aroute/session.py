# The A-route connection manager: a meter.hal.Link and an MQTT client kept connected with
# jittered exponential back-off, driven by poll(now_ms) from the shell's loop.
#
# poll() never blocks and does bounded work: one step of a pending connect, at most
# _READS readinto() calls of the preallocated rx buffer, one client.poll(), one write.
# Steady state (UP, idle or acknowledging) allocates nothing.
#
# Attempt timing (Backoff): the first connect after boot waits a uniform delay in
# [0, first_max_ms], so the meters of an area that lost mains together do not reconnect
# together; each failed attempt (link refused, connect or CONNACK timeout, session dropped
# before it was healthy) waits a "full jitter" delay uniform in [base/2, min(cap, base*2**n)]
# for the n-th failure in a row; a session that stayed UP for healthy_ms resets n.

from micropython import const

from meter.aroute import mqtt
from meter.errors import SettingError
from meter.hal import LINK_CLOSED, LINK_OPEN
from meter.ticks import add_ms, elapsed_ms

WAIT = const(0)  # waiting for the next attempt
OPENING = const(1)  # link connecting (TCP, then TLS)
CONNECTING = const(2)  # CONNECT sent, waiting for CONNACK
UP = const(3)
CLOSED = const(4)  # close() called: no attempts until resume()

E_LINK = "E_LINK"  # the link failed to open or raised OSError
E_PEER_CLOSED = "E_PEER_CLOSED"  # the broker closed the TCP connection
E_CONNECT_TIMEOUT = "E_CONNECT_TIMEOUT"  # not UP within connect_timeout_ms of open()
E_CLOSED = "E_CLOSED"  # close(): the owner ended the session

_READS = const(4)  # readinto() calls per poll (bounded work: 4 x len(rx) bytes at most)
_RAND_BITS = const(24)  # random bits per draw: products stay small ints
_MAX_SPAN = const(0xFF_FFFF)  # longest delay (ms, ~4.6 h) one 24-bit draw covers


class Backoff:
    """Reconnect delays from `random` (callable(n) -> n random bytes, e.g. os.urandom)."""

    def __init__(self, random, base_ms=2_000, cap_ms=300_000, first_max_ms=60_000):
        if not 0 < base_ms <= cap_ms <= _MAX_SPAN or not 0 <= first_max_ms <= _MAX_SPAN:
            raise SettingError("E_BACKOFF")
        self.random = random
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.first_max_ms = first_max_ms
        self.failures = 0  # failed attempts since the last healthy session

    def uniform(self, lo, hi):
        """A uniform integer in [lo, hi] (24 random bits, rejection sampling: no bias)."""
        span = hi - lo + 1
        if span <= 1:
            return lo
        limit = ((1 << _RAND_BITS) // span) * span
        while True:
            b = self.random(3)
            r = (b[0] << 16) | (b[1] << 8) | b[2]
            if r < limit:
                return lo + r % span

    def first_delay(self):
        return self.uniform(0, self.first_max_ms)

    def ceiling(self, n):
        """The upper end of the n-th delay: min(cap, base * 2**n)."""
        hi = self.base_ms
        for _ in range(n):
            hi <<= 1
            if hi >= self.cap_ms:
                return self.cap_ms
        return hi

    def next_delay(self):
        """The delay after one more failure."""
        d = self.uniform(self.base_ms >> 1, self.ceiling(self.failures))
        self.failures += 1
        return d

    def reset(self):
        self.failures = 0


def _nop0():
    pass


def _nop1(a):
    pass


class Session:
    def __init__(self, link, client, backoff, now_ms, connect_timeout_ms=10_000,
                 healthy_ms=60_000, rx_size=256, first=True):
        self.link = link
        self.client = client
        self.backoff = backoff
        self.connect_timeout_ms = connect_timeout_ms
        self.healthy_ms = healthy_ms
        self._rx = bytearray(rx_size)
        self._rxmv = memoryview(self._rx)
        self.state = WAIT
        self.up = False
        self._t = now_ms  # WAIT: when to attempt; OPENING/CONNECTING: when open() ran;
        self._up_at = now_ms  # UP: since when
        self._next = add_ms(now_ms, backoff.first_delay() if first else 0)
        self.connects = 0  # sessions that reached UP
        self.attempts = 0  # link opens tried
        self.failures = 0  # attempts that never reached UP
        self.drops = 0  # sessions lost after UP
        self.last_error = None
        self.on_up = _nop0
        self.on_down = _nop1  # on_down(E_ code) when an UP session ends

    def next_attempt_in(self, now_ms):
        """ms until the next attempt (WAIT only; 0 otherwise)."""
        if self.state != WAIT:
            return 0
        d = elapsed_ms(self._next, now_ms)
        return d if d > 0 else 0

    def poll(self, now_ms):
        """Drive the link and the client; True while the session is UP."""
        st = self.state
        if st == UP or st == CONNECTING:
            return self._pump(now_ms)
        if st == WAIT:
            if elapsed_ms(now_ms, self._next) < 0:
                return False
            self.attempts += 1
            self._t = now_ms
            try:
                self.link.open()
            except OSError:
                self._drop(now_ms, E_LINK)
                return False
            self.state = st = OPENING
        if st == OPENING:
            try:
                ls = self.link.status()
            except OSError:
                ls = LINK_CLOSED
            if ls == LINK_OPEN:
                self.client.start(now_ms)
                self.state = CONNECTING
                return self._pump(now_ms)
            if ls == LINK_CLOSED:
                self._drop(now_ms, E_LINK)
            elif elapsed_ms(now_ms, self._t) >= self.connect_timeout_ms:
                self._drop(now_ms, E_CONNECT_TIMEOUT)
        return False

    def _pump(self, now_ms):
        c = self.client
        link = self.link
        try:
            for _ in range(_READS):
                if not c.can_take(len(self._rx)):
                    break  # tx full: the bytes wait in the socket (TCP flow control)
                n = link.readinto(self._rx)
                if n < 0:
                    return self._drop(now_ms, E_PEER_CLOSED)
                if n == 0:
                    break
                e = c.received(self._rxmv, now_ms, n)
                if e:
                    return self._drop(now_ms, e)
            e = c.poll(now_ms)
            if e:
                return self._drop(now_ms, e)
            out = c.outgoing()
            if len(out):
                n = link.write(out)
                if n:
                    c.written(n)
        except OSError:
            return self._drop(now_ms, E_LINK)
        if self.state == CONNECTING:
            if c.state == mqtt.UP:
                self.state = UP
                self.up = True
                self._up_at = now_ms
                self.connects += 1
                self.on_up()
            elif elapsed_ms(now_ms, self._t) >= self.connect_timeout_ms:
                return self._drop(now_ms, E_CONNECT_TIMEOUT)
        return self.up

    def _drop(self, now_ms, code):
        was_up = self.up
        self.last_error = code
        self.link.close()
        self.client.lost()
        self.up = False
        if was_up:
            self.drops += 1
            if elapsed_ms(now_ms, self._up_at) >= self.healthy_ms:
                self.backoff.reset()
        else:
            self.failures += 1
        self.state = WAIT
        self._next = add_ms(now_ms, self.backoff.next_delay())
        if was_up:
            self.on_down(code)
        return False

    def drop(self, now_ms, code):
        """The owner judged the link stale (a message unacknowledged after its retries):
        close it without a DISCONNECT (the broker publishes the Will, as for any lost link)
        and attempt again after the back-off."""
        if self.state != CLOSED:
            self._drop(now_ms, code)

    def close(self):
        """Orderly end: DISCONNECT (so the broker drops the Will) written as far as the link
        takes it now, then the link closed. No attempts until resume()."""
        was_up = self.up
        if was_up and self.client.disconnect():
            try:
                out = self.client.outgoing()
                if len(out):
                    self.link.write(out)
            except OSError:
                pass
        self.link.close()
        self.client.lost()
        self.up = False
        self.state = CLOSED
        if was_up:
            self.on_down(E_CLOSED)

    def resume(self, now_ms, delay_ms=0):
        """After close(): attempt again delay_ms from now."""
        if self.state == CLOSED:
            self.state = WAIT
            self._next = add_ms(now_ms, delay_ms)
