# Event log: a FIFO of coded events (IDIS-style codes) in preallocated storage.
#
# An entry is (seq, code, minute, second, a, b): seq counts every event ever logged (the
# journal persists each entry with its seq, so a reboot continues the numbering), minute
# and second are the wall clock at the event (minute -1 when the clock was invalid), a and
# b are two small-int arguments whose meaning depends on the code. When full, the oldest
# entry is dropped (DLMS profile generic, sort FIFO).

from micropython import const
from array import array

# Codes 1..99 follow the IDIS event numbering where one exists.
POWER_FAIL = const(1)  # a: 0, b: 0
POWER_RESTORED = const(2)  # a: outage duration s (capped), b: Last Gasp sequence time ms
CLOCK_ADJUST_OLD = const(4)  # a: old minute, b: old second
CLOCK_ADJUST_NEW = const(5)  # a: new minute, b: new second
CLOCK_INVALID = const(6)
LONG_POWER_FAIL = const(7)  # a: outage duration s
TAMPER_SEAL = const(40)  # a: journal sector, b: record seq (seal chain broken)
TAMPER_AUTH = const(45)  # a: error code, b: command counter (failed authentication)
CONFIG_CHANGE = const(47)  # a: setting id, b: new value
JOURNAL_CORRUPT = const(50)  # a: sector, b: offset (torn or corrupted record skipped)
BREAKER_OPEN = const(60)  # a: reason code, b: current mA
BREAKER_CLOSE = const(61)  # a: reason code, b: 0
BREAKER_FAULT = const(62)  # a: commanded state, b: sensed state
LIMIT_CHANGE = const(63)  # a: new active limit A, b: reservation id (0 = contract)
RESERVATION = const(64)  # a: reservation id, b: new state
METROLOGY_REJECT = const(70)  # a: reason code, b: 0
BROUTE_MODULE = const(80)  # a: module event, b: module type
STARTUP = const(90)  # a: reset kind, b: firmware version

NAMES = {
    POWER_FAIL: "power_fail", POWER_RESTORED: "power_restored",
    CLOCK_ADJUST_OLD: "clock_adjust_old", CLOCK_ADJUST_NEW: "clock_adjust_new",
    CLOCK_INVALID: "clock_invalid", LONG_POWER_FAIL: "long_power_fail",
    TAMPER_SEAL: "tamper_seal", TAMPER_AUTH: "tamper_auth", CONFIG_CHANGE: "config_change",
    JOURNAL_CORRUPT: "journal_corrupt", BREAKER_OPEN: "breaker_open",
    BREAKER_CLOSE: "breaker_close", BREAKER_FAULT: "breaker_fault",
    LIMIT_CHANGE: "limit_change", RESERVATION: "reservation",
    METROLOGY_REJECT: "metrology_reject", BROUTE_MODULE: "broute_module", STARTUP: "startup",
}

_FIELDS = const(6)


class EventLog:
    def __init__(self, entries=128):
        self.entries = entries
        self.buf = array("i", [0] * (entries * _FIELDS))
        self.n = 0  # entries in use
        self.head = 0  # slot of the next write
        self.seq = 0  # seq of the next event
        self.listener = None  # callable(seq, code, minute, second, a, b): the journal

    def log(self, code, minute, second, a=0, b=0):
        seq = self.seq
        self._put(seq, code, minute, second, a, b)
        if self.listener is not None:
            self.listener(seq, code, minute, second, a, b)
        return seq

    def _put(self, seq, code, minute, second, a, b):
        i = self.head * _FIELDS
        buf = self.buf
        buf[i] = seq
        buf[i + 1] = code
        buf[i + 2] = minute
        buf[i + 3] = second
        buf[i + 4] = a
        buf[i + 5] = b
        self.head = (self.head + 1) % self.entries
        if self.n < self.entries:
            self.n += 1
        self.seq = seq + 1

    def restore(self, seq, code, minute, second, a, b):
        """Re-insert a persisted entry at boot (entries must come oldest first)."""
        if seq >= self.seq or self.n == 0:
            self._put(seq, code, minute, second, a, b)

    def get(self, k):
        """k-th newest entry (0 = newest) as a tuple, or None. Allocates: not for hot paths."""
        if k < 0 or k >= self.n:
            return None
        i = ((self.head - 1 - k) % self.entries) * _FIELDS
        return tuple(self.buf[i:i + _FIELDS])

    def newest(self, code):
        """Newest entry with this code, or None."""
        for k in range(self.n):
            e = self.get(k)
            if e[1] == code:
                return e
        return None

    def count(self, code):
        c = 0
        for k in range(self.n):
            if self.buf[((self.head - 1 - k) % self.entries) * _FIELDS + 1] == code:
                c += 1
        return c
