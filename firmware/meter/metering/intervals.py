# Interval capture on wall-clock boundaries: 1-minute ring, 5-minute values, 30-minute history.
#
# Every record is keyed by its boundary time in wall minutes since 2000-01-01 (a small int)
# and stored in a preallocated array slot chosen by that time; a lookup checks the stored
# stamp, so a slot that was not written for the asked time reads as missing (-1). The three
# series are one ring type (SeriesRing) that differs only in step and columns; MinuteRing,
# FiveMinuteRing and HalfHourHistory build the three the meter keeps.
#
# The capture rule (also in README "Interval capture"):
#   * A boundary is the start of a wall minute (hh:mm:00). Its value is the register reading
#     at the first tick inside that minute, if that tick comes within CAPTURE_WINDOW_S
#     seconds of the boundary; otherwise the boundary is missing.
#   * Boundaries passed while no tick ran (outage) or skipped by a forward clock jump are
#     missing. Missing values are never interpolated or invented.
#   * A backward clock jump never rewrites a stored boundary: capture resumes at the first
#     boundary after the newest one already processed (the high-water mark). The clock
#     command bounds that hold (meter.clock: a plausible correction is at most
#     CLOCK_JUMP_S); a forced correction behind the high-water mark calls correct(): the
#     boundaries stamped after the corrected time are dropped as an anomaly (counted in
#     future_dropped, logged by the command) and capture resumes at the corrected time.
#   * While the wall clock is invalid nothing is captured; the registers keep counting.
#   * 5-minute values are captured at boundaries divisible by 5; the voltage average covers
#     the samples since the previous 5-minute boundary and is valid only when that boundary
#     was captured too (otherwise its interval is unknown). 15-/30-minute values are derived
#     from the 5-minute cumulative values and exist only when both ends exist.

from micropython import const
from array import array

from meter.metering.registers import FWD, REV, LAG, LEAD, delta

MISSING = const(-1)
CAPTURE_WINDOW_S = const(3)
RING_MINUTES = const(60)

# on_tick() result bits
MINUTE = const(1)  # a 1-minute boundary was processed (captured or marked missing)
CAPTURED = const(2)  # ... and its value was captured
FIVE = const(4)  # a 5-minute value was captured
HALF_HOUR = const(8)  # a 30-minute value was captured
GAP = const(16)  # one or more boundaries were missed (outage, forward jump, late tick)
BACKWARD = const(32)  # the clock is behind the high-water mark


def newest_stamp(stamps):
    """The newest boundary stamp in a ring's stamp array, or -1 (index loop: iterating an
    array directly would allocate an iterator)."""
    best = MISSING
    for i in range(len(stamps)):
        if stamps[i] > best:
            best = stamps[i]
    return best


# Names of the columns a SeriesRing can hold, in their fixed order: the index of a column is
# its register index (FWD, REV, LAG, LEAD), then the voltage. A ring holds a prefix of them.
COLUMNS = ("fwd", "rev", "lag", "lead", "volt")
_VOLT = const(4)
# Column types, the narrowest each range allows for the meter's life: the stamps are wall
# minutes since 2000 (52.6 million by 2100) and the energy columns cumulative counts of the
# 8-digit registers (< 10**8): 32 bits; the voltage is an average of samples the
# plausibility limits accept (metering.samples.Limits: 0..max_volt_dv, 3000 = 300.0 V) or
# MISSING, so 16 bits hold it (record() stores any value outside them as MISSING: an
# unknown voltage, never a wrapped one).
_VOLT_MAX = const(32767)


class SeriesRing:
    """One interval series in RAM: the boundaries every `step` minutes, the newest `entries`
    of them, `columns` values each (a prefix of COLUMNS: 2 = fwd, rev; 5 = fwd, rev, lag,
    lead, volt). Cumulative values in register counts, volt the average in 0.1 V (MISSING:
    unknown; 16 bits, see _VOLT_MAX). Boundary m lives in slot (m // step) % entries;
    `stamp` says which boundary a slot holds, so a slot not written for the asked time
    reads as missing. Columns are preallocated arrays, reachable by name (ring.fwd,
    ring.volt ...) and by index (ring.cols[reg])."""

    def __init__(self, step, entries, columns):
        if not 1 <= columns <= len(COLUMNS) or step < 1 or entries < 1:
            raise ValueError("E_SERIES_SHAPE")
        self.step = step
        self.entries = entries
        self.ncols = columns
        self.stamp = array("i", [MISSING] * entries)
        cols = []
        for c in range(columns):
            col = array("h", [MISSING] * entries) if c == _VOLT else array("i", [0] * entries)
            cols.append(col)
            setattr(self, COLUMNS[c], col)
        self.cols = tuple(cols)

    def record(self, minute, fwd, rev, lag=0, lead=0, volt=MISSING):
        """Store boundary `minute` (a multiple of step); values beyond the ring's columns
        are ignored. Allocation-free."""
        s = (minute // self.step) % self.entries
        self.stamp[s] = minute
        c = self.cols
        n = self.ncols
        c[0][s] = fwd
        if n > 1:
            c[1][s] = rev
        if n > 2:
            c[2][s] = lag
        if n > 3:
            c[3][s] = lead
        if n > 4:
            c[4][s] = volt if MISSING <= volt <= _VOLT_MAX else MISSING

    def slot(self, minute):
        """Slot index holding boundary `minute`, or -1 if it was not captured."""
        step = self.step
        if minute < 0 or minute % step:
            return MISSING
        s = (minute // step) % self.entries
        return s if self.stamp[s] == minute else MISSING

    def latest(self):
        """Stamp of the newest captured boundary, or -1."""
        return newest_stamp(self.stamp)

    def drop_after(self, minute):
        """Forget every boundary stamped after `minute`; returns how many were dropped."""
        n = 0
        st = self.stamp
        for i in range(len(st)):
            if st[i] > minute:
                st[i] = MISSING
                n += 1
        return n

    def energy(self, minute, span, reg=FWD):
        """Energy in counts of register reg over (minute - span, minute] from cumulative
        values, span a multiple of step (5, 15, 30 on the 5-minute ring). -1 when either end
        is missing."""
        a = self.slot(minute)
        b = self.slot(minute - span)
        if a < 0 or b < 0:
            return MISSING
        col = self.cols[reg]
        return delta(col[a], col[b])


def MinuteRing():
    """The last RING_MINUTES one-minute cumulative values (forward, reverse)."""
    return SeriesRing(1, RING_MINUTES, 2)


def FiveMinuteRing(entries=288):
    """5-minute cumulative active (fwd, rev) and reactive (lag, lead) values and the average
    voltage (0.1 V) over the interval ending at the boundary; 288 entries = 24 h."""
    return SeriesRing(5, entries, 5)


def HalfHourHistory(days=2):
    """30-minute cumulative values (forward, reverse) for `days` days, the source of ECHONET
    EA/EB, E2/E4 and EC."""
    return SeriesRing(30, days * 48, 2)


class IntervalCapture:
    """Drives the rings from per-second ticks. Allocation-free on every path."""

    def __init__(self, regs, ring=None, five=None, half=None):
        self.regs = regs
        self.ring = ring or MinuteRing()
        self.five = five or FiveMinuteRing()
        self.half = half or HalfHourHistory()
        self.high_water = MISSING  # newest boundary minute processed
        self.last_five = MISSING  # newest 5-minute boundary captured
        self.volt_sum = 0  # 0.1 V samples since the last 5-minute boundary
        self.volt_n = 0
        self.missed = 0  # boundaries that were missing (count, for diagnostics)
        self.future_dropped = 0  # 1-minute boundaries dropped by correct() (count)

    def on_tick(self, now, volt_dv):
        """Call once per metrology tick after the registers were updated, with the step's
        clock reading `now` (meter.clock.Now: minute, second, valid). volt_dv < 0 means no
        voltage reading. Returns a bit set of MINUTE, CAPTURED, FIVE, HALF_HOUR, GAP,
        BACKWARD."""
        result = 0
        if now.valid:
            minute = now.minute
            hw = self.high_water
            if minute < hw:
                result = BACKWARD
            elif minute > hw:
                result = self._boundary(minute, now.second, hw)
        # The tick's own sample belongs to the interval that starts at its boundary.
        if volt_dv >= 0:
            self.volt_sum += volt_dv
            self.volt_n += 1
        return result

    def _boundary(self, minute, second, hw):
        result = MINUTE
        if hw >= 0 and minute - hw > 1:
            self.missed += minute - hw - 1
            result |= GAP
        self.high_water = minute
        if second >= CAPTURE_WINDOW_S:
            self.missed += 1
            result |= GAP
        else:
            regs = self.regs.count
            self.ring.record(minute, regs[FWD], regs[REV])
            result |= CAPTURED
            if minute % 5 == 0:
                volt = MISSING
                if self.last_five == minute - 5 and self.volt_n:
                    volt = self.volt_sum // self.volt_n
                self.five.record(minute, regs[FWD], regs[REV], regs[LAG], regs[LEAD], volt)
                self.last_five = minute
                self._reset_volt()
                result |= FIVE
                if minute % 30 == 0:
                    self.half.record(minute, regs[FWD], regs[REV])
                    result |= HALF_HOUR
                return result
        if hw < 0 or minute // 5 != hw // 5:
            # A 5-minute boundary passed without capture: the samples summed so far belong
            # to an interval whose start or end is unknown.
            self._reset_volt()
        return result

    def correct(self, minute):
        """A forced clock correction to `minute` behind the high-water mark: the
        boundaries stamped after the corrected time are dropped from the three rings (an
        anomaly: they were stamped in a future that was corrected) and the high-water mark
        moves back, so capture resumes at the corrected time. The corrected minute's own
        boundary stays if it is held, else it is captured at the next tick inside the
        capture window (or marked missing). Returns the number of 1-minute boundaries
        dropped (0 when the clock is not behind the high-water mark)."""
        if minute >= self.high_water:
            return 0
        n = self.ring.drop_after(minute)
        self.five.drop_after(minute)
        self.half.drop_after(minute)
        self.future_dropped += n
        self.high_water = minute if self.ring.slot(minute) >= 0 else minute - 1
        if self.last_five > minute:
            self.last_five = self.five.latest()
        self._reset_volt()  # the partial interval's start is no longer known
        return n

    def _reset_volt(self):
        self.volt_sum = 0
        self.volt_n = 0
