# Task supervisor of the board shell: check-ins gate the watchdog, failures restart or reset.
#
# Driven by calls only (no asyncio, no clock of its own: every call that needs time takes
# ticks_ms), so the host tests drive it directly and firmware/main.py only wires it:
#   add(name, critical)        a task; returns its id (0..29)
#   check_in(tid)              the task ran one iteration of its loop
#   due_feed(ms)               True (feed the watchdog now) once every critical task has
#                              checked in since the previous feed; after healthy_ms of
#                              such feeding with no failure, on_healthy() runs once (the
#                              shell clears the crash counter there) and failure counts end
#   failed(tid, exc, ms)       an exception ended the task: on_failure(tid, count) logs it
#                              (an event); returns RESTART, or RESET once the task failed
#                              more than max_restarts times without a healthy period between
# A hung task (a loop that never yields) starves every task in asyncio: no check-ins, no
# feed, and the watchdog resets the chip (counted by bootguard.CrashCounter). A task that
# waits forever on something that never comes does the same through due_feed(). Check-ins
# and due_feed allocate nothing (bit masks of small ints).

from micropython import const

from meter.ticks import elapsed_ms

RESTART = const(1)
RESET = const(2)
_MAX_TASKS = const(30)  # bits of a small int
HEALTHY_MS = const(600_000)  # 10 minutes of every check-in arriving
MAX_RESTARTS = const(3)  # restarts of one task before the board is reset


class Supervisor:
    def __init__(self, healthy_ms=HEALTHY_MS, max_restarts=MAX_RESTARTS, on_failure=None,
                 on_healthy=None):
        self.healthy_ms = healthy_ms
        self.max_restarts = max_restarts
        self.on_failure = on_failure  # callable(tid, count)
        self.on_healthy = on_healthy  # callable(), once per healthy period
        self.names = []
        self.failures = []  # per task, since the last healthy period
        self._critical = 0
        self._seen = 0
        self._since = 0  # ms of the first feed of the current healthy run
        self._running = False  # a healthy run has started (a feed since the last failure)
        self.healthy = False  # healthy_ms reached since the last failure
        self.feeds = 0

    def add(self, name, critical=True):
        tid = len(self.names)
        if tid >= _MAX_TASKS:
            raise ValueError("E_TASKS")
        self.names.append(name)
        self.failures.append(0)
        if critical:
            self._critical |= 1 << tid
        return tid

    def check_in(self, tid):
        self._seen |= 1 << tid

    def missing(self):
        """Critical tasks that have not checked in since the last feed (names)."""
        return [n for i, n in enumerate(self.names)
                if self._critical >> i & 1 and not self._seen >> i & 1]

    def due_feed(self, ms):
        crit = self._critical
        if self._seen & crit != crit:
            return False
        self._seen = 0
        self.feeds += 1
        if not self._running:
            self._running = True
            self._since = ms
        elif not self.healthy:
            el = elapsed_ms(ms, self._since)
            if el < 0 or el >= self.healthy_ms:
                self.healthy = True
                for i in range(len(self.failures)):
                    self.failures[i] = 0
                if self.on_healthy is not None:
                    self.on_healthy()
        return True

    def failed(self, tid, exc, ms):
        """exc: the exception (unused here: the shell prints it). Returns RESTART or
        RESET."""
        n = self.failures[tid] + 1
        self.failures[tid] = n
        self._running = False
        self.healthy = False
        self._seen &= ~(1 << tid)
        if self.on_failure is not None:
            self.on_failure(tid, n)
        return RESET if n > self.max_restarts else RESTART
