# The meter's runtime: the entry points a shell calls, over parts built by meter.assembly.
#
# A shell (the board's asyncio loop in firmware/main.py, the host simulation, a test rig)
# builds a meter with meter.assembly.build_meter(), calls boot() once, and then:
#   step()        once a second: one metering second (sample, capture, limiter, commits,
#                 the Last Gasp machine at 1 s pace);
#   idle()        between seconds: background work (journal compaction, one erase at most);
#   serve()       often (every 20 ms on the board): pending B-route frames, the A-route;
#   power_poll()  while mains is failing: the Last Gasp machine at ms pace; returns what
#                 the shell must do next (meter.outage.lastgasp IDLE, FAST, SLEEP);
#   command(req)  a head-end command (A-route) -> signed response;
#   console_poll() often (every 20 ms on the board): the bench console (meter.console), when
#                 built (the CONSOLE setting); bounded work, allocation-free when idle.
# Each entry point reads the clock once into the preallocated Now and passes it down, so
# every part of a step sees the same instant. Nothing here sleeps, blocks or imports time.

from micropython import const

from meter import events as ev
from meter.clock import Now
from meter.errors import SettingError
from meter.metering.samples import NO_VALUE
from meter.ticks import elapsed_ms

FIRMWARE_VERSION = const(1)  # a small int logged at start-up (major * 100 + minor)
_STALE_S = const(5)  # seconds without a sample after which the current is unknown
_TAMPER_RETRY_MS = const(60_000)  # ms before a tamper alarm the uplink refused is retried
IDLE = const(0)  # power_poll(): nothing runs, the 1 s cadence suffices (lastgasp.IDLE)


class Meter:
    """One meter: the parts built by meter.assembly and the entry points that drive them.
    Parts not fitted are None (store, broute, limiter, commands, lastgasp, alarms)."""

    def __init__(self, hal, meter_id, core, store, echonet, broute, control, lastgasp, alarms):
        self.hal = hal
        self.meter_id = meter_id
        self.clock = hal.clock
        self.metrology = hal.metrology
        self.power_good = hal.power_good
        self.uplink = hal.uplink
        self.regs = core.regs
        self.capture = core.capture
        self.metering = core.metering
        self.events = core.events
        self.sample = core.sample
        self.store = store
        self.journal = store.journal if store is not None else None
        self.echonet = echonet
        self.broute = broute
        self.control = control
        self.limiter = control.limiter if control is not None else None
        self.commands = control.commands if control is not None else None
        self.command_log = control.audit if control is not None else None
        self.lastgasp = lastgasp
        self.holdup = lastgasp.platform if lastgasp is not None else None
        self.alarms = alarms
        self.aroute = None  # the A-route (meter.aroute.service.ARoute), also the uplink
        self.console = None  # the bench console (meter.console.console.Console) or None
        self.step_us = -1  # the shell's measure of the latest step() (us; -1: not measured)
        self.step_us_max = -1  # ... and the longest since boot
        self.now = Now()
        self.mount_report = None
        self.safe_mode = False  # built by build_meter(..., safe_mode=True): no B-route/commands
        self.booted = False
        self.ticks = 0
        self.silent = 0  # seconds in which the front end delivered no sample
        self._quiet = 0  # consecutive such seconds
        self._i_ma = NO_VALUE  # raw current of the latest sample, for the limiter
        self._i2_ma = NO_VALUE
        self._tamper_told = 0  # the store's tamper_count the head-end was last alarmed of
        self._tamper_tried = False  # an alarm of a newer count was tried at _tamper_ms
        self._tamper_ms = 0

    # ---- boot ------------------------------------------------------------------------------

    def boot(self, reset_kind=0, set_clock=None):
        """Start-up, once: rebuild what the journal holds (registers, series, events, control
        and Last Gasp state), then log the start and apply what happened while the meter was
        off (reservation ends, the outage's restoration notice). set_clock(meter), when given,
        runs between the two, where a shell sets the wall clock from its time source knowing
        what was restored. Returns the journal's mount report (None without storage)."""
        if self.booted:
            raise SettingError("E_BOOTED")
        self.booted = True
        now = self.now.read(self.clock)
        if self.store is not None:
            self.mount_report = self.store.restore(now)
        if self.lastgasp is not None:
            self.lastgasp.recover(now)  # a malformed record is logged and ignored
        if set_clock is not None:
            set_clock(self)
            now = self.now.read(self.clock)
        self.events.log(ev.STARTUP, now.ev_minute, now.second, reset_kind, FIRMWARE_VERSION)
        if self.store is None:  # said at every boot: this meter keeps nothing
            self.events.stamp(ev.NOT_DURABLE, now, 1 if self.hal.flash is None else 2)
        if self.control is not None:
            from meter.control.assembly import restore_control

            restore_control(self.control, self.store)
            self.limiter.start(now)
        if self.lastgasp is not None:
            level = self.power_good.value() if self.power_good is not None else 1
            self.lastgasp.boot(now, level)
        if self.aroute is not None:
            self.aroute.boot(now)
        if self.console is not None:
            self.console.start(now)  # the bench pin held at boot: bench mode
        return self.mount_report

    # ---- the metering second -----------------------------------------------------------

    def step(self):
        """One metering second. Returns the interval-capture bits (REJECTED set when the
        sample was refused). Allocation-free in steady state."""
        now = self.now.read(self.clock)
        s = self.sample
        if self.metrology.poll(s, now.ms):
            bits = self.metering.tick(s, now)
            # The limiter sees the measured current even when the sample failed the
            # plausibility check: an overload above the meter's rating must still trip.
            self._i_ma = s.i_ma
            self._i2_ma = s.i2_ma
            self._quiet = 0
        else:
            self.silent += 1
            bits = self.metering.clock_tick(now)
            self._quiet += 1
            if self._quiet > _STALE_S:  # current unknown: the limiter neither trips nor counts
                self._i_ma = NO_VALUE
                self._i2_ma = NO_VALUE
        self.ticks += 1
        lim = self.limiter
        if lim is not None:
            lim.tick(now, self._i_ma, self._i2_ma)
            brk = lim.breaker
            if brk.alarm and self.alarms is not None:
                # relay feedback disagrees with the command: tell the head-end at once
                self.alarms.send(self.uplink, ev.BREAKER_FAULT, now,
                                 1 if brk.relay.commanded() else 0,
                                 1 if brk.relay.sensed() else 0)
                brk.ack_alarm()
        if self.store is not None and not self.metering.frozen:
            self.store.on_tick(now, bits)  # commits at minute boundaries (and every 60 s)
            self.store.retain()  # the running copy a crash or reset cannot take (no flash)
        if self.store is not None and self.alarms is not None and self.background:
            self._tamper_alarm(now)
        if self.power_good is not None and self.lastgasp is not None:
            self.lastgasp.poll(now, self.power_good.value())
        return bits

    def _tamper_alarm(self, now):
        """A tamper finding the head-end was not alarmed of (the store's tamper register
        counts each one; once after every boot while evidence stands): a sealed TAMPER_SEAL
        alarm (a: sector, b: record seq of the newest finding), retried every
        _TAMPER_RETRY_MS until the uplink takes it. Allocation-free while nothing is due."""
        st = self.store
        n = st.tamper_count
        if n == self._tamper_told or not st.tamper_pending():
            return
        if self._tamper_tried:
            el = elapsed_ms(now.ms, self._tamper_ms)
            if 0 <= el < _TAMPER_RETRY_MS:
                return
        self._tamper_tried = True
        self._tamper_ms = now.ms
        last = st.tamper_last
        a, b = (last[1], last[2]) if last is not None else (-1, -1)
        if self.alarms.send(self.uplink, ev.TAMPER_SEAL, now, a, b):
            self._tamper_told = n
            self._tamper_tried = False

    def idle(self):
        """Background work between seconds (journal compaction, at most one sector erase
        per call); stopped while the Last Gasp sequence holds."""
        if self.store is not None and self.background:
            self.store.compact_step()

    def serve(self):
        """Serve pending B-route frames and drive the A-route (call often: every loop
        iteration, >= 1/s). Returns the B-route's count."""
        b = self.broute
        a = self.aroute
        if (b is None and a is None) or not self.radios:
            return 0
        now = self.now.read(self.clock)
        if a is not None:
            a.poll(now)
        return b.poll(now) if b is not None else 0

    def console_poll(self):
        """The bench console: timers, pending output, at most a few received lines. Returns
        the lines handled (0 without a console)."""
        c = self.console
        if c is None:
            return 0
        return c.poll(self.now.read(self.clock))

    def note_step_us(self, us):
        """The shell's measure of one step() in us (shown by the console's heap command)."""
        self.step_us = us
        if us > self.step_us_max:
            self.step_us_max = us

    def power_poll(self):
        """The Last Gasp machine at ms pace while mains is failing. Returns what the shell
        must do next: IDLE (mains present, nothing running), FAST (poll again within
        lastgasp.FAST_MS) or SLEEP (sequence over: sleep until power-good rises, then poll
        again)."""
        lg = self.lastgasp
        if lg is None or self.power_good is None:
            return IDLE
        return lg.poll(self.now.read(self.clock), self.power_good.value())

    # ---- operations ------------------------------------------------------------------------

    def command(self, request, dup=False):
        """A remote command from the head-end (A-route): returns the signed response, or
        None when this meter has no key (commands cannot be authenticated). dup: the
        broker's redelivery flag (see CommandProcessor.handle)."""
        if self.commands is None:
            return None
        return self.commands.handle(request, self.now.read(self.clock), dup)

    def set_clock(self, minute, second, force=False):
        """Set the wall clock by command (clock-adjust events, persisted). Returns the jump
        in seconds, or None when the clock was invalid before. A change of a valid clock by
        more than meter.clock.CLOCK_JUMP_S needs force=True (else SettingError
        E_CLOCK_JUMP, nothing changed); a forced correction behind the capture's high-water
        mark drops the values stamped after the corrected time and capture resumes at once
        (meter.clock.set_clock). SettingError E_NO_STORAGE on a meter without a journal
        (the adjustment could not be made durable)."""
        from meter.clock import set_clock

        if self.store is None:
            raise SettingError("E_NO_STORAGE")
        return set_clock(self.clock, self.events, self.store, minute, second, self.capture,
                         force)

    def audit(self):
        """On-demand audit: re-verify every journal record and the seal chain; a break is
        logged (TAMPER_SEAL) and reported, nothing is repaired. Returns the journal Report,
        or None on a meter without storage."""
        if self.store is None:
            return None
        return self.store.audit()

    def power_down(self):
        """Orderly power-down (a shell stopping the meter): commit like the Last Gasp, then
        take the radios down."""
        if self.aroute is not None:
            self.aroute.power_down()  # the outbox cursors, then DISCONNECT
        if self.store is not None:
            self.store.commit_now()
        if self.broute is not None:
            self.broute.suspend()

    def note(self, code, a=0, b=0):
        """An event the shell observed (meter.events codes: TASK_FAILED, SAFE_MODE,
        BOARD_RESET), stamped now. Returns its seq."""
        return self.events.stamp(code, self.now.read(self.clock), a, b)

    @property
    def durable(self):
        """True when what the meter measures is kept (a journal on flash, sealed with the
        key); False: RAM only, lost at the next reset (logged NOT_DURABLE at boot, ECHONET
        0x88 reports a fault)."""
        return self.store is not None

    # ---- state the hold-up platform owns ---------------------------------------------------

    @property
    def background(self):
        """False while the Last Gasp sequence holds (no compaction, no erase)."""
        return self.holdup is None or self.holdup.background

    @property
    def radios(self):
        """False once the Last Gasp sequence took the radios down."""
        return self.holdup is None or self.holdup.radios

    @property
    def commits_now(self):
        return self.holdup.commits_now if self.holdup is not None else 0
