# Last Gasp: power-fail detection, the hold-up sequence, and the power-restoration notice.
#
# Sans-IO: poll(now, level) advances on the power-good level (1 = mains present) at the
# instant now (meter.clock.Now) and returns what the shell must do next; it never sleeps.
#   IDLE   mains present, nothing running: the 1 s cadence suffices
#   FAST   poll again within FAST_MS (an edge is being debounced, or the sequence runs)
#   SLEEP  the sequence is over, radios are off: sleep until power-good rises, then poll
# "high >= restore_ms" means power-good has been high that long without a drop; a drop
# restarts that count. Every row not listed keeps the state.
#
#   state       input                          next        action                   returns
#   UP          high                           UP          send a pending notice    IDLE
#   UP          deferred counts >= DEFER_MS    UP          persist the state        IDLE
#   UP          low                            PENDING     note the edge            FAST
#   PENDING     high                           UP          dips += 1                IDLE
#   PENDING     low >= debounce_ms             HOLDING     the sequence (below)     FAST
#                 ... alarm rate-limited       DOWN        no alarm, radios off,    SLEEP
#                                                          counts deferred
#   HOLDING     low, repeat due                HOLDING     repeat the alarm         FAST
#   HOLDING     low, repeats or budget spent   DOWN        persist, radios off      SLEEP
#   HOLDING     high < restore_ms              HOLDING     (repeats pause)          FAST
#   HOLDING     high >= restore_ms             UP          release, notice          IDLE
#   DOWN        low                            DOWN        (a blip: sleep again)    SLEEP
#   DOWN        high >= restore_ms             UP          release, notice          IDLE
#   boot(), outage persisted, low              REBOOTED    -                        -
#   boot(), outage persisted, high             UP or WAIT_CLOCK (as REBOOTED, high)
#   REBOOTED    low                            REBOOTED    (the hold-up ran out)    SLEEP
#   REBOOTED    high >= restore_ms, clock ok   UP          notice (F_REBOOTED)      IDLE
#   REBOOTED    high >= restore_ms, no clock   WAIT_CLOCK  note the end (ms)        IDLE
#   WAIT_CLOCK  clock valid                    UP          notice, end back-dated   IDLE
#   WAIT_CLOCK  CLOCK_WAIT_MS without clock    UP          notice without an end    IDLE
#   WAIT_CLOCK  low                            PENDING     notice without an end    FAST
# FAST while high < restore_ms in DOWN and REBOOTED. A notice that the uplink does not take
# stays pending (and persisted) and is sent again by every poll in UP or WAIT_CLOCK.
# Whether the board is asleep is the shell's: DOWN and REBOOTED answer SLEEP to every poll
# with mains off, so after a blip (woken, mains gone again) the shell sleeps again.
#
# The sequence, in priority order inside the hold-up budget (budget_ms):
#   1. background work stops, metering freezes, POWER_FAIL is logged, registers and the
#      partial interval are committed (pre-erased reserve: zero erases), the state persisted;
#   2. the alarm (wire.LastGaspAlarm, 65 bytes, sealed) to the uplink, and a notification
#      to the B-route;
#   3. repeats every repeat_ms while the budget allows (at most `repeats`), then radios off.
# At most rate_max alarms go out in rate_window_min minutes (a flapping supply); the rate
# limit is kept across reboots. A reboot inside an outage (the capacitor ran out) restores
# from the persisted state: the notice follows when mains is back and the clock is valid.
# The machine acts on the meter only through its platform (outage.platform).

from micropython import const
import struct

from meter import events as ev
from meter.clock import NO_MINUTE
from meter.errors import SettingError
from meter.outage.wire import (F_ALARM_LOST, F_CLOCK_VALID, F_END_VALID, F_LONG,
                               F_REBOOTED, MSG_LAST_GASP, MSG_RESTORED, REST_LEN,
                               LastGaspAlarm, RestorationNotice)
from meter.ticks import add_ms, elapsed_ms

# states
UP = const(0)  # mains present, nothing running
PENDING = const(1)  # power-good low, debouncing
HOLDING = const(2)  # sequence done, repeating the alarm within the budget
DOWN = const(3)  # radios off, waiting for mains
REBOOTED = const(4)  # booted inside an outage (the hold-up ran out), mains still off
WAIT_CLOCK = const(5)  # restored after a reboot, the notice waits for a valid clock

# what poll() asks the shell to do next
IDLE = const(0)
FAST = const(1)
SLEEP = const(2)
FAST_MS = const(5)  # poll period while FAST

RATE_SLOTS = const(4)  # rate_max is at most this
CLOCK_WAIT_MS = const(900_000)  # a rebooted meter waits this long for a valid clock
DEFER_MS = const(60_000)  # a suppressed outage's counts reach flash within this (in UP)

# persisted state (journal REC_LASTGASP): flags, start minute, start second, alarm seq,
# next seq, failures, long failures, long duration s, last sequence ms, suppressed, the
# wall minutes of the last RATE_SLOTS alarms (rate limit), then the pending notice bytes
_STATE = "<BIBIIIIIHHiiii"
_STATE_LEN = const(46)
_S_OUTAGE = const(0x01)  # an outage is in progress (the alarm sequence ran)
_S_DELIVERED = const(0x02)  # its alarm was handed to the uplink
_S_VALID = const(0x04)  # its start came from a valid clock
_S_SUPPRESSED = const(0x08)  # its alarm was suppressed by the rate limit
_S_NOTICE = const(0x10)  # a restoration notice is waiting for the uplink
_NO_MS = const(0xFFFF)  # last_sequence_ms: no sequence measured yet
_NO_STAMP = const(-1)  # no ms stamp (the restore count is not running)
_MAX_ARG = const(0x3FFFFFFF)  # event arguments stay small ints


class LastGasp:
    """platform: outage.platform.LastGaspPlatform (or any object with its methods);
    events: meter.events.EventLog; budget_ms: the hold-up budget (outage.holdup)."""

    def __init__(self, platform, meter_id, mac, events, budget_ms, debounce_ms=20,
                 restore_ms=200, repeats=2, repeat_ms=500, long_outage_s=180, rate_max=3,
                 rate_window_min=10):
        if debounce_ms < 0 or restore_ms < 0 or repeats < 0 or repeat_ms <= 0 or \
                not 0 <= rate_max <= RATE_SLOTS or rate_window_min <= 0:
            raise SettingError("E_LASTGASP_SETTING")
        if len(meter_id) != 8:
            raise SettingError("E_METER_ID")
        self.platform = platform
        self.events = events
        self.budget_ms = budget_ms
        self.debounce_ms = debounce_ms
        self.restore_ms = restore_ms
        self.repeats = repeats
        self.repeat_ms = repeat_ms
        self.long_outage_s = long_outage_s
        self.rate_max = rate_max
        self.rate_window_min = rate_window_min
        self.state = UP
        self.alarm = LastGaspAlarm(meter_id, mac)
        self.notice = RestorationNotice(meter_id, mac)
        self._recent = [-1] * RATE_SLOTS  # wall minutes of the last alarms (persisted)
        self._recent_ms = [-1] * RATE_SLOTS  # monotonic ms of them (clock invalid)
        # persisted counters and the current outage
        self.seq = 0  # next message sequence number
        self.failures = 0
        self.long_failures = 0
        self.long_duration_s = 0
        self.suppressed = 0  # outages whose alarm the rate limit held back
        self.dips = 0  # power-good dips shorter than the debounce (not persisted)
        self.last_sequence_ms = _NO_MS
        self._flags = 0
        self._start_min = 0
        self._start_sec = 0
        self._alarm_seq = 0
        # timing of the running episode (monotonic ms)
        self._edge_ms = 0  # PENDING: the falling edge
        self._seq_start_ms = 0  # HOLDING: debounce over, the sequence started
        self._high_since = _NO_STAMP  # HOLDING, DOWN, REBOOTED: power-good high since
        self._next_repeat_ms = 0
        self._sent = 0  # alarms handed over (or tried) in this outage
        self._end_ms = 0  # WAIT_CLOCK: when mains came back
        self._unsaved = False  # counts of suppressed outages not yet persisted ...
        self._unsaved_ms = 0  # ... since this monotonic ms
        self.edge_to_alarm_ms = -1  # measured: debounce end to alarm handed over
        self.notice_pending = False  # built, not yet accepted by the uplink
        # the persisted state, packed in place (no allocation on the Last Gasp path)
        self._state = bytearray(_STATE_LEN + REST_LEN)
        mv = memoryview(self._state)
        self._state_head = mv[:_STATE_LEN]
        self._state_full = mv

    # ---- persistence ---------------------------------------------------------------

    def _pack_state(self):
        """Pack the persisted state into the preallocated buffer; returns its view."""
        r = self._recent
        flags = self._flags | (_S_NOTICE if self.notice_pending else 0)
        start = self._start_min if self._start_min >= 0 else self._start_min & 0xFFFFFFFF
        struct.pack_into(_STATE, self._state, 0, flags, start, self._start_sec,
                         self._alarm_seq, self.seq, self.failures, self.long_failures,
                         self.long_duration_s, self.last_sequence_ms, self.suppressed,
                         r[0], r[1], r[2], r[3])
        if not self.notice_pending:
            return self._state_head
        self._state_full[_STATE_LEN:] = self.notice.buf
        return self._state_full

    def _persist(self):
        self._unsaved = False
        self.platform.persist(self._pack_state())

    def _defer(self, now):
        """A suppressed outage changes only counters: they are persisted DEFER_MS later
        (or with the next persisted state), so a flapping supply writes a state record a
        minute, not three an outage. A power loss inside a suppressed outage loses only its
        counts (its alarm and notice were held back by the rate limit anyway)."""
        if not self._unsaved:
            self._unsaved = True
            self._unsaved_ms = now.ms

    def state_bytes(self):
        """The persisted state as bytes (what the journal holds)."""
        return bytes(self._pack_state())

    def restore(self, payload):
        """Load the persisted state (from the journal) at boot; raises ValueError
        ("E_LASTGASP_RECORD") on a malformed record and changes nothing then."""
        if payload is None:
            return
        n = len(payload)
        if n != _STATE_LEN and n != _STATE_LEN + REST_LEN:
            raise ValueError("E_LASTGASP_RECORD")
        (flags, start_min, start_sec, alarm_seq, seq, failures, long_failures, long_s,
         seq_ms, suppressed, r0, r1, r2, r3) = struct.unpack(_STATE, bytes(payload[:_STATE_LEN]))
        if bool(flags & _S_NOTICE) != (n > _STATE_LEN):
            raise ValueError("E_LASTGASP_RECORD")
        if n > _STATE_LEN:
            self.notice.load(payload[_STATE_LEN:])
        self.notice_pending = n > _STATE_LEN
        self._recent[0] = r0
        self._recent[1] = r1
        self._recent[2] = r2
        self._recent[3] = r3
        self._flags = flags & ~_S_NOTICE
        self._start_min = start_min
        self._start_sec = start_sec
        self._alarm_seq = alarm_seq
        self.seq = seq
        self.failures = failures
        self.long_failures = long_failures
        self.long_duration_s = long_s
        self.last_sequence_ms = seq_ms
        self.suppressed = suppressed

    def recover(self, now):
        """Boot, first half: restore() from what the platform persisted. A malformed
        record is logged (JOURNAL_CORRUPT) and ignored. Returns True when a state loaded."""
        payload = self.platform.saved_state()
        try:
            self.restore(payload)
        except ValueError:
            self.events.log(ev.JOURNAL_CORRUPT, now.ev_minute, now.second, -1, -1)
            return False
        return payload is not None

    def outage_pending(self):
        """True when the last run ended inside an outage (restoration due at boot)."""
        return bool(self._flags & _S_OUTAGE)

    # ---- the state machine ------------------------------------------------------------

    def boot(self, now, level):
        """Boot, second half. If the persisted state says the last run ended inside an
        outage, the hold-up ran out before mains returned: with mains present (level 1)
        the restoration follows (at once, or once the clock is valid); with mains still
        off the machine is REBOOTED and restores when power-good has been high for
        restore_ms. Returns True when an outage was pending."""
        if not self._flags & _S_OUTAGE:
            return False
        self._high_since = _NO_STAMP
        if level:
            self._restored(now, True)
        else:
            self.state = REBOOTED
        return True

    def poll(self, now, level):
        """Advance on the power-good level at the instant now; returns IDLE, FAST or SLEEP."""
        st = self.state
        if st == UP or st == WAIT_CLOCK:
            if st == WAIT_CLOCK:
                self._clock_wait(now, level)
            if self.notice_pending and self.platform.send(self.notice.buf):
                self.notice_pending = False
                self._persist()
            elif self._unsaved and elapsed_ms(now.ms, self._unsaved_ms) >= DEFER_MS:
                self._persist()
            if level:
                return IDLE
            self.state = PENDING
            self._edge_ms = now.ms
            if self.debounce_ms > 0:
                return FAST
            return self._run_sequence(now)
        if st == PENDING:
            if level:
                self.dips += 1
                self.state = UP
                return IDLE
            if elapsed_ms(now.ms, self._edge_ms) >= self.debounce_ms:
                return self._run_sequence(now)
            return FAST
        # HOLDING, DOWN, REBOOTED
        if level:
            if self._high_since == _NO_STAMP:
                self._high_since = now.ms
            if elapsed_ms(now.ms, self._high_since) >= self.restore_ms:
                self._restored(now, st == REBOOTED)
                return IDLE
            return FAST
        self._high_since = _NO_STAMP
        if st != HOLDING:
            return SLEEP
        if elapsed_ms(now.ms, self._seq_start_ms) + self.repeat_ms > self.budget_ms \
                or self._sent > self.repeats:
            return self._go_down(now)
        if elapsed_ms(now.ms, self._next_repeat_ms) >= 0:
            self.alarm.repeat(self._sent)
            self._send_alarm(now)
        return FAST

    def _run_sequence(self, now):
        p = self.platform
        self._seq_start_ms = now.ms
        self._high_since = _NO_STAMP
        self._sent = 0
        # 1. stop background work, freeze, log, commit: nothing but page programs (the
        # POWER_FAIL event goes into the same commit as the registers)
        p.hold()
        self.events.log(ev.POWER_FAIL, now.ev_minute, now.second, 0, 0)
        p.commit()
        self.failures += 1
        self._start_min = now.minute
        self._start_sec = now.second
        self._flags = _S_OUTAGE | (_S_VALID if now.valid else 0)
        self._alarm_seq = self.seq
        self.seq += 1
        allowed = self._rate_ok(now)
        self.state = HOLDING
        if not allowed:
            self._flags |= _S_SUPPRESSED
            self.suppressed += 1
            self._defer(now)
            return self._go_down(now)
        self._persist()
        # 2. the alarm
        self.alarm.pack(F_CLOCK_VALID if now.valid else 0, self._alarm_seq, now.minute,
                        now.second, p.e0(), p.e3(), p.unit, p.coefficient)
        self._send_alarm(now)
        p.notify(MSG_LAST_GASP)
        return FAST

    def _rate_ok(self, now):
        """At most rate_max alarms in rate_window_min minutes: by wall time when the clock
        is valid (kept across reboots), else by monotonic time since boot."""
        if self.rate_max <= 0:
            return False
        valid = now.valid
        window = self.rate_window_min
        recent = self._recent if valid else self._recent_ms
        oldest = 0
        n = 0
        for i in range(self.rate_max):
            t = recent[i]
            if t >= 0:
                if valid:
                    age = now.minute - t
                else:
                    age = elapsed_ms(now.ms, t) // 60_000
                if 0 <= age < window:
                    n += 1
            if t < 0 or (recent[oldest] >= 0 and t < recent[oldest]):
                oldest = i
        if n >= self.rate_max:
            return False
        recent[oldest] = now.minute if valid else now.ms
        return True

    def _send_alarm(self, now):
        if self.platform.send(self.alarm.buf) and not self._flags & _S_DELIVERED:
            self._flags |= _S_DELIVERED
            self.edge_to_alarm_ms = elapsed_ms(now.ms, self._seq_start_ms)
        self._sent += 1
        self._next_repeat_ms = add_ms(now.ms, self.repeat_ms)

    def _go_down(self, now):
        self.last_sequence_ms = min(elapsed_ms(now.ms, self._seq_start_ms), _NO_MS - 1)
        if self._flags & _S_SUPPRESSED:
            self._defer(now)
        else:
            self._persist()
        self.platform.radios_off()
        self.state = DOWN
        return SLEEP

    def _restored(self, now, rebooted):
        """Mains has been back for restore_ms (or was there at a boot inside an outage)."""
        if self.state == HOLDING:
            self.last_sequence_ms = min(elapsed_ms(now.ms, self._seq_start_ms), _NO_MS - 1)
        if not rebooted:
            self.platform.release()
        self._high_since = _NO_STAMP
        if rebooted and not now.valid:
            self.state = WAIT_CLOCK  # the end is now; its wall time once the clock is set
            self._end_ms = now.ms
            return
        self.state = UP
        self._finish_outage(now.minute, now.second, now.valid, rebooted)

    def _clock_wait(self, now, level):
        """WAIT_CLOCK: send the notice once the clock is valid (the end back-dated to when
        mains came back), after CLOCK_WAIT_MS, or at a new falling edge, without an end."""
        waited = elapsed_ms(now.ms, self._end_ms)
        if now.valid:
            # end = now - waited, in small ints (minute * 60 would pass 2**30)
            minute = now.minute
            second = now.second - waited // 1000
            if second < 0:
                borrow = (59 - second) // 60
                minute -= borrow
                second += borrow * 60
            self.state = UP
            self._finish_outage(minute, second, True, True)
        elif waited >= CLOCK_WAIT_MS or not level:
            self.state = UP
            self._finish_outage(now.minute, now.second, False, True)

    def _finish_outage(self, minute, second, valid, rebooted):
        """Build the restoration notice of the outage in _flags, log its end, send it."""
        start_valid = self._flags & _S_VALID
        flags = F_REBOOTED if rebooted else 0
        duration = 0
        if start_valid:
            flags |= F_CLOCK_VALID
        if valid:
            flags |= F_END_VALID
        if start_valid and valid:
            duration = (minute - self._start_min) * 60 + second - self._start_sec
            if duration < 0:
                duration = 0  # the clock was set back during the outage
        if not self._flags & _S_DELIVERED:
            flags |= F_ALARM_LOST
        if duration >= self.long_outage_s:
            flags |= F_LONG
            self.long_failures += 1
            self.long_duration_s += duration
        suppressed = bool(self._flags & _S_SUPPRESSED)
        notice_seq = self.seq
        self.seq += 1
        p = self.platform
        self.notice.pack(flags, notice_seq, self._start_min, self._start_sec,
                         minute if valid else 0, second if valid else 0, duration,
                         self.last_sequence_ms, self.failures, self.long_failures,
                         self.long_duration_s, p.e0(), self._alarm_seq, self.suppressed,
                         self.dips)
        self._flags = 0
        stamp = minute if valid else NO_MINUTE
        self.events.log(ev.POWER_RESTORED, stamp, second, min(duration, _MAX_ARG),
                        self.last_sequence_ms)
        if flags & F_LONG:
            self.events.log(ev.LONG_POWER_FAIL, stamp, second, min(duration, _MAX_ARG), 0)
        self.notice_pending = False
        if suppressed:  # counters only: persisted with the deferred state (_defer)
            if not self._unsaved:
                self._unsaved = True
                self._unsaved_ms = self._seq_start_ms
            return
        p.notify(MSG_RESTORED)
        self.notice_pending = not p.send(self.notice.buf)
        self._persist()
