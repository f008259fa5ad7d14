# The shell: composes the core for one board and runs it once per second.
#
# Meter is the composition that both the board's asyncio loop and the host simulation
# drive: step() is one metering second, idle() is background work between seconds, and
# power_poll() runs the Last Gasp state machine at millisecond pace while mains is failing.
# Meter also is the platform object the Last Gasp sequence acts on (freeze, commit, alarm,
# radios off). run_board() is the ESP32 entry point (main.py).
#
# Settings come from a config object (the board definition module, or any object with the
# same attributes); absent attributes take the defaults in _DEFAULTS.

from micropython import const

from meter import events as ev
from meter.events import EventLog
from meter.metering.intervals import IntervalCapture, HalfHourHistory
from meter.outage.lastgasp import LastGasp, UP
from meter.mac import Hmac
from meter.metering.samples import Limits, Metering, Sample, NO_VALUE
from meter.metering.registers import EnergyRegisters, FWD, REV

FIRMWARE_VERSION = const(1)  # a small int logged at start-up (major * 100 + minor)
_TICK_MS = const(1000)
_FAST_MS = const(5)  # power-good polling period while an outage is being handled
_SERVE_MS = const(20)  # B-route polling period
_STALE_S = const(5)  # seconds without a sample after which the current is unknown
_GC_EVERY_S = const(10)  # board loop: seconds between explicit garbage collections

_DEFAULTS = {
    "UNIT": 0x02,  # ECHONET E1: 0.01 kWh
    "COEFFICIENT": 1,  # ECHONET D3
    "MAX_POWER_W": 40_000,
    "MAX_CURRENT_MA": 120_000,
    "HISTORY_DAYS_RAM": 2,
    "EVENTS": 128,
    "METER_ID": b"SIM00001",
    "LASTGASP": {},
    "HOLDUP_BUDGET_MS": 4000,
    "CURRENT_LIMITS_A": (10, 15, 20, 30, 40, 50, 60),
    "CONTRACT_LIMIT_A": 60,
    "RESERVATION_MAX_MIN": 1440,
    "BROUTE_SERIAL": None,  # 12 ASCII bytes for ECHONET 0x8D; default: METER_ID padded
    "BROUTE_ID": None,  # 16-byte B-route ID (ECHONET 0xC0)
}


def setting(config, name):
    return getattr(config, name, _DEFAULTS[name])


class Meter:
    """One meter. hal has .clock and .metrology, optionally .power_good, .uplink, .radio,
    .relay (meter.hal contracts; missing parts are None). key is the per-meter secret
    (Last Gasp messages and remote commands need it; without it neither runs)."""

    def __init__(self, hal, config=None, key=None):
        self.hal = hal
        self.clock = hal.clock
        self.metrology = hal.metrology
        self.power_good = getattr(hal, "power_good", None)
        self.uplink = getattr(hal, "uplink", None)
        self.regs = EnergyRegisters(setting(config, "UNIT"), setting(config, "COEFFICIENT"))
        self.capture = IntervalCapture(self.regs,
                                       half=HalfHourHistory(setting(config, "HISTORY_DAYS_RAM")))
        self.metering = Metering(self.regs, self.capture,
                                 Limits(setting(config, "MAX_POWER_W"),
                                        setting(config, "MAX_CURRENT_MA")))
        self.events = EventLog(setting(config, "EVENTS"))
        self.sample = Sample()
        self.store = None  # meter.storage.store when the board has flash and a key
        self.mount_report = None
        self._restored = False
        self.broute = None  # B-route pump (meter.broute.pump) when a radio slot exists
        self.ticks = 0
        self.silent = 0  # seconds in which the front end delivered no sample
        self._quiet = 0  # consecutive such seconds
        self._i_ma = NO_VALUE  # raw current of the latest sample, for the limiter
        self._i2_ma = NO_VALUE
        self.background = True
        self.radios = True
        self.asleep = False
        self.commits_now = 0
        self.commit_failures = 0  # Last Gasp commits the journal could not take
        # the board provisions its own id (hal.meter_id); a config may name one (the sim)
        self.meter_id = getattr(hal, "meter_id", None) or setting(config, "METER_ID")
        self.mac = Hmac(key) if key else None
        flash = getattr(hal, "flash", None)
        if flash is not None and self.mac is not None:
            self._storage(flash, config)
        self.lastgasp = None
        if self.mac is not None:
            lg = setting(config, "LASTGASP")
            self.lastgasp = LastGasp(self, self.meter_id, self.mac, self.events,
                                     setting(config, "HOLDUP_BUDGET_MS"), **lg)
        self.limiter = None
        self.commands = None
        self.alarms = None
        if self.mac is not None:
            from meter.outage.alarms import AlarmSender

            self.alarms = AlarmSender(self.meter_id, self.mac)
        relay = getattr(hal, "relay", None)
        if relay is not None:
            self._remote_control(relay, config, key)
        if getattr(hal, "radio", None) is not None:
            self._broute(config, getattr(hal, "broute_key", None))

    def _broute(self, config, master_key):
        """ECHONET Lite on the fitted radio module; a module is used only once it has
        answered the challenge keyed from the A-route master key."""
        import os
        from meter.broute.echonet import service as echonet
        from meter.broute.echonet.node import Identity
        from meter.broute.radio.auth import ModuleAuth
        from meter.broute.pump import BRoute

        serial = setting(config, "BROUTE_SERIAL")
        if serial is None:
            serial = (self.meter_id + b"000000000000")[:12]
        history = self.store.history_count if self.store is not None else None
        svc = echonet.build(self.regs, self.metering, self.capture,
                            Identity(serial=serial, broute_id=setting(config, "BROUTE_ID")),
                            history)
        radio = self.hal.radio
        self.broute = BRoute(svc, ModuleAuth(master_key), self._fitted_radio, os.urandom,
                             events=self.events)
        self._radio = radio

    def _fitted_radio(self):
        r = self._radio
        return r if r is not None and r.present() else None

    def _storage(self, flash, config):
        """The journal on the whole flash region and what is kept in it (meter.storage.store)."""
        from meter.storage import journal as J
        from meter.storage.persist import AUDIT_KEYS
        from meter.storage.store import Store, default_keep

        keep = default_keep(self.capture.five.entries, self.events.entries)
        keep[J.REC_LIMITER] = 3
        keep[J.REC_AUDIT] = AUDIT_KEYS
        self.journal = J.Journal(flash, 0, flash.sector_count(), self.mac, keep)
        self.store = Store(self.journal, self.regs, self.capture, self.events)

    def _remote_control(self, relay, config, key):
        """Current limiter, breaker and reservations; signed commands when a key exists."""
        from meter.control.audit import AuditLog
        from meter.control.breaker import Breaker
        from meter.control.limiter import Limiter
        from meter.storage.persist import NullStore
        from meter.control.reservations import ReservationTable

        if self.store is not None:
            from meter.storage import journal as J
            from meter.storage.persist import JournalStore

            cs = JournalStore(self.journal, J.REC_LIMITER, J.REC_RESERVATIONS, J.REC_AUDIT)
        else:
            cs = NullStore()
        self.control_store = cs
        table = ReservationTable(self.events, cs, setting(config, "CURRENT_LIMITS_A"),
                                 setting(config, "RESERVATION_MAX_MIN"))
        self.limiter = Limiter(table, Breaker(relay, self.events), self.events, cs,
                               setting(config, "CONTRACT_LIMIT_A"))
        self.command_log = AuditLog(cs)  # the persisted audit log of remote commands
        if key:
            from meter.control.command import CommandProcessor

            self.commands = CommandProcessor(self.meter_id, key, self.limiter,
                                             self.command_log, self.events, cs)

    # ---- start-up ----------------------------------------------------------------------

    def restore(self):
        """Boot, first half: rebuild the state the journal holds (registers, rings,
        history, events, Last Gasp state). start() calls it when the shell did not."""
        self._restored = True
        st = self.store
        if st is None:
            return None
        c = self.clock
        valid = c.wall_valid()
        ev_min = c.wall_minute() if valid else -1
        self.mount_report = st.restore(ev_min, c.wall_second())
        if self.lastgasp is not None:
            try:
                self.lastgasp.restore(st.lastgasp_state())
            except ValueError:
                self.events.log(ev.JOURNAL_CORRUPT, ev_min, c.wall_second(), -1, -1)
        return self.mount_report

    def start(self, reset_kind=0):
        """Boot, second half: log the start-up and apply what happened while the meter
        was off (reservation ends, the outage's restoration notice)."""
        if not self._restored:
            self.restore()
        c = self.clock
        minute, second, valid = c.wall_minute(), c.wall_second(), c.wall_valid()
        now = c.ticks_ms()
        self.events.log(ev.STARTUP, minute if valid else -1, second, reset_kind,
                        FIRMWARE_VERSION)
        if self.limiter is not None:
            if self.store is not None:
                self.control_store.restore(self.limiter, self.commands)
            self.limiter.start(now, minute, second, valid)
        if self.lastgasp is not None:
            level = self.power_good.value() if self.power_good is not None else 1
            self.lastgasp.boot(now, level, minute, second, valid)

    # ---- the metering second ---------------------------------------------------------------

    def step(self):
        """One metering second. Returns the interval-capture bits (REJECTED set when the
        sample was refused)."""
        c = self.clock
        s = self.sample
        minute = c.wall_minute()
        second = c.wall_second()
        valid = c.wall_valid()
        now = c.ticks_ms()
        if self.metrology.poll(s, now):
            bits = self.metering.tick(s, minute, second, valid)
            # The limiter sees the measured current even when the sample failed the
            # plausibility check: an overload above the meter's rating must still trip.
            self._i_ma = s.i_ma
            self._i2_ma = s.i2_ma
            self._quiet = 0
        else:
            self.silent += 1
            bits = self.metering.clock_tick(minute, second, valid)
            self._quiet += 1
            if self._quiet > _STALE_S:  # current unknown: the limiter neither trips nor counts
                self._i_ma = NO_VALUE
                self._i2_ma = NO_VALUE
        self.ticks += 1
        if self.limiter is not None:
            self.limiter.tick(now, minute, second, valid, self._i_ma, self._i2_ma)
            brk = self.limiter.breaker
            if brk.alarm and self.alarms is not None:
                # relay feedback disagrees with the command: tell the head-end at once
                self.alarms.send(self.uplink, ev.BREAKER_FAULT, minute if valid else -1, second,
                                 1 if brk.relay.commanded() else 0,
                                 1 if brk.relay.sensed() else 0)
                brk.ack_alarm()
        if self.store is not None and not self.metering.frozen:
            self.store.on_tick(now, bits)  # commits at minute boundaries (and every 60 s)
        if self.power_good is not None and self.lastgasp is not None:
            self.lastgasp.poll(now, self.power_good.value(), minute, second, valid)
        return bits

    def command(self, request):
        """A remote command from the head-end (A-route): returns the signed response, or
        None when this meter has no key (commands cannot be authenticated)."""
        if self.commands is None:
            return None
        c = self.clock
        return self.commands.handle(request, c.ticks_ms(), c.wall_minute(), c.wall_second(),
                                    c.wall_valid())

    def serve(self):
        """Serve pending B-route frames (call often: every loop iteration, >= 1/s)."""
        b = self.broute
        if b is None or not self.radios:
            return 0
        c = self.clock
        return b.poll(c.wall_minute(), c.wall_second(), c.wall_valid(), c.ticks_ms())

    def power_poll(self):
        """Fast path while mains is failing: returns the poll period in ms, or 0 when the
        Last Gasp machine is idle (mains present) and the 1 s cadence suffices."""
        lg = self.lastgasp
        if lg is None or self.power_good is None:
            return 0
        c = self.clock
        st = lg.poll(c.ticks_ms(), self.power_good.value(), c.wall_minute(), c.wall_second(),
                     c.wall_valid())
        return 0 if st == UP else _FAST_MS

    def set_clock(self, minute, second):
        """Set the wall clock by command (clock-adjust events, persisted). Returns the jump
        in seconds, or None when the clock was invalid before."""
        from meter.clock import set_clock

        if self.store is None:
            raise OSError("E_NO_STORAGE")
        return set_clock(self.clock, self.events, self.store, minute, second)

    def audit(self):
        """On-demand audit: re-verify every journal record and the seal chain; a break is
        logged (TAMPER_SEAL) and reported, nothing is repaired. Returns the journal Report,
        or None on a meter without storage."""
        if self.store is None:
            return None
        return self.store.audit()

    def idle(self):
        """Background work between seconds (journal compaction, at most one sector erase
        per call), stopped by the Last Gasp sequence."""
        if self.background and self.store is not None:
            self.store.compact_step()

    # ---- the Last Gasp platform ------------------------------------------------------------

    def freeze(self):
        self.metering.frozen = True

    def unfreeze(self):
        self.metering.frozen = False

    def stop_background(self):
        self.background = False

    def resume_background(self):
        self.background = True

    def commit_now(self):
        self.commits_now += 1
        if self.store is not None:
            try:
                self.store.commit_now()
            except Exception:  # JournalFull, a flash fault: the alarm must still go out
                self.commit_failures += 1

    def persist_lastgasp(self, payload):
        if self.store is not None:
            try:
                self.store.save_lastgasp(payload)
            except Exception:
                self.commit_failures += 1

    def send_alarm(self, payload):
        up = self.uplink
        if up is None or not up.connected():
            return False
        return up.send("alarm", payload)

    def notify_broute(self, kind):
        if self.broute is not None:
            self.broute.notify_power(kind)

    def radios_off(self):
        self.radios = False
        if self.broute is not None:
            self.broute.suspend()  # the B-route knows its link is gone

    def radios_on(self):
        self.radios = True
        self.asleep = False
        if self.broute is not None:
            self.broute.resume()

    def sleep(self):
        self.asleep = True
        sleeper = getattr(self.hal, "sleep", None)
        if sleeper is not None:
            sleeper()

    def snapshot(self):
        return self.regs.count[FWD], self.regs.count[REV]

    @property
    def unit(self):
        return self.regs.unit

    @property
    def coefficient(self):
        return self.regs.coefficient


def run_board():
    """ESP32 entry point: build the board's HAL and run the meter forever."""
    import asyncio
    import gc
    import time
    import board_config
    from esp32hal.factory import build_hal

    hal = build_hal(board_config)
    meter = Meter(hal, board_config, key=hal.key)
    meter.start(hal.reset_kind)
    wake = asyncio.ThreadSafeFlag()
    if meter.power_good is not None:
        meter.power_good.irq(lambda pin: wake.set())

    async def metering_task():
        deadline = time.ticks_add(time.ticks_ms(), _TICK_MS)
        n = 0
        while True:
            meter.step()
            if hal.wdt is not None:
                hal.wdt.feed()
            meter.idle()
            n += 1
            if n >= _GC_EVERY_S:
                # The commit and Last Gasp paths allocate a few KB (hashlib objects of the
                # seals): collecting here keeps that much free, so no collection runs on
                # the Last Gasp path.
                n = 0
                gc.collect()
            wait = time.ticks_diff(deadline, time.ticks_ms())
            if wait > 0:
                await asyncio.sleep_ms(wait)
            deadline = time.ticks_add(deadline, _TICK_MS)

    async def power_task():
        # woken by the power-good edge; polls at ms pace until the episode is over
        while True:
            await wake.wait()
            period = meter.power_poll()
            while period:
                await asyncio.sleep_ms(period)
                period = meter.power_poll()

    async def broute_task():
        while True:
            meter.serve()
            await asyncio.sleep_ms(_SERVE_MS)

    async def main():
        asyncio.create_task(power_task())
        if meter.broute is not None:
            asyncio.create_task(broute_task())
        await metering_task()

    asyncio.run(main())
