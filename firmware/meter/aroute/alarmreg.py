# The alarm register (a u32 bitmask) and its per-bit filter, fed from the event log.
#
# A bit is set when its cause occurs (an event of one of its codes is logged, or the A-route
# sends a Last Gasp alarm) and cleared only by ALARM_CLEAR; a set bit whose filter bit is
# set is pushed at once on `alarm` (docs/aroute.md "Alarm register"). scan() reads the
# event log's columns from the last seq it saw (persisted with the outbox, so events
# logged just before a power cut still raise their bits after the reboot) and returns the
# codes the A-route must alarm itself: the ones no other part sends (BREAKER_FAULT and
# TAMPER_SEAL have their own sender in meter.app, POWER_FAIL is the Last Gasp alarm).
# passes(payload) is the filter applied to every sealed alarm the uplink is handed.

from micropython import const

from meter import events as ev

LAST_GASP = const(0x001)
LAST_GASP_TEST = const(0x002)
TAMPER = const(0x004)
BREAKER_FAULT = const(0x008)
CLOCK_INVALID = const(0x010)
JOURNAL_CORRUPT = const(0x020)
NOT_DURABLE = const(0x040)
SAFE_MODE = const(0x080)
TASK_FAILED = const(0x100)
AUTH_FAILURE = const(0x200)
REGISTERS_LOST = const(0x400)
FLASH_BAD_SECTOR = const(0x800)
ALL = const(0xFFF)
NAMES = ("last_gasp", "last_gasp_test", "tamper", "breaker_fault", "clock_invalid",
         "journal_corrupt", "not_durable", "safe_mode", "task_failed", "auth_failure",
         "registers_lost", "flash_bad_sector")

# event code -> register bit
_BITS = {
    ev.POWER_FAIL: LAST_GASP, ev.TAMPER_SEAL: TAMPER, ev.BREAKER_FAULT: BREAKER_FAULT,
    ev.CLOCK_INVALID: CLOCK_INVALID, ev.JOURNAL_CORRUPT: JOURNAL_CORRUPT,
    ev.JOURNAL_DAMAGED: JOURNAL_CORRUPT, ev.NOT_DURABLE: NOT_DURABLE,
    ev.SAFE_MODE: SAFE_MODE, ev.TASK_FAILED: TASK_FAILED, ev.TAMPER_AUTH: AUTH_FAILURE,
    ev.REGISTERS_LOST: REGISTERS_LOST, ev.FLASH_BAD_SECTOR: FLASH_BAD_SECTOR,
}
# codes whose alarm another part sends (the register only records them)
_SENT_ELSEWHERE = (ev.POWER_FAIL, ev.TAMPER_SEAL, ev.BREAKER_FAULT)
_MSG_LAST_GASP = const(0x01)  # meter.outage.wire message types
_MSG_ALARM = const(0x03)
_F_TEST = const(0x80)  # aroute.wire.F_TEST
SCAN_MAX = const(8)  # events examined per scan() call (bounds one poll's work)


def bit_of(code):
    return _BITS.get(code, 0)


class AlarmRegister:
    def __init__(self, events):
        self.events = events
        self.register = 0
        self.filter = ALL
        self.seen = 0  # seq of the next event to examine
        self.filtered = 0  # alarms the filter held back (count)
        self.changed = False  # register or seen changed since the outbox was saved

    def scan(self):
        """Examine the next logged event (at most SCAN_MAX per call, oldest first).
        Returns the slot of an event the A-route must alarm now (its bit passes the
        filter and no other part sends it), or -1. Allocation-free."""
        log = self.events
        if self.seen > log.seq:  # a log restored behind what was seen: follow it
            self.seen = log.seq
        oldest = log.seq - log.n
        if self.seen < oldest:
            self.seen = oldest
        for _ in range(SCAN_MAX):
            if self.seen >= log.seq:
                return -1
            s = log.find(self.seen)
            self.seen += 1
            self.changed = True
            if s < 0:
                continue
            code = log.code[s]
            b = _BITS.get(code, 0)
            if not b:
                continue
            self.register |= b
            if code in _SENT_ELSEWHERE:
                continue
            if b & self.filter:
                return s
            self.filtered += 1
        return -1

    def raise_bits(self, bits):
        if self.register & bits != bits:
            self.register |= bits
            self.changed = True

    def clear(self, mask):
        self.register &= ~mask & 0xFFFFFFFF
        self.changed = True

    def passes(self, payload):
        """True when a sealed alarm (meter.outage.wire) may go out under the filter; a
        Last Gasp alarm also sets its bit. Notices and codes without a bit always pass."""
        t = payload[0]
        b = 0
        if t == _MSG_LAST_GASP:
            b = LAST_GASP_TEST if payload[1] & _F_TEST else LAST_GASP
            self.raise_bits(b)
        elif t == _MSG_ALARM:
            b = _BITS.get(payload[1], 0)
        if b and not b & self.filter:
            self.filtered += 1
            return False
        return True
