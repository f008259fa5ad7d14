# The composition root: the one place that builds a meter from (board HAL, config, key).
#
# build_meter(hal, config, key) reads the settings, then builds the sub-assemblies in the
# order their dependencies run, and hands them to the runtime (meter.app.Meter):
#
#   metering core   registers, interval capture, sample accounting, event log
#   storage         the journal on hal.flash and the store that owns every record
#                   (needs the flash and a key: records are sealed)
#   B-route         the ECHONET Lite service over the core and the radio pump, on a board
#                   with a radio module slot (hal.radio)
#   control         limiter, breaker, reservations, drill, signed commands, audit log
#                   (needs hal.relay; commands need a key)
#   A-route         the MQTT uplink to the head-end: outbox, pushes, alarms, commands down
#                   (needs hal.link and a key; not in safe mode); the meter's uplink
#   outage          the Last Gasp machine and its hold-up platform, the alarm sender
#                   (needs a key: alarms are sealed)
#
# The board entry point (firmware/main.py), the host simulation, soak, benchmarks, the
# power-cut campaign, the wear projection, the demo server and the test rigs all build
# through here, so what they run is the product's own composition.
#
# Settings come from a config object (the board definition module, or any object with the
# same attributes); absent attributes take the defaults in DEFAULTS.

from meter.events import EventLog
from meter.mac import Hmac
from meter.metering.intervals import IntervalCapture, HalfHourHistory
from meter.metering.registers import EnergyRegisters
from meter.metering.samples import Limits, Metering, Sample

DEFAULTS = {
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
    "AROUTE_KEEPALIVE_S": 60,  # MQTT keep-alive
    "AROUTE_BACKOFF_MS": (2_000, 300_000, 60_000),  # reconnect base, cap, first-connect max
    "AROUTE_USER": None,  # MQTT user name (bytes) or None
    "AROUTE_PASSWORD": None,
    # the bench console (meter.console): off in production, so no fault can be injected;
    # on (a bench build) it needs hal.console (a UART that is not the REPL's)
    "CONSOLE": False,
    "CONSOLE_BENCH_S": 900,  # bench mode ends on its own this long after entry
    "NOMINAL_V_DV": 1000,  # voltage of an injected load when the front end gives none
}


def setting(config, name):
    return getattr(config, name, DEFAULTS[name])


class Core:
    """The metering core: what every meter has, whatever the board fits."""

    def __init__(self, config):
        self.regs = EnergyRegisters(setting(config, "UNIT"), setting(config, "COEFFICIENT"))
        self.capture = IntervalCapture(
            self.regs, half=HalfHourHistory(setting(config, "HISTORY_DAYS_RAM")))
        self.metering = Metering(self.regs, self.capture,
                                 Limits(setting(config, "MAX_POWER_W"),
                                        setting(config, "MAX_CURRENT_MA")))
        self.events = EventLog(setting(config, "EVENTS"))
        self.sample = Sample()


def build_storage(hal, core, mac):
    """The store on the board's flash (with the board's retained memory, if any), or None
    (no flash, or no key to seal records)."""
    if hal.flash is None or mac is None:
        return None
    from meter.storage.assembly import build_storage as build

    return build(hal.flash, mac, core.regs, core.capture, core.events,
                 retained=hal.retained)


def build_echonet(hal, config, core, store, meter_id):
    """The ECHONET Lite service (node profile + low-voltage smart meter object), or None on
    a board without a B-route radio slot (the stack holds several KB of RAM)."""
    if hal.radio is None:
        return None
    from meter.broute.echonet import service
    from meter.broute.echonet.node import Identity

    serial = setting(config, "BROUTE_SERIAL")
    if serial is None:
        serial = (meter_id + b"000000000000")[:12]
    history = store.history_count if store is not None else None
    svc = service.build(core.regs, core.metering, core.capture,
                        Identity(serial=serial, broute_id=setting(config, "BROUTE_ID")),
                        history)
    if store is not None:
        # 0x88 fault while a tamper finding stands; no data while the registers are lost
        meter = svc.objects[0]
        meter.fault = store.tamper_pending
        meter.registers_valid = lambda: store.registers_valid
    else:
        svc.objects[0].fault = _not_durable  # RAM only: 0x88 reports a fault for good
    return svc


def _not_durable():
    return True


def build_broute(hal, echonet, events):
    """The B-route pump on the board's radio module slot, or None. A module is used only once
    it has answered the challenge keyed from the master key (hal.broute_key)."""
    if echonet is None:
        return None
    from meter.broute.pump import BRoute
    from meter.broute.radio.auth import ModuleAuth

    radio = hal.radio

    def fitted():
        return radio if radio.present() else None

    return BRoute(echonet, ModuleAuth(hal.broute_key), fitted, hal.random, events=events)


def build_control(hal, config, core, store, meter_id, key):
    """Limiter, breaker, reservations and (with a key) signed commands, or None without a
    relay. Restored from the store at boot (Meter.boot). The commands acknowledge and report
    the store's tamper register (ACK_TAMPER, the status block)."""
    if hal.relay is None:
        return None
    from meter.control.assembly import build_control as build

    ack = store.ack_tamper if store is not None else None
    pending = store.tamper_pending if store is not None else None
    return build(hal.relay, core.events, store, meter_id, key, setting(config, "CURRENT_LIMITS_A"),
                 setting(config, "CONTRACT_LIMIT_A"), setting(config, "RESERVATION_MAX_MIN"),
                 ack_tamper=ack, tamper_pending=pending)


def build_aroute(hal, config, core, store, meter_id, mac):
    """The A-route (meter.aroute.service.ARoute: the meter's uplink), or None on a board
    without a link to a broker (hal.link) or without a key (nothing could be sealed)."""
    if hal.link is None or mac is None:
        return None
    from meter.aroute.assembly import build_aroute as build

    return build(hal, core, store, meter_id, mac, setting(config, "AROUTE_KEEPALIVE_S"),
                 setting(config, "AROUTE_BACKOFF_MS"), setting(config, "AROUTE_USER"),
                 setting(config, "AROUTE_PASSWORD"))


def build_outage(hal, config, core, store, broute, meter_id, mac, uplink=None):
    """(Last Gasp machine, alarm sender), or (None, None) without a key. uplink: the
    A-route, else hal.uplink."""
    if mac is None:
        return None, None
    from meter.outage.assembly import build_alarms, build_outage as build

    if uplink is None:
        uplink = hal.uplink
    lastgasp = build(meter_id, mac, core.events, core.regs, core.metering, store, uplink,
                     broute, setting(config, "HOLDUP_BUDGET_MS"), setting(config, "LASTGASP"))
    return lastgasp, build_alarms(meter_id, mac)


def build_meter(hal, config=None, key=None, safe_mode=False):
    """A meter on `hal` (meter.hal.Board) with `config`'s settings and the per-meter `key`
    (bytes or None; default hal.key). Without a key nothing is sealed: no journal, no
    signed commands, no Last Gasp alarms (the meter still measures and serves the
    B-route, ECHONET 0x88 reporting the fault; Meter.durable is False). safe_mode (the board
    shell after a crash loop): metering and storage only, no B-route and no remote commands
    (the limiter still drives the relay). Call boot() on the result before the first
    step()."""
    from meter.app import Meter

    if key is None:
        key = hal.key
    # the board provisions its own id (hal.meter_id); a config may name one (the sim)
    meter_id = hal.meter_id or setting(config, "METER_ID")
    mac = Hmac(key) if key else None
    core = Core(config)
    store = build_storage(hal, core, mac)
    echonet = None if safe_mode else build_echonet(hal, config, core, store, meter_id)
    broute = build_broute(hal, echonet, core.events)
    control = build_control(hal, config, core, store, meter_id, None if safe_mode else key)
    aroute = None if safe_mode else build_aroute(hal, config, core, store, meter_id, mac)
    lastgasp, alarms = build_outage(hal, config, core, store, broute, meter_id, mac, aroute)
    m = Meter(hal, meter_id, core, store, echonet, broute, control, lastgasp, alarms)
    m.safe_mode = safe_mode
    if aroute is not None:
        m.uplink = aroute
        m.aroute = aroute
        aroute.bind(m)
    if setting(config, "CONSOLE") and hal.console is not None:
        # the injection wrappers go between the board's parts and the runtime here, and only
        # here: without the setting no power failure or load can be injected at all
        from meter.console.assembly import build_console

        build_console(m, hal, key, setting(config, "CONSOLE_BENCH_S"),
                      setting(config, "MAX_POWER_W"), setting(config, "NOMINAL_V_DV"))
    return m
