# Remote current control under the MicroPython unix port: a full reservation cycle through
# signed commands, a forged command rejected, a command refused (fail closed) while its
# counter cannot be made durable, and an allocation-free per-second limiter
# evaluation (steady state, reservation start/end, trip, re-close, drill, unknown and
# absurd currents) under heap_lock, with ticks_ms stamps that wrap at 2**30 mid-run. The
# parts are built by meter.control.assembly, as the meter builds them, and driven with one
# preallocated meter.clock.Now.

import gc
import micropython
import struct
import time

from meter import mac

from meter.clock import Now
from meter.control import status
from meter.control.assembly import build_control
from meter.control.breaker import Breaker
from meter.control.command import (CMD_CREATE, CMD_READ, CMD_CONFIRM, CMD_CANCEL, CMD_RESET,
                                   CMD_DRILL, CMD_CONTRACT, RESP_STATUS, RESP_DATA_LEN,
                                   RESP_HEAD)
from meter.events import (EventLog, BREAKER_OPEN, BREAKER_CLOSE, BREAKER_FAULT, TAMPER_AUTH,
                          LIMIT_CHANGE)
from meter.control.limiter import Limiter, S_CLOSED, S_OPEN, S_LOCKED
from meter.ticks import add_ms
from meter.control.reservations import (ReservationTable, ACTIVE, ENDED, CANCELLED,
                                        ALLOWED_LIMITS)
from hosthal.pins import FakeRelay

METER = b"MPY00001"
KEY = b"k" * 32


DIGEST_AT = 13  # the digest's offset in a read-back record


class CountingSaver:
    """The save handle of one kind on a CountingStore; allocation-free. Durable (True)
    unless the store refuses (a full journal: False)."""

    def __init__(self, store, kind):
        self.store = store
        self.kind = kind

    def save(self, data):
        if self.store.refusing:
            return False
        self.store.saves += 1
        self.store.kinds |= 1 << self.kind
        return True


class CountingStore:
    """Counts saves and remembers the kinds seen; nothing to restore."""

    def __init__(self):
        self.saves = 0
        self.kinds = 0
        self.refusing = False

    def saver(self, kind):
        return CountingSaver(self, kind)


def request(hm, code, counter, expiry, args):
    body = struct.pack(">BB8sIiB", 1, code, METER, counter, expiry, len(args)) + args
    return body + hm.digest(body)


def response(resp):
    n = resp[RESP_DATA_LEN]
    assert mac.equal(hm.digest(resp[:RESP_HEAD + n]), resp[RESP_HEAD + n:]), "response MAC"
    return resp[RESP_STATUS], resp[RESP_HEAD:RESP_HEAD + n]


hm = mac.Hmac(KEY)
events = EventLog(128)
store = CountingStore()
relay = FakeRelay(True)
ctl = build_control(relay, events, store, METER, KEY, ALLOWED_LIMITS, 40, 1440, 3000, 10_000,
                    1)
table, breaker, lim, proc = ctl.table, ctl.breaker, ctl.limiter, ctl.commands
now = Now()  # the one preallocated reading, refilled every step

base = 9_500 * 1440
TICKS_MASK = 0x3FFFFFFF
ms = TICKS_MASK - 59_999  # ticks_ms() wraps 60 s in, inside the first heap-locked run
wall = base * 60  # seconds


def tick(i_ma, n=1):
    global ms, wall
    for _ in range(n):
        ms = add_ms(ms, 1000)  # (ms + 1000 would reach 2**30: a long int)
        wall += 1
        lim.tick(now.at(ms, wall // 60, wall % 60, True), i_ma, -1)


def send(code, counter, args):
    return response(proc.handle(request(hm, code, counter, wall // 60 + 5, args),
                                now.at(ms, wall // 60, wall % 60, True)))


# full cycle: create, read back, confirm with the digest, activate, trip, re-close, end
m = wall // 60
st, rec = send(CMD_CREATE, 1, struct.pack(">HiiBB", 3, m + 2, m + 4, 20, 0))
assert st == status.OK and len(rec) == 21
st, rec = send(CMD_READ, 2, struct.pack(">H", 3))
assert st == status.OK
digest = rec[DIGEST_AT:21]
st, _ = send(CMD_CONFIRM, 3, struct.pack(">H", 3) + digest)
assert st == status.OK
st, _ = send(CMD_CONFIRM, 3, struct.pack(">H", 3) + digest)
assert st == status.E_REPLAY

# fail closed: with the counter refused by the store nothing runs, and the same request
# runs once the store takes it
store.refusing = True
before = (lim.to_bytes(), table.to_bytes(), proc.counter_bytes())
st, _ = send(CMD_CONTRACT, 4, struct.pack(">B", 30))
assert st == status.E_NOT_DURABLE and (lim.to_bytes(), table.to_bytes(),
                                       proc.counter_bytes()) == before, st
store.refusing = False
st, _ = send(CMD_CONTRACT, 4, struct.pack(">B", 40))
assert st == status.OK and lim.contract == 40 and proc.counter == 4

# a forged reset (bad MAC) and a wrong digest change nothing
before = (lim.to_bytes(), table.to_bytes(), proc.counter)
forged = bytearray(request(hm, CMD_RESET, 9, m + 5, b""))
forged[-3] ^= 0x40
st, _ = response(proc.handle(forged, now.at(ms, m, 0, True)))
assert st == status.E_MAC and events.count(TAMPER_AUTH) == 2, (st, events.count(TAMPER_AUTH))
assert (lim.to_bytes(), table.to_bytes(), proc.counter) == before

# heap-locked per-second evaluation: activation at m+2, trip (3 s over 20 A), re-close after
# 10 s, lock-out after the second trip (max 1 re-close), end of the reservation at m+4
tick(5_000)
s1 = s2 = s3 = _ = 0  # module globals created before the lock (a new global may grow the dict)
micropython.heap_lock()
try:
    tick(5_000, 119 - (wall % 60))  # up to m+1:59
    tick(25_000, 4)  # m+2:00 .. :03 -> trip at :03
    s1 = lim.state
    tick(0, 10)  # re-close at :13
    s2 = lim.state
    tick(25_000, 4)  # second trip -> lock-out
    s3 = lim.state
    tick(0, 120)  # through m+4: the reservation ends
finally:
    micropython.heap_unlock()
assert s1 == S_OPEN and s2 == S_CLOSED and s3 == S_LOCKED, (s1, s2, s3)
assert ms < 200_000, ms  # the run crossed the wrap
assert table.state[table.find(3)] == ENDED and lim.active_a == 40
assert events.count(BREAKER_OPEN) == 2 and events.count(BREAKER_CLOSE) == 1
assert not relay.commanded()

# remote reset closes the locked breaker
st, _ = send(CMD_RESET, 14, b"")
assert st == status.OK and lim.state == S_CLOSED and relay.commanded()

# cancel during the window lifts the limit at the next tick; drill on demand is heap-free
m = wall // 60
send(CMD_CREATE, 15, struct.pack(">HiiBB", 4, m + 1, m + 30, 10, 0))
st, rec = send(CMD_READ, 16, struct.pack(">H", 4))
send(CMD_CONFIRM, 17, struct.pack(">H", 4) + rec[DIGEST_AT:21])
tick(0, 61)
assert table.state[table.find(4)] == ACTIVE and lim.active_a == 10
st, _ = send(CMD_CANCEL, 18, struct.pack(">H", 4))
assert st == status.OK and table.state[table.find(4)] == CANCELLED
st, _ = send(CMD_DRILL, 19, struct.pack(">BH", 10, 60))
assert st == status.OK
micropython.heap_lock()
try:
    tick(15_000, 30)
finally:
    micropython.heap_unlock()
assert lim.active_a == 40 and lim.state == S_CLOSED and relay.commanded()
assert lim.drill.running and lim.drill.trips >= 1

# clock-invalid fallback and a stuck relay's fault event are heap-free too
send(CMD_CONTRACT, 20, struct.pack(">B", 20))
m = wall // 60
send(CMD_CREATE, 21, struct.pack(">HiiBB", 5, m + 1, m + 30, 10, 0))
st, rec = send(CMD_READ, 22, struct.pack(">H", 5))
send(CMD_CONFIRM, 23, struct.pack(">H", 5) + rec[DIGEST_AT:21])
tick(0, 61)
assert lim.active_a == 10
relay.stuck = True
micropython.heap_lock()
try:
    for _ in range(5):
        ms = add_ms(ms, 1000)
        wall += 1
        lim.tick(now.at(ms, 0, wall % 60, False), 15_000, -1)  # invalid clock: contract 20 A
    tick(25_000, 5)  # valid again: 10 A cap, trip; the relay does not follow
finally:
    micropython.heap_unlock()
assert lim.fallback is False and events.count(BREAKER_FAULT) == 1 and breaker.alarm
assert events.newest(LIMIT_CHANGE)[4] == 10

# figures: RAM held by a limiter stack, cost of one evaluation on this port
gc.collect()
a0 = gc.mem_alloc()
t2 = ReservationTable(EventLog(8))
l2 = Limiter(t2, Breaker(FakeRelay(True), EventLog(8)), EventLog(8))
gc.collect()  # held, not churned by construction
a1 = gc.mem_alloc()
t0 = time.ticks_us()
for k in range(1000):
    l2.tick(now.at(k * 1000, base + k // 60, k % 60, True), 5_000, -1)
us = time.ticks_diff(time.ticks_us(), t0) // 1000
print("limiter+table+drill bytes", a1 - a0, "us/tick", us)

# unknown current (NO_VALUE on both lines) never trips; an absurd raw current trips, clamped
k = 1000
micropython.heap_lock()
try:
    for _ in range(30):
        k += 1
        l2.tick(now.at(k * 1000, base + k // 60, k % 60, True), -1, -1)
    s1 = l2.state
    for _ in range(4):
        k += 1
        l2.tick(now.at(k * 1000, base + k // 60, k % 60, True), 10**6, -1)
finally:
    micropython.heap_unlock()
assert s1 == S_CLOSED and l2.state == S_OPEN and l2.events.newest(BREAKER_OPEN)[5] == 10**6
print("saves", store.saves, "kinds", store.kinds)
print("PASS")
