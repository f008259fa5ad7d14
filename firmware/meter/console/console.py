# The bench console: line protocol over a serial port, bench mode, authentication, audit.
#
# The shell calls poll(now) often (every 20 ms on the board, Meter.console_poll()); each call
# does a bounded amount of work and never waits:
#   1. timers: the bench-mode timeout, the end of an injected power failure or load, the
#      relay test's next step (integer comparisons; nothing runs while none is armed);
#   2. pending output: at most WRITE_PER_POLL bytes are handed to the port per call (a slow
#      or absent reader never blocks the meter, nor the input: a reply that would take the
#      backlog past OUT_MAX bytes is dropped and counted, out_dropped);
#   3. input: at most READ_PER_POLL bytes read, at most LINES_PER_POLL lines run (flood
#      lines dropped unread cost only their bytes).
# An idle poll (nothing armed, nothing waiting, nothing received) allocates nothing.
#
# Bad input never changes state and always gets one clear error line: a line over the limit
# (E_LINE_TOO_LONG) or with bytes outside printable ASCII (E_BINARY) is discarded whole; an
# unknown command is E_UNKNOWN_COMMAND; more than FLOOD_LINES lines in FLOOD_WINDOW_MS are
# dropped (one E_FLOOD line per window). Every error is counted by code (`stats`).
#
# Bench mode is entered by the bench pin held at boot (hal.console.bench) or by a signed
# `bench on`; it ends on its own BENCH_S after entry (CONSOLE_BENCH_S), by `bench off`, and
# on its end every injection stops (the power-good level returns, the load stops, a relay
# the console opened closes again, the drill on demand it started ends). Privileged
# commands (commands.PRIV) need a challenge-response (meter.console.auth); those marked
# BENCH need bench mode as well. Each privileged line is an entry in the command audit log
# (meter.control.audit, codes commands.AUDIT_*, counter = the challenge number): authentic
# ones always persisted, refusals at most AUDIT_REFUSALS per AUDIT_WINDOW_MS (the rest in
# RAM, counted unsaved), so a flood cannot wear the flash; a failed MAC also stamps
# TAMPER_AUTH (as remote commands do).

from micropython import const

from meter import events as ev
from meter.console import lines as ln
from meter.console.auth import KEY_NAMES
from meter.console.commands import (COMMANDS, PRIV, BENCH, PRIV_AUDIT, AUDIT_BENCH,
                                    R_CONSOLE)
from meter.console.reply import Reply
from meter.control import status
from meter.errors import code as error_code
from meter.ticks import add_ms, elapsed_ms

READ_CHUNK = const(64)
READ_PER_POLL = const(256)
LINES_PER_POLL = const(2)
WRITE_PER_POLL = const(128)
OUT_MAX = const(4096)
FLOOD_LINES = const(50)
FLOOD_WINDOW_MS = const(1000)
AUDIT_REFUSALS = const(4)
AUDIT_WINDOW_MS = const(60_000)
BENCH_S = const(900)
RELAY_CHECK_MS = const(300)  # feedback judged this long after a move (breaker SETTLE_MS 200)

BENCH_OFF = const(0)
BENCH_SIGNED = const(1)
BENCH_PIN = const(2)
BENCH_HOW = ("off", "signed", "pin")
_R_IDLE = const(0)
_R_OPENING = const(1)
_R_CLOSING = const(2)
_R_PHASES = ("idle", "opening", "closing")
_LINE_ERRORS = {ln.TOO_LONG: ("E_LINE_TOO_LONG", "line over %d bytes discarded" % ln.LINE_MAX),
                ln.BINARY: ("E_BINARY", "bytes outside printable ASCII: line discarded")}
_AUTH_STATUS = {"E_AUTH": status.E_MAC, "E_NO_CHALLENGE": status.E_REPLAY,
                "E_CHALLENGE_EXPIRED": status.E_REPLAY}


class Console:
    """meter: meter.app.Meter; port: meter.hal.Uart; auth: meter.console.auth.ConsoleAuth;
    power, load: the meter's InjectedPowerGood / InjectedLoad (or None); bench_pin: an input
    read once at boot (value() 1: bench mode) or None."""

    def __init__(self, meter, port, auth, power=None, load=None, bench_pin=None,
                 bench_s=BENCH_S, max_power_w=40_000):
        self.meter = meter
        self.port = port
        self.auth = auth
        self.power = power
        self.load = load
        self.bench_pin = bench_pin
        self.bench_s = bench_s
        self.max_power_w = max_power_w
        self.reader = ln.LineReader()
        self._rx = bytearray(READ_CHUNK)
        self._rx_i = 0
        self._rx_n = 0
        self._pending = None  # output bytes not yet taken by the port
        self._pend_i = 0
        self.json = False
        # counters
        self.rx_bytes = 0
        self.commands = 0
        self.errors = 0
        self.error_codes = {}
        self.flooded = 0
        self.out_dropped = 0
        self.unaudited = 0
        self._win_ms = 0
        self._win_n = 0
        self._flood_told = False
        self._aud_ms = 0
        self._aud_n = 0
        # bench mode and what runs in it
        self.bench = BENCH_OFF
        self._bench_ms = 0
        self._armed = False  # a timer below runs
        self._fail_end = 0
        self._load_end = 0
        self.relay_phase = _R_IDLE
        self._relay_ms = 0
        self.relay_held_open = False
        self.relay_result = None  # "pass", "fail", "aborted" of the last test
        self.relay_open_sensed = None
        self.relay_close_sensed = None
        self.last_audit = None  # the journal Report of the latest `journal audit`
        self.audit_ms = None  # when it ran (ms): audits are rate limited
        self.drill_end = None  # the limiter's demand_end_ms of the drill the console started

    # ---- entry points ----------------------------------------------------------------

    def start(self, now):
        """Boot (Meter.boot): the bench pin held -> bench mode."""
        pin = self.bench_pin
        if pin is not None and pin.value():
            self.enter_bench(now, BENCH_PIN)
            self._audit(now, AUDIT_BENCH, status.OK, BENCH_PIN, True)

    def poll(self, now):
        """Bounded console work at `now`; returns the number of lines handled."""
        if self._armed:
            self._timers(now)
        if self._pending is not None:
            self._flush()  # input is read all the same: a reader that stalls loses replies
        handled = 0
        budget = READ_PER_POLL
        rd = self.reader
        while handled < LINES_PER_POLL:
            if self._rx_i >= self._rx_n:
                if budget <= 0:
                    break
                try:
                    n = self.port.readinto(self._rx)
                except OSError:
                    n = 0
                if not n:
                    break
                self._rx_i = 0
                self._rx_n = n
                self.rx_bytes += n
                budget -= n
            j = rd.feed(self._rx, self._rx_i, self._rx_n)
            if j == ln.NEED_MORE:
                self._rx_i = self._rx_n
                continue
            self._rx_i = j
            if self._line(now):
                handled += 1
        return handled

    # ---- lines -----------------------------------------------------------------------

    def _admit(self, now):
        el = elapsed_ms(now.ms, self._win_ms)
        if self._win_n == 0 or el < 0 or el >= FLOOD_WINDOW_MS:
            self._win_ms = now.ms
            self._win_n = 0
            self._flood_told = False
        self._win_n += 1
        return self._win_n <= FLOOD_LINES

    def _line(self, now):
        """Handle the line in the reader; True when it ran a command (a dropped flood line,
        cheap, does not count against LINES_PER_POLL: READ_PER_POLL bounds those)."""
        rd = self.reader
        if not self._admit(now):
            self.flooded += 1
            rd.reset()
            if not self._flood_told:
                self._flood_told = True
                self._reply(Reply("-").fail(
                    "E_FLOOD", "more than %d lines in %d ms: lines dropped"
                    % (FLOOD_LINES, FLOOD_WINDOW_MS)))
            return False
        if rd.status != ln.OK:
            err, detail = _LINE_ERRORS[rd.status]
            rd.reset()
            self._reply(Reply("-").fail(err, detail))
            return True
        text = bytes(memoryview(rd.buf)[:rd.n]).decode()
        rd.reset()
        self.dispatch(text, now)
        return True

    def dispatch(self, text, now):
        """Run one command line (without its LF) and send the reply."""
        tokens = text.split()
        if not tokens:
            return
        self.commands += 1
        mac_hex = None
        if len(tokens) > 1 and tokens[-1].startswith("mac="):
            mac_hex = tokens.pop()[4:]
        name = tokens[0].lower()
        args = tokens[1:]
        if name == "bench" and args and args[0] == "on":
            name = "bench on"
            args = args[1:]
        entry = COMMANDS.get(name)
        r = Reply(name)
        if entry is None:
            r.fail("E_UNKNOWN_COMMAND", "%s (try help)" % name[:24])
        elif entry[1] & PRIV:
            self._privileged(name, entry, args, " ".join(tokens), mac_hex, now, r)
        elif mac_hex is not None:
            r.fail("E_ARGS", "mac= belongs to privileged commands only")
        else:
            try:
                entry[0](self, args, now, r)
            except Exception as e:  # a handler bug must not end the console task
                r.fail("E_INTERNAL", error_code(e))
        self._reply(r)

    def _privileged(self, name, entry, args, text, mac_hex, now, r):
        acode = PRIV_AUDIT[name]
        if self.meter.command_log is None:
            r.fail("E_NO_AUDIT", "no command audit log on this meter: privileged disabled")
            self.unaudited += 1
            return
        if self.meter.safe_mode:
            r.fail("E_SAFE_MODE", "safe mode: metering and storage only")
            self._audit(now, acode, status.E_STATE, 0, False)
            return
        if entry[1] & BENCH and not self.bench_active(now):
            r.fail("E_NOT_BENCH", "bench mode is off: bench pin at boot or a signed bench on")
            self._audit(now, acode, status.E_STATE, 0, False)
            return
        if mac_hex is None:
            r.fail("E_AUTH_REQUIRED", "get a challenge, end the line with mac=<hmac>")
            self._audit(now, acode, status.E_MALFORMED, 0, False)
            return
        err, kind = self.auth.verify(text, mac_hex, now)
        if err is not None:
            if err == "E_AUTH_LOCKED":
                r.fail(err, "too many failed authentications: retry in %d s"
                       % self.auth.lock_left_s(now))
            else:
                r.fail(err, "challenge-response refused")
            st = _AUTH_STATUS.get(err, status.E_STATE)
            if self._audit(now, acode, st, 0, False) and st == status.E_MAC:
                self.meter.events.stamp(ev.TAMPER_AUTH, now, st, self.auth.cid)
            return
        try:
            st, arg = entry[0](self, args, now, r)
        except Exception as e:
            r.fail("E_INTERNAL", error_code(e))
            st, arg = status.E_STATE, 0
        r.add("key", KEY_NAMES[kind]).add("cid", self.auth.cid)
        self._audit(now, acode, st, arg, True)

    def _audit(self, now, acode, st, arg, authentic):
        """One audit entry; True when it is persisted."""
        log = self.meter.command_log
        if log is None:
            self.unaudited += 1
            return False
        keep = authentic
        if not keep:
            el = elapsed_ms(now.ms, self._aud_ms)
            if self._aud_n == 0 or el < 0 or el >= AUDIT_WINDOW_MS:
                self._aud_ms = now.ms
                self._aud_n = 0
            self._aud_n += 1
            keep = self._aud_n <= AUDIT_REFUSALS
        log.append(self.auth.cid, now.ev_minute, now.second, acode, st, arg, keep)
        return keep

    # ---- output ----------------------------------------------------------------------

    def _reply(self, r):
        if r.error:
            self.errors += 1
            self.error_codes[r.error] = self.error_codes.get(r.error, 0) + 1
        self._emit(r.json() if self.json else r.human())

    def _emit(self, text):
        data = text.encode()
        p = self._pending
        if p is not None:
            if len(p) - self._pend_i + len(data) > OUT_MAX:
                self.out_dropped += 1
                return
            data = bytes(p[self._pend_i:]) + data
        elif len(data) > OUT_MAX:
            self.out_dropped += 1
            return
        self._pending = data
        self._pend_i = 0
        self._flush()

    def _flush(self):
        p = self._pending
        i = self._pend_i
        end = i + WRITE_PER_POLL
        if end > len(p):
            end = len(p)
        try:
            n = self.port.write(memoryview(p)[i:end])
        except OSError:  # a pty with nobody reading: EAGAIN
            n = 0
        i += n or 0
        if i >= len(p):
            self._pending = None
            i = 0
        self._pend_i = i

    # ---- bench mode and its actions --------------------------------------------------

    def bench_active(self, now):
        if self.bench != BENCH_OFF and self._bench_left_ms(now) <= 0:
            self.leave_bench(now, 0)
        return self.bench != BENCH_OFF

    def _bench_left_ms(self, now):
        el = elapsed_ms(now.ms, self._bench_ms)
        return self.bench_s * 1000 - el if el >= 0 else 0

    def enter_bench(self, now, how):
        self.bench = how
        self._bench_ms = now.ms
        self._armed = True

    def leave_bench(self, now, how=0):
        """Bench mode ends (timeout, `bench off`): every injection stops; audited."""
        if self.bench == BENCH_OFF:
            return
        self.bench = BENCH_OFF
        if self.power is not None:
            self.power.end()
        self.stop_load()
        lim = self.meter.limiter
        if lim is not None and self.drill_end is not None:
            if lim.demand_a and lim.demand_end_ms == self.drill_end:
                lim.demand_a = 0  # the console's drill on demand ends with bench mode
            self.drill_end = None
        if lim is not None and (self.relay_held_open or self.relay_phase != _R_IDLE):
            if self.relay_phase != _R_IDLE:
                self.relay_result = "aborted"
                self.relay_phase = _R_IDLE
            self.relay_held_open = False
            if lim.state == 0 and not lim.breaker.closed():
                self._relay_move(now, True)
        self._audit(now, AUDIT_BENCH, status.OK, how, True)

    def start_failure(self, now, ms):
        self.power.begin()
        self._fail_end = add_ms(now.ms, ms)
        self._armed = True

    def start_load(self, now, w, s):
        self.load.start(w, now.ms)
        self._load_end = add_ms(now.ms, s * 1000)
        self._armed = True

    def stop_load(self):
        if self.load is not None:
            self.load.stop()

    def _relay_move(self, now, closed):
        brk = self.meter.limiter.breaker
        brk.command(closed, now)
        self.meter.events.stamp(ev.BREAKER_CLOSE if closed else ev.BREAKER_OPEN, now,
                                R_CONSOLE, 0)

    def relay_action(self, now, what):
        """test / open / close: None when started, else an E_ code (nothing moved)."""
        lim = self.meter.limiter
        if self.relay_phase != _R_IDLE:
            return "E_BUSY"
        if what == "close":
            if not self.relay_held_open:
                return "E_STATE"
            self.relay_held_open = False
            self._relay_move(now, True)
            return None
        if lim.state != 0 or not lim.breaker.closed() or self.relay_held_open:
            return "E_STATE"  # only a breaker the limiter holds closed is tested
        self._relay_move(now, False)
        if what == "open":
            self.relay_held_open = True
            return None
        self.relay_phase = _R_OPENING
        self.relay_result = None
        self.relay_open_sensed = None
        self.relay_close_sensed = None
        self._relay_ms = now.ms
        self._armed = True
        return None

    def _timers(self, now):
        armed = False
        if self.bench != BENCH_OFF:
            if self._bench_left_ms(now) <= 0:
                self.leave_bench(now, 0)
            else:
                armed = True
        pg = self.power
        if pg is not None and pg.low:
            if elapsed_ms(now.ms, self._fail_end) >= 0:
                pg.end()
            else:
                armed = True
        ld = self.load
        if ld is not None and ld.w:
            if elapsed_ms(now.ms, self._load_end) >= 0:
                ld.stop()
            else:
                armed = True
        if self.relay_phase != _R_IDLE:
            self._relay_step(now)
            armed = armed or self.relay_phase != _R_IDLE
        self._armed = armed

    def _relay_step(self, now):
        lim = self.meter.limiter
        brk = lim.breaker
        if lim.state != 0:  # the limiter tripped meanwhile: it owns the relay now
            self.relay_phase = _R_IDLE
            self.relay_result = "aborted"
            return
        if elapsed_ms(now.ms, self._relay_ms) < RELAY_CHECK_MS:
            return
        if self.relay_phase == _R_OPENING:
            self.relay_open_sensed = brk.relay.sensed()
            self._relay_move(now, True)
            self.relay_phase = _R_CLOSING
            self._relay_ms = now.ms
            return
        self.relay_close_sensed = brk.relay.sensed()
        ok = self.relay_open_sensed is False and self.relay_close_sensed is True \
            and not brk.fault
        self.relay_result = "pass" if ok else "fail"
        self.relay_phase = _R_IDLE

    # ---- reports ---------------------------------------------------------------------

    def bench_report(self, now, r):
        on = self.bench_active(now)
        r.add("bench", on).add("entered_by", BENCH_HOW[self.bench])
        r.add("left_s", (self._bench_left_ms(now) + 999) // 1000 if on else 0)
        r.add("keys", self.auth.key_names())
        pg = self.power
        r.add("failure_running", pg is not None and pg.low)
        r.add("failures_injected", pg.injected if pg is not None else 0)
        ld = self.load
        r.add("load_w", ld.w if ld is not None else 0)
        r.add("injected_j", ld.injected_j if ld is not None else 0)
        r.add("load_clipped", ld.clipped if ld is not None else 0)
        r.add("banked_j", ld.banked_j if ld is not None else 0)
        r.add("bank_owed_j", ld.bank[0] if ld is not None else 0)
        self.relay_report(r)

    def relay_report(self, r):
        r.add("relay_phase", _R_PHASES[self.relay_phase]).add("relay_result", self.relay_result)
        r.add("relay_open_sensed", self.relay_open_sensed)
        r.add("relay_close_sensed", self.relay_close_sensed)
        r.add("relay_held_open", self.relay_held_open)
