# The sequenced ring log under the MicroPython unix port: EventLog.log()/stamp() and
# AuditLog.append() allocate nothing, across many wraps of their rings (heap_lock), and a
# restore continues the numbering.

import micropython

from meter.clock import Now
from meter.control.audit import AuditLog
from meter.events import EventLog, POWER_FAIL, BREAKER_OPEN


class CountingSaver:
    """A save handle that counts; allocation-free."""

    def __init__(self):
        self.saves = 0

    def save(self, data):
        self.saves += 1
        return True  # durable (the save-handle contract)


ev = EventLog(16)
saver = CountingSaver()
audit = AuditLog(saver, 8)
now = Now().at(0, 9_500 * 1440, 0, True)
k = c = 0  # module globals created before the lock
micropython.heap_lock()
try:
    for k in range(100):  # 6 wraps of the event ring, 12 of the audit ring
        ev.log(POWER_FAIL, 9_500 * 1440, k % 60, k, -k)
        now.at(k * 1000, 9_500 * 1440 + k // 60, k % 60, k % 3 != 0)
        ev.stamp(BREAKER_OPEN, now, 1, 31_000)
        audit.append(k + 1, now.ev_minute, now.second, 0x0B, 0, k, k % 2 == 0)
    c = ev.count(BREAKER_OPEN)
finally:
    micropython.heap_unlock()
assert ev.n == 16 and ev.seq == 200 and c == 8, (ev.n, ev.seq, c)
assert ev.get(0) == (199, BREAKER_OPEN, -1, 39, 1, 31_000), ev.get(0)  # clock invalid
assert ev.get(1) == (198, POWER_FAIL, 9_500 * 1440, 39, 99, -99), ev.get(1)
assert ev.get(2)[2] == 9_500 * 1440 + 1  # k = 98: the clock valid, minute 1
assert audit.n == 8 and audit.seq == 100 and saver.saves == 50 and audit.unsaved == 50
assert audit.get(0) == (99, 100, -1, 39, 0x0B, 0, 99), audit.get(0)

back = EventLog(16)
for j in range(ev.n - 1, -1, -1):
    back.restore(*ev.get(j))
assert back.seq == 200 and back.get(15) == ev.get(15) and back.log(POWER_FAIL, 0, 0) == 200
print("PASS")
