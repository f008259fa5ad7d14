# Push settings per report (1-, 5-, 30-minute series; events) and when a live push is due.
#
# A report r (index: R_HALF 30-minute, R_FIVE 5-minute, R_MINUTE 1-minute, R_EVENTS) has:
#   on          pushes enabled (0/1); off: the report sends nothing, live or backfill, and
#               its cursor stays (values wait in the rings while held; RANGE reads them)
#   period      minutes between pushes (0: at once, events); the push of a period starts
#               at the period boundary plus the meter's delay
#   delay max   s: the meter's delay is CAPTURE_S + its own offset in [0, delay max) drawn
#               once from hal.random (persisted with the settings, so stable per meter),
#               clamped below the period
#   retries     resends of an unacknowledged message (then the session is dropped)
#   back-off    s before an unacknowledged message is resent
#   qos         1: confirmed (PUBACK advances the cursor); 0: fire and forget (the
#               cursor advances when the client takes it; 100 % is no longer guaranteed)
# The settings are packed (pack/load) into the A-route's config record (REC_CONFIG).
# Everything here is integer arithmetic on small ints; due() allocates nothing.

from micropython import const
import struct

R_HALF = const(0)
R_FIVE = const(1)
R_MINUTE = const(2)
R_EVENTS = const(3)
REPORTS = const(4)
# report ids on the wire (PUSH command): the series step, 0x40 events
REPORT_IDS = (30, 5, 1, 0x40)
CAPTURE_S = const(3)  # a push waits for the boundary's capture window (intervals)
ENTRY_FMT = ">BHHBHB"  # on, period min, delay max s, retries, back-off s, qos
ENTRY_LEN = const(9)
MAX_PERIOD_MIN = const(1440)
MAX_DELAY_S = const(3600)
MAX_RETRIES = const(10)
MAX_BACKOFF_S = const(3600)

# defaults: (on, period, delay max, retries, back-off, qos)
DEFAULTS = (
    (1, 30, 600, 3, 30, 1),  # 30-minute values every 30 min
    (1, 30, 600, 3, 30, 1),  # 5-minute values every 30 min (a batch of six)
    (1, 30, 600, 3, 30, 1),  # 1-minute values every 30 min
    (1, 0, 0, 3, 30, 1),  # events at once
)


def report_index(report_id):
    """The report index of a wire id (30, 5, 1, 0x40), or -1."""
    for i in range(REPORTS):
        if REPORT_IDS[i] == report_id:
            return i
    return -1


class PushSettings:
    """Per-report push settings and the per-meter start offset `rnd` (0..65535)."""

    def __init__(self, rnd=0):
        self.on = bytearray(REPORTS)
        self.period = [0] * REPORTS
        self.delay_max = [0] * REPORTS
        self.retries = [0] * REPORTS
        self.backoff_ms = [0] * REPORTS
        self.qos = bytearray(REPORTS)
        self.delay_s = [0] * REPORTS  # this meter's delay after the period boundary
        self.last = [-1] * REPORTS  # the period boundary (wall minute) last pushed
        self.rnd = rnd & 0xFFFF
        for i in range(REPORTS):
            self.set(i, *DEFAULTS[i])

    def check(self, on, period, delay_max, retries, backoff_s, qos):
        """True when the values are in range (PUSH: else E_RANGE, nothing changed)."""
        return on in (0, 1) and 0 <= period <= MAX_PERIOD_MIN and \
            0 <= delay_max <= MAX_DELAY_S and 0 <= retries <= MAX_RETRIES and \
            1 <= backoff_s <= MAX_BACKOFF_S and qos in (0, 1)

    def set(self, i, on, period, delay_max, retries, backoff_s, qos):
        self.on[i] = on
        self.period[i] = period
        self.delay_max[i] = delay_max
        self.retries[i] = retries
        self.backoff_ms[i] = backoff_s * 1000
        self.qos[i] = qos
        d = CAPTURE_S + ((self.rnd >> 8) * delay_max >> 8)
        if period > 0 and d >= period * 60:
            d = period * 60 - 1
        self.delay_s[i] = d

    def entry(self, i):
        """The report's settings as on the wire (ENTRY_FMT, 9 bytes)."""
        return struct.pack(ENTRY_FMT, self.on[i], self.period[i], self.delay_max[i],
                           self.retries[i], self.backoff_ms[i] // 1000, self.qos[i])

    def due(self, i, now):
        """True when report i's live push of the current period is due at `now`
        (meter.clock.Now) and was not made yet; marks it made. Events (period 0): always
        (the caller sends what is new). Needs a valid clock for a period > 0."""
        if not self.on[i]:
            return False
        p = self.period[i]
        if p == 0:
            return True
        if not now.valid:
            return False
        b = now.minute - now.minute % p
        if b == self.last[i] or (now.minute - b) * 60 + now.second < self.delay_s[i]:
            return False
        self.last[i] = b
        return True

    def pack(self, buf, off):
        for i in range(REPORTS):
            struct.pack_into(ENTRY_FMT, buf, off + ENTRY_LEN * i, self.on[i], self.period[i],
                             self.delay_max[i], self.retries[i], self.backoff_ms[i] // 1000,
                             self.qos[i])
        return off + ENTRY_LEN * REPORTS

    def load(self, buf, off):
        """Settings from a config record; an entry out of range keeps the defaults."""
        for i in range(REPORTS):
            v = struct.unpack_from(ENTRY_FMT, buf, off + ENTRY_LEN * i)
            if self.check(*v):
                self.set(i, *v)
        return off + ENTRY_LEN * REPORTS
