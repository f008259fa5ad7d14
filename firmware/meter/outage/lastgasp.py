# Last Gasp: power-fail detection, the hold-up sequence, and the power-restoration notice.
#
# Sans-IO state machine driven by poll(now_ms, level, minute, second, valid), where level is
# the power-good input (1 = mains present). The shell polls it every few ms while an edge is
# being debounced or the sequence runs, and once a second otherwise.
#
#   UP --low--> PENDING --low for debounce_ms--> (sequence) --> HOLDING --> DOWN
#               PENDING --high before debounce--> UP (a dip: counted, nothing raised)
#   HOLDING/DOWN --high for restore_ms--> UP (restoration without reboot)
#   boot with a persisted outage flag --> restoration notice (the capacitor ran out), once
#       power-good has been high for restore_ms (a reboot while mains is still off stays
#       DOWN) and once the wall clock is valid (so the outage has an end and a duration;
#       after CLOCK_WAIT_MS without a valid clock the notice goes without them)
#   the restoration notice stays pending (and persisted) until the uplink accepts it
#
# The sequence, in priority order inside the hold-up budget:
#   1. background work stops, metering freezes, registers and the partial interval are
#      committed (the journal's reserved pre-erased space: zero erases), the outage flag is
#      persisted;
#   2. the alarm (at most 128 bytes, HMAC-sealed) is handed to the A-route uplink, and an
#      ECHONET Lite notification to the B-route where the module can carry it;
#   3. repeats of the alarm every repeat_ms while the budget allows, then radios and loads
#      off and sleep.
# If mains returns at any point, metering unfreezes (nothing was counted while frozen, so
# nothing is counted twice), background work resumes and a restoration notice is sent.
#
# The platform object `sys` given to the constructor provides:
#   freeze(), unfreeze(), stop_background(), resume_background(), commit_now(),
#   persist_lastgasp(payload), send_alarm(payload) -> bool (False: uplink down),
#   notify_broute(kind), radios_off(), radios_on(), sleep(), snapshot() -> (E0, E3),
#   unit, coefficient.

from micropython import const
import struct

from meter import events as ev
from meter.ticks import add_ms, elapsed_ms

# states
UP = const(0)
PENDING = const(1)
HOLDING = const(2)  # sequence done, repeating the alarm within the budget
DOWN = const(3)  # radios off, waiting for the end

# message types
MSG_LAST_GASP = const(0x01)
MSG_RESTORED = const(0x02)

# alarm flags
F_CLOCK_VALID = const(0x01)  # outage start time from a valid clock
F_END_VALID = const(0x02)  # outage end time from a valid clock (restoration)
F_ALARM_LOST = const(0x04)  # the Last Gasp alarm could not be handed to the uplink
F_LONG = const(0x08)  # a long power failure (>= long_outage_s)
F_REBOOTED = const(0x10)  # the hold-up ran out; restored after a reboot

MAC_LEN = const(32)
_GASP_BODY = "<BB8sIIBBIIBI"  # 33 bytes
_GASP_LEN = const(65)
_REST_BODY = "<BB8sIIIBBIHIIIIIHH"  # 54 bytes
_REST_LEN = const(86)
_GASP_BODY_LEN = const(33)
_REST_BODY_LEN = const(54)
# persisted state (journal REC_LASTGASP): flags, start minute, start second, alarm seq,
# next seq, failures, long failures, long duration s, last sequence ms, suppressed, the
# wall minutes of the last RATE_SLOTS alarms (rate limit), then the pending notice bytes
_STATE = "<BIBIIIIIHHiiii"
_STATE_LEN = const(46)
RATE_SLOTS = const(4)  # rate_max is at most this
CLOCK_WAIT_MS = const(900_000)  # a rebooted meter waits this long for a valid clock
_S_OUTAGE = const(0x01)  # an outage is in progress (the alarm sequence ran)
_S_DELIVERED = const(0x02)  # its alarm was handed to the uplink
_S_VALID = const(0x04)  # its start came from a valid clock
_S_SUPPRESSED = const(0x08)  # its alarm was suppressed by the rate limit
_S_NOTICE = const(0x10)  # a restoration notice is waiting for the uplink
_NO_MS = const(0xFFFF)


def _u32(v):
    return v & 0xFFFFFFFF


class LastGasp:
    def __init__(self, sys, meter_id, mac, events, budget_ms, debounce_ms=20, restore_ms=200,
                 repeats=2, repeat_ms=500, long_outage_s=180, rate_max=3, rate_window_min=10):
        if debounce_ms < 0 or restore_ms < 0 or repeats < 0 or repeat_ms <= 0 or \
                not 0 <= rate_max <= RATE_SLOTS or rate_window_min <= 0:
            raise ValueError("E_LASTGASP_SETTING")
        if len(meter_id) != 8:
            raise ValueError("E_METER_ID")
        self.sys = sys
        self.meter_id = bytes(meter_id)
        self.mac = mac
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
        self.alarm = bytearray(_GASP_LEN)
        self.notice = bytearray(_REST_LEN)
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
        self._edge_ms = 0
        self._seq_start_ms = 0
        self._high_since = -1
        self._next_repeat_ms = 0
        self._sent = 0
        self.edge_to_alarm_ms = -1  # measured: debounce end to alarm handed over
        self.notice_pending = False  # built, not yet accepted by the uplink
        self._rebooted = False  # the current outage spans a reboot
        self._await_clock = False  # rebooted with an invalid clock: notice deferred
        self._boot_ms = 0
        self._awake = True  # DOWN: mains came back briefly since the last sleep()

    # ---- persistence ---------------------------------------------------------------

    def state_bytes(self):
        r = self._recent
        flags = self._flags | (_S_NOTICE if self.notice_pending else 0)
        head = struct.pack(_STATE, flags, _u32(self._start_min), self._start_sec,
                           self._alarm_seq, self.seq, self.failures, self.long_failures,
                           self.long_duration_s, self.last_sequence_ms, self.suppressed,
                           r[0], r[1], r[2], r[3])
        return head + self.notice if self.notice_pending else head

    def restore(self, payload):
        """Load the persisted state (from the journal) at boot; raises ValueError on a
        malformed record and changes nothing then."""
        if payload is None:
            return
        n = len(payload)
        if n != _STATE_LEN and n != _STATE_LEN + _REST_LEN:
            raise ValueError("E_LASTGASP_RECORD")
        (flags, start_min, start_sec, alarm_seq, seq, failures, long_failures, long_s,
         seq_ms, suppressed, r0, r1, r2, r3) = struct.unpack(_STATE, payload[:_STATE_LEN])
        if bool(flags & _S_NOTICE) != (n > _STATE_LEN):
            raise ValueError("E_LASTGASP_RECORD")
        if n > _STATE_LEN:
            self.notice[:] = payload[_STATE_LEN:]
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

    def outage_pending(self):
        """True when the last run ended inside an outage (restoration due at boot)."""
        return bool(self._flags & _S_OUTAGE)

    # ---- the state machine ------------------------------------------------------------

    def poll(self, now_ms, level, minute, second, valid):
        """Advance on the power-good level at monotonic time now_ms. Returns the state."""
        st = self.state
        if st == UP:
            if self._await_clock:
                self._clock_wait(now_ms, minute, second, valid)
            if self.notice_pending and self.sys.send_alarm(self.notice):
                self.notice_pending = False
                self.sys.persist_lastgasp(self.state_bytes())
            if not level:
                self.state = PENDING
                self._edge_ms = now_ms
                if self.debounce_ms == 0:
                    self._run_sequence(now_ms, minute, second, valid)
        elif st == PENDING:
            if level:
                self.dips += 1
                self.state = UP
            elif elapsed_ms(now_ms, self._edge_ms) >= self.debounce_ms:
                self._run_sequence(now_ms, minute, second, valid)
        else:
            if level:
                self._awake = True
                if self._high_since < 0:
                    self._high_since = now_ms
                if elapsed_ms(now_ms, self._high_since) >= self.restore_ms:
                    self._restored(now_ms, minute, second, valid)
                return self.state
            self._high_since = -1
            if st == DOWN and self._awake:
                self._awake = False
                self.sys.sleep()  # again: mains came back only for a moment
            if st == HOLDING:
                if elapsed_ms(now_ms, self._seq_start_ms) + self.repeat_ms > self.budget_ms \
                        or self._sent > self.repeats:
                    self._go_down(now_ms)
                elif elapsed_ms(now_ms, self._next_repeat_ms) >= 0:
                    self._send_alarm(now_ms, True)
        return self.state

    def _run_sequence(self, now_ms, minute, second, valid):
        s = self.sys
        self._seq_start_ms = now_ms
        self._high_since = -1
        self._sent = 0
        # 1. stop background work, freeze, log, commit: nothing but page programs (the
        # POWER_FAIL event goes into the same commit as the registers)
        s.stop_background()
        s.freeze()
        self.events.log(ev.POWER_FAIL, minute if valid else -1, second, 0, 0)
        s.commit_now()
        self.failures += 1
        self._start_min = minute
        self._start_sec = second
        self._flags = _S_OUTAGE | (_S_VALID if valid else 0)
        self._alarm_seq = self.seq
        self.seq += 1
        allowed = self._rate_ok(now_ms, minute, valid)
        if not allowed:
            self._flags |= _S_SUPPRESSED
            self.suppressed += 1
        s.persist_lastgasp(self.state_bytes())
        self.state = HOLDING
        # 2. the alarm
        if allowed:
            self._build_alarm()
            self._send_alarm(now_ms, False)
            s.notify_broute(MSG_LAST_GASP)
        else:
            self._go_down(now_ms)

    def _rate_ok(self, now_ms, minute, valid):
        """At most rate_max alarms in rate_window_min minutes: by wall time when the clock
        is valid (kept across reboots), else by monotonic time since boot."""
        if self.rate_max <= 0:
            return False
        window = self.rate_window_min
        recent = self._recent if valid else self._recent_ms
        oldest = 0
        n = 0
        for i in range(self.rate_max):
            t = recent[i]
            if t >= 0:
                if valid:
                    age = minute - t
                else:
                    age = elapsed_ms(now_ms, t) // 60_000
                if 0 <= age < window:
                    n += 1
            if t < 0 or (recent[oldest] >= 0 and t < recent[oldest]):
                oldest = i
        if n >= self.rate_max:
            return False
        recent[oldest] = minute if valid else now_ms
        return True

    def _build_alarm(self):
        e0, e3 = self.sys.snapshot()
        flags = F_CLOCK_VALID if self._flags & _S_VALID else 0
        struct.pack_into(_GASP_BODY, self.alarm, 0, MSG_LAST_GASP, flags, self.meter_id,
                         self._alarm_seq, _u32(self._start_min), self._start_sec, 0, e0, e3,
                         self.sys.unit, self.sys.coefficient)
        self._seal(self.alarm, _GASP_BODY_LEN)

    def _seal(self, buf, n):
        mv = memoryview(buf)
        mv[n:n + MAC_LEN] = self.mac.digest(mv[:n])

    def _send_alarm(self, now_ms, repeat):
        a = self.alarm
        if repeat:
            a[19] = self._sent  # repeat index; the seal covers it
            self._seal(a, _GASP_BODY_LEN)
        ok = self.sys.send_alarm(a)
        if ok:
            if not self._flags & _S_DELIVERED:
                self._flags |= _S_DELIVERED
                self.edge_to_alarm_ms = elapsed_ms(now_ms, self._seq_start_ms)
        self._sent += 1
        self._next_repeat_ms = add_ms(now_ms, self.repeat_ms)

    def _go_down(self, now_ms):
        s = self.sys
        self.last_sequence_ms = min(elapsed_ms(now_ms, self._seq_start_ms), _NO_MS - 1)
        s.persist_lastgasp(self.state_bytes())
        s.radios_off()
        self.state = DOWN
        self._awake = False
        s.sleep()

    def _restored(self, now_ms, minute, second, valid):
        s = self.sys
        if self.state == HOLDING:
            self.last_sequence_ms = min(elapsed_ms(now_ms, self._seq_start_ms), _NO_MS - 1)
        rebooted = self._rebooted
        if not rebooted:
            s.radios_on()
            s.unfreeze()
            s.resume_background()
        self.state = UP
        self._high_since = -1
        self._rebooted = False
        if rebooted and not valid:
            self._await_clock = True  # the end is now; its wall time once the clock is set
            self._boot_ms = now_ms
            return
        self._finish_outage(minute, second, valid, rebooted)

    def boot(self, now_ms, level, minute, second, valid):
        """At start-up. If the persisted flag says the last run ended in an outage, the
        hold-up ran out before mains returned: with mains present (level 1) the restoration
        follows (at once, or when the clock is valid); with mains still off the machine
        stays DOWN and restores when power-good has been high for restore_ms. Returns True
        when an outage was pending."""
        if not self._flags & _S_OUTAGE:
            return False
        self._rebooted = True
        if level:
            self._restored(now_ms, minute, second, valid)
        else:
            self.state = DOWN
            self._awake = True  # the first poll puts the board back to sleep
        return True

    def _clock_wait(self, now_ms, minute, second, valid):
        waited = elapsed_ms(now_ms, self._boot_ms)
        if valid:
            end = minute * 60 + second - waited // 1000  # wall time of the restoration
            self._await_clock = False
            self._finish_outage(end // 60, end % 60, True, True)
        elif waited >= CLOCK_WAIT_MS:
            self._await_clock = False
            self._finish_outage(minute, second, False, True)

    def _finish_outage(self, minute, second, valid, rebooted):
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
        e0, _ = self.sys.snapshot()
        struct.pack_into(_REST_BODY, self.notice, 0, MSG_RESTORED, flags, self.meter_id,
                         notice_seq, _u32(self._start_min), _u32(minute if valid else 0),
                         self._start_sec, second if valid else 0, duration,
                         self.last_sequence_ms, self.failures, self.long_failures,
                         self.long_duration_s, e0, self._alarm_seq,
                         min(self.suppressed, 0xFFFF), min(self.dips, 0xFFFF))
        self._seal(self.notice, _REST_BODY_LEN)
        self._flags = 0
        self.events.log(ev.POWER_RESTORED, minute if valid else -1, second,
                        min(duration, 0x3FFFFFFF), self.last_sequence_ms)
        if flags & F_LONG:
            self.events.log(ev.LONG_POWER_FAIL, minute if valid else -1, second,
                            min(duration, 0x3FFFFFFF), 0)
        self.notice_pending = False
        if not suppressed:
            self.sys.notify_broute(MSG_RESTORED)
            self.notice_pending = not self.sys.send_alarm(self.notice)
        self.sys.persist_lastgasp(self.state_bytes())


def decode(payload, mac):
    """Parse and verify a Last Gasp alarm or restoration notice (head-end side).
    Returns a dict; raises ValueError with a specific code when malformed or forged."""
    n = len(payload)
    if n < 1:
        raise ValueError("E_EMPTY")
    kind = payload[0]
    if kind == MSG_LAST_GASP:
        body, fmt, size = _GASP_BODY_LEN, _GASP_BODY, _GASP_LEN
    elif kind == MSG_RESTORED:
        body, fmt, size = _REST_BODY_LEN, _REST_BODY, _REST_LEN
    else:
        raise ValueError("E_TYPE")
    if n != size:
        raise ValueError("E_LENGTH")
    from meter.mac import equal
    mv = memoryview(payload)
    if not equal(mac.digest(mv[:body]), mv[body:size]):
        raise ValueError("E_MAC")
    v = struct.unpack(fmt, bytes(mv[:body]))
    if kind == MSG_LAST_GASP:
        return {"type": "last_gasp", "flags": v[1], "meter_id": v[2], "seq": v[3],
                "start_minute": v[4], "start_second": v[5], "repeat": v[6], "e0": v[7],
                "e3": v[8], "unit": v[9], "coefficient": v[10]}
    return {"type": "restored", "flags": v[1], "meter_id": v[2], "seq": v[3],
            "start_minute": v[4], "end_minute": v[5], "start_second": v[6],
            "end_second": v[7], "duration_s": v[8], "sequence_ms": v[9], "failures": v[10],
            "long_failures": v[11], "long_duration_s": v[12], "e0": v[13],
            "alarm_seq": v[14], "suppressed": v[15], "dips": v[16]}
