# Event log: a FIFO of coded events (IDIS-style codes) in preallocated storage.
#
# An entry is (seq, code, minute, second, a, b): seq counts every event ever logged (the
# journal persists each entry with its seq, so a reboot continues the numbering), minute
# and second are the wall clock at the event (minute -1 when the clock was invalid), a and
# b are two small-int arguments whose meaning depends on the code. When full, the oldest
# entry is dropped (DLMS profile generic, sort FIFO): the ring is meter.ringlog.SeqRing.

from micropython import const

from meter.ringlog import SeqRing

# Codes 1..99 follow the IDIS event numbering where one exists.
POWER_FAIL = const(1)  # a: 0, b: 0
POWER_RESTORED = const(2)  # a: outage duration s (capped), b: Last Gasp sequence time ms
CLOCK_ADJUST_OLD = const(4)  # a: old minute, b: old second
CLOCK_ADJUST_NEW = const(5)  # a: new minute, b: new second
CLOCK_INVALID = const(6)
LONG_POWER_FAIL = const(7)  # a: outage duration s
CLOCK_FORCED = const(8)  # a: jump in minutes (new - old), b: 0 (set_clock with force=True)
FUTURE_DROPPED = const(9)  # a: first minute dropped, b: newest (stamped after a correction)
TAMPER_SEAL = const(40)  # a: journal sector, b: record seq (seal chain broken)
TAMPER_ACK = const(41)  # a: tamper findings acknowledged (count), b: 0
TAMPER_AUTH = const(45)  # a: error code, b: command counter (failed authentication)
CONFIG_CHANGE = const(47)  # a: setting id, b: new value
JOURNAL_CORRUPT = const(50)  # a: sector, b: offset (torn or corrupted record skipped)
REGISTERS_LOST = const(51)  # a: newest boundary minute rebuilt from (-1: none), b: 0
RETAINED_USED = const(52)  # a: dWh regained beyond the journal (capped), b: seconds of it
RETAINED_REJECTED = const(53)  # a: reason (storage.retained state), b: the copy's seq
BOUNDARIES_LOST = const(57)  # a: first boundary minute, b: count (captured, never committed)
JOURNAL_DAMAGED = const(54)  # a: sector, b: 1 foreign content, 2 retired without proof
FLASH_BAD_SECTOR = const(55)  # a: sector, b: 1 program, 2 erase failed read-back verify
NOT_DURABLE = const(56)  # a: 1 no journal flash, 2 no key (nothing is kept: RAM only), b: 0
BREAKER_OPEN = const(60)  # a: reason code, b: current mA
BREAKER_CLOSE = const(61)  # a: reason code, b: 0
BREAKER_FAULT = const(62)  # a: commanded state, b: sensed state
LIMIT_CHANGE = const(63)  # a: new active limit A, b: reservation id (0 = contract)
RESERVATION = const(64)  # a: reservation id, b: new state
METROLOGY_REJECT = const(70)  # a: reason code, b: 0
BROUTE_MODULE = const(80)  # a: module event, b: module type
STARTUP = const(90)  # a: reset kind, b: firmware version
TASK_FAILED = const(91)  # a: shell task id, b: its failures since the last healthy period
SAFE_MODE = const(92)  # a: crash resets in a row, b: 0 (metering and storage only)
BOARD_RESET = const(93)  # a: shell task id, b: its failures (the shell resets the board)

NAMES = {
    POWER_FAIL: "power_fail", POWER_RESTORED: "power_restored",
    CLOCK_ADJUST_OLD: "clock_adjust_old", CLOCK_ADJUST_NEW: "clock_adjust_new",
    CLOCK_INVALID: "clock_invalid", LONG_POWER_FAIL: "long_power_fail",
    CLOCK_FORCED: "clock_forced", FUTURE_DROPPED: "future_dropped",
    TAMPER_SEAL: "tamper_seal", TAMPER_AUTH: "tamper_auth", CONFIG_CHANGE: "config_change",
    JOURNAL_CORRUPT: "journal_corrupt", REGISTERS_LOST: "registers_lost",
    RETAINED_USED: "retained_used", RETAINED_REJECTED: "retained_rejected",
    BOUNDARIES_LOST: "boundaries_lost",
    JOURNAL_DAMAGED: "journal_damaged", FLASH_BAD_SECTOR: "flash_bad_sector",
    NOT_DURABLE: "not_durable", TASK_FAILED: "task_failed", SAFE_MODE: "safe_mode",
    BOARD_RESET: "board_reset",
    TAMPER_ACK: "tamper_ack", BREAKER_OPEN: "breaker_open",
    BREAKER_CLOSE: "breaker_close", BREAKER_FAULT: "breaker_fault",
    LIMIT_CHANGE: "limit_change", RESERVATION: "reservation",
    METROLOGY_REJECT: "metrology_reject", BROUTE_MODULE: "broute_module", STARTUP: "startup",
}


class EventLog(SeqRing):
    """The meter's event log. Entries (seq, code, minute, second, a, b) as tuples from
    get(). Columns sized as the journal keeps them (storage.store REC_EVENT): code u16,
    second u8 (0..59), minute, a and b i32."""

    def __init__(self, entries=128):
        SeqRing.__init__(self, entries, "HiBii")
        self.code, self.minute, self.second, self.a, self.b = self.cols
        self.listener = None  # callable(seq, code, minute, second, a, b): the journal

    def log(self, code, minute, second, a=0, b=0):
        """Append an event; returns its seq. Allocation-free (the listener's own work
        aside)."""
        seq = self.seq
        self._put(seq, code, minute, second, a, b)
        if self.listener is not None:
            self.listener(seq, code, minute, second, a, b)
        return seq

    def stamp(self, code, now, a=0, b=0):
        """log() stamped with a meter.clock.Now: its event minute (-1 while the clock is
        invalid) and second."""
        return self.log(code, now.ev_minute, now.second, a, b)

    def _put(self, seq, code, minute, second, a, b):
        i = self.claim(seq)
        self.code[i] = code
        self.minute[i] = minute
        self.second[i] = second
        self.a[i] = a
        self.b[i] = b

    def restore(self, seq, code, minute, second, a, b):
        """Re-insert a persisted entry at boot (entries must come oldest first)."""
        if self.continues(seq):
            self._put(seq, code, minute, second, a, b)

    def get(self, k):
        """k-th newest entry (0 = newest) as a tuple, or None. Allocates: not for hot paths."""
        return self.row(k)

    def newest(self, code):
        """Newest entry with this code, or None."""
        for k in range(self.n):
            if self.code[self.slot(k)] == code:
                return self.row(k)
        return None

    def count(self, code):
        """Entries held with this code. Allocation-free."""
        c = 0
        for k in range(self.n):
            if self.code[self.slot(k)] == code:
                c += 1
        return c
