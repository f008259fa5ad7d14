# build_hal(config): the one place that turns a board definition (board/<name>/board_config.py,
# frozen as `board_config`) into HAL objects. Only the parts the board names are imported.
#
# The result (BoardHal) is a meter.hal.Board: clock, metrology, power_good, relay, flash (the
# journal partition), radio (B-route module or None), uplink (None until an A-route
# transport exists), key (the provisioned per-meter key bytes, None when /meter.key is
# missing), random (entropy.Drbg: the hardware RNG and ADC noise), wdt (None until the shell
# calls start_watchdog(), after its boot decisions), reset_kind, and sleep() for the shell
# (main.py). A part that cannot be created is left None and its error code is appended to
# `problems` (printed at start-up); whether a meter without its journal or key may run at
# all is the shell's decision (bootguard.ram_only_allowed). link: the A-route TcpLink to the
# MQTT broker from MQTT_HOST/MQTT_PORT/MQTT_TLS (_link), None when MQTT_HOST is unset.
#
# Boot order matters: the reset cause first, then RTC memory validated (rtcmem.load clears
# it on power-on/brown-out) before the clock reads its validity flag, then the relay pad read
# before anything drives it (pins.RelayPins). safe_mode=True (crash loop): no radio.
#
# Secrets never sit in the board definition: Wi-Fi credentials and the B-route ID/password
# are read from /secrets.json on the board's filesystem, e.g.
#   {"wifi_ssid": "...", "wifi_password": "...", "broute_id": "...", "broute_password": "...",
#    "broute_master_key": "<hex>", "broute_module_key": "<hex>"}

import os

from meter.hal import Board

from esp32hal.clock import EspClock
from esp32hal.pins import PowerGoodPin, RelayPins
from esp32hal import rtcmem
from esp32hal.resetcause import RESET_POWER_ON, reset_kind

SECRETS_PATH = "/secrets.json"
_LIGHTSLEEP_MS = 100


class BoardHal(Board):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.random = os.urandom  # replaced by the DRBG in build_hal
        self.s0_input = None  # the S0 edge ring or counter (diagnostics)
        self.safe_mode = False

    def start_watchdog(self):
        """Start machine.WDT (cannot be stopped: call once the shell has decided to run the
        meter). Returns the watchdog or None (WDT_TIMEOUT_MS 0: a bench without one)."""
        if self.wdt is None and self.config.WDT_TIMEOUT_MS:
            from esp32hal.watchdog import Watchdog

            self.wdt = Watchdog(self.config.WDT_TIMEOUT_MS)
        return self.wdt

    def provision(self, meter_id, key):
        return provision(meter_id, key)

    def sleep(self):
        """After the Last Gasp sequence (the machine said SLEEP): one light sleep of at most
        _LIGHTSLEEP_MS while mains is off; RAM and the held relay pad are kept. The shell
        polls the machine again after each nap, so a return of mains is seen within one nap
        (or the capacitor runs out first). The watchdog is not fed here: the supervisor
        feeds it when every task checked in (a nap is far shorter than its timeout)."""
        import machine

        pg = self.power_good
        if pg is not None and not pg.value():
            machine.lightsleep(_LIGHTSLEEP_MS)


def _secrets():
    try:
        import json

        with open(SECRETS_PATH) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _uart(uart_id, baud, tx, rx):
    from esp32hal.uart import EspUart

    return EspUart(uart_id, baud, tx, rx)


def _metrology(cfg, hal):
    kind = cfg.METROLOGY
    if kind == "bl0942":
        from meter.metering.frontends.bl0942 import Bl0942

        fe = Bl0942(_uart(cfg.BL0942_UART_ID, 4800, cfg.PIN_BL0942_TX, cfg.PIN_BL0942_RX),
                    address=cfg.BL0942_ADDRESS, v_cal=cfg.BL0942_CAL_V_DV,
                    i_cal=cfg.BL0942_CAL_I_MA, p_cal=cfg.BL0942_CAL_P_W,
                    e_cal=cfg.BL0942_CAL_E_J, line_hz=cfg.LINE_HZ,
                    max_power_w=cfg.MAX_POWER_W)
        fe.configure()
        return fe
    if kind == "s0":
        from meter.metering.frontends.s0 import S0PulseInput
        from esp32hal import s0input

        import machine

        counter = edges = None
        falling = cfg.S0_ACTIVE_LEVEL == 0
        if cfg.S0_COUNTER == "pcnt" and hasattr(machine, "Counter"):  # MicroPython >= 1.26
            counter = s0input.PcntCounter(cfg.PIN_S0, cfg.S0_PCNT_UNIT, falling,
                                          cfg.S0_PULL_UP)
        else:
            edges = s0input.EdgeRing(cfg.PIN_S0, cfg.S0_PULL_UP)
        hal.s0_input = counter or edges
        return S0PulseInput(cfg.S0_IMP_PER_KWH, counter=counter, edges=edges,
                            min_width_ms=cfg.S0_MIN_WIDTH_MS, min_gap_ms=cfg.S0_MIN_GAP_MS,
                            active_level=cfg.S0_ACTIVE_LEVEL,
                            nominal_v_dv=cfg.NOMINAL_V_DV, max_power_w=cfg.MAX_POWER_W)
    if kind == "simulated":
        from meter.metering.frontends.simulated import SimulatedHousehold

        return SimulatedHousehold(hal.clock, seed=cfg.DEMO_SEED, pv_w=cfg.DEMO_PV_W,
                                  three_wire=cfg.WIRING == "1P3W")
    raise ValueError("E_METROLOGY " + kind)


def _hexkey(secrets, name):
    v = secrets.get(name)
    return bytes.fromhex(v) if v else None


def _radio(cfg, secrets):
    """The fitted B-route module. Its module key (secrets "broute_module_key", hex) is what
    it answers the meter's challenge with; without it the module stays unused."""
    kind = cfg.RADIO
    if kind == "none":
        return None
    from meter.broute.radio import registry

    from esp32hal import nic

    key = _hexkey(secrets, "broute_module_key")
    if kind == "wifi":
        return registry.create("wifi", secrets["wifi_ssid"], secrets["wifi_password"],
                               nic.wlan, key=key)
    if kind == "wisun":
        uart = _uart(cfg.WISUN_UART_ID, cfg.WISUN_BAUD, cfg.PIN_WISUN_TX, cfg.PIN_WISUN_RX)
        return registry.create("wisun", uart, secrets["broute_id"], secrets["broute_password"],
                               key=key)
    if kind == "ethernet":
        return registry.create("ethernet", nic.lan(cfg), key=key)  # ValueError: not offered
    raise ValueError("E_RADIO " + kind)


def _link(cfg):
    """The A-route link to the MQTT broker: MQTT_HOST (an IP address: the link resolves it
    once, here, and a name would block on DNS), MQTT_PORT (default 1883, 8883 with TLS),
    MQTT_TLS (True: TLS, the broker's certificate checked against the DER CA in the file
    MQTT_CA, required; MQTT_SERVER_NAME for SNI and the name check). None when MQTT_HOST is
    unset. TLS without MQTT_CA raises ValueError("E_TLS_CA"): a problem, no link."""
    host = getattr(cfg, "MQTT_HOST", None)
    if not host:
        return None
    from esp32hal.tcplink import TcpLink, tls_context

    ctx = None
    tls = getattr(cfg, "MQTT_TLS", False)
    if tls:
        ca = getattr(cfg, "MQTT_CA", None)
        cadata = None
        if ca:
            with open(ca, "rb") as f:
                cadata = f.read()
        ctx = tls_context(cadata)
    return TcpLink(host, getattr(cfg, "MQTT_PORT", 8883 if tls else 1883), ctx,
                   server_hostname=getattr(cfg, "MQTT_SERVER_NAME", None))


def _console(cfg, secrets):
    """The bench console's parts (meter.hal.BenchConsole) on a board definition that turns
    it on (CONSOLE = True: a bench build; the default is off, and then nothing can be
    injected): a UART of its own, CONSOLE_UART_ID on PIN_CONSOLE_TX/PIN_CONSOLE_RX at
    CONSOLE_BAUD (115200), to a USB-serial adapter on the bench. Never UART 0: that is the
    REPL's (on the S3/C3 the REPL is on USB, but the ROM and IDF logs still use UART 0), and
    sys.stdin would compete with the REPL for every byte. PIN_BENCH (optional, pulled up):
    the bench jumper, read once at boot, at BENCH_LEVEL (default 0) -> bench mode. The bench
    key comes from /secrets.json "console_bench_key" (hex). None when the console is off."""
    if not getattr(cfg, "CONSOLE", False):
        return None
    uid = cfg.CONSOLE_UART_ID
    if uid == 0:
        raise ValueError("E_CONSOLE_UART0 (the REPL's UART)")
    from machine import Pin

    from meter.hal import BenchConsole
    from esp32hal.uart import CONSOLE_TXBUF, EspUart

    port = EspUart(uid, getattr(cfg, "CONSOLE_BAUD", 115200), cfg.PIN_CONSOLE_TX,
                   cfg.PIN_CONSOLE_RX, txbuf=CONSOLE_TXBUF)
    pin = getattr(cfg, "PIN_BENCH", None)
    bench = None
    if pin is not None:
        bench = PowerGoodPin(pin, getattr(cfg, "BENCH_LEVEL", 0), Pin.PULL_UP)
    return BenchConsole(port, bench, _hexkey(secrets, "console_bench_key"))


def provision(meter_id, key):
    """The console's provision command: /meter.id and /meter.key for the next boot (the
    journal of a blank meter is sealed with the new key from then on). True when written."""
    from meter.storage.keyfile import DEFAULT_PATH

    try:
        with open(METER_ID_PATH, "wb") as f:
            f.write(meter_id)
        with open(DEFAULT_PATH, "wb") as f:
            f.write(key)
    except OSError:
        return False
    return True


METER_ID_PATH = "/meter.id"


def _meter_id():
    """The 8-byte meter id: /meter.id when provisioned (8 ASCII characters), else the last
    4 bytes of the chip's unique id in hex, so that no two boards share one."""
    try:
        with open(METER_ID_PATH, "rb") as f:
            mid = f.read(9).strip()
        if len(mid) == 8:
            return mid
    except OSError:
        pass
    import machine

    return "".join("%02X" % b for b in machine.unique_id()[-4:]).encode()


def _key():
    from meter.storage.keyfile import load_key

    return load_key()


def build_hal(cfg, kind=None, safe_mode=False):
    """The board's HAL. kind: the reset kind when the shell already read it and loaded RTC
    memory (bootguard.start); None: read and load here."""
    hal = BoardHal(cfg)
    if kind is None:
        kind = reset_kind()
        rtcmem.load(power_on=kind == RESET_POWER_ON)
    hal.reset_kind = kind
    hal.safe_mode = safe_mode
    hal.clock = EspClock()
    hal.meter_id = _meter_id()
    hal.power_good = PowerGoodPin(cfg.PIN_POWER_GOOD, cfg.POWER_GOOD_LEVEL)
    hal.relay = RelayPins(cfg.PIN_RELAY, cfg.PIN_RELAY_FEEDBACK, cfg.RELAY_CLOSED_LEVEL,
                          cfg.FEEDBACK_CLOSED_LEVEL, cfg.FEEDBACK_PULL_UP)
    try:
        from esp32hal.flash import PartitionFlash

        hal.flash = PartitionFlash(cfg.JOURNAL_PARTITION, cfg.JOURNAL_SIZE)
    except OSError as e:
        hal.problems.append(e.args[0] if e.args else "E_FLASH")
    hal.metrology = _metrology(cfg, hal)
    secrets = _secrets()
    # the B-route master key comes from the A-route; until that link exists it is provisioned
    # in /secrets.json ("broute_master_key", hex)
    hal.broute_key = _hexkey(secrets, "broute_master_key")
    from esp32hal.entropy import Drbg
    import machine

    hal.random = Drbg(getattr(cfg, "ENTROPY_ADC_PIN", None), machine.unique_id())
    try:
        if safe_mode:
            hal.problems.append("E_SAFE_MODE: no radio")
        else:
            hal.radio = _radio(cfg, secrets)
    except KeyError as e:
        hal.problems.append("E_SECRET_MISSING " + str(e.args[0]))
    except (ImportError, OSError, ValueError) as e:
        hal.problems.append("E_RADIO " + str(e))
    try:
        hal.link = _link(cfg)
    except (ImportError, OSError, ValueError) as e:
        hal.problems.append("E_LINK " + str(e))
    if hal.link is not None:  # the Last Gasp datagram's endpoint (socket made at first send)
        from esp32hal.udpcollector import UdpCollector

        hal.collector = UdpCollector()
    try:
        hal.console = _console(cfg, secrets)
    except (ImportError, OSError, ValueError, AttributeError) as e:
        hal.problems.append("E_CONSOLE " + str(e))
    try:
        hal.key = _key()
    except Exception as e:  # KeyMissing: the meter runs, unsealed, and says so
        hal.problems.append(e.args[0] if e.args else "E_KEY")
    hal.retained = rtcmem.RtcRetained()  # the registers' running copy: a crash loses no energy
    for p in hal.problems:
        print("board:", p)
    return hal
