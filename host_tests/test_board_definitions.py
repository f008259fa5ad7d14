"""Board definitions (board/<name>/board_config.py, manifest.py, partitions.csv) are complete
and consistent, and the ESP32 HAL (board/esp32hal) wires every board up: checked under
CPython with fakes of the MicroPython `machine` and `esp32` APIs whose signatures follow the
MicroPython documentation (keyword names included), so a misspelt argument fails here."""

import csv
import importlib
import importlib.util
import inspect
import os
import sys
import types

import pytest

from paths import BOARD, ROOT

from meter.outage import holdup
from meter.metering.frontends.bl0942 import Bl0942
from meter.metering.frontends.s0 import S0PulseInput
from meter.metering.frontends.simulated import SimulatedHousehold
from meter.outage.lastgasp import LastGasp
from meter.metering.samples import Sample

BOARDS = sorted(d for d in os.listdir(BOARD)
                if os.path.isfile(os.path.join(BOARD, d, "board_config.py")))

# Chip facts (ESP-IDF / module datasheets): usable GPIOs, pins reserved by flash/PSRAM, USB
# and the console UART, strapping pins, input-only pins without pull-ups, UARTs, PCNT units.
CHIPS = {
    "esp32": {
        "gpio": set(range(0, 6)) | set(range(12, 20)) | {21, 22, 23, 25, 26, 27}
        | set(range(32, 40)),
        "reserved": set(range(6, 12)) | {1, 3},
        "strapping": {0, 2, 5, 12, 15},
        "input_only": set(range(34, 40)),
        "uarts": 3, "pcnt_units": 8,
    },
    "esp32s3": {
        "gpio": set(range(0, 22)) | set(range(26, 49)),
        "reserved": set(range(26, 38)) | {19, 20, 43, 44},
        "strapping": {0, 3, 45, 46},
        "input_only": set(),
        "uarts": 3, "pcnt_units": 4,
    },
    "esp32c3": {
        "gpio": set(range(0, 22)),
        "reserved": set(range(12, 18)) | {18, 19, 20, 21},
        "strapping": {2, 8, 9},
        "input_only": set(),
        "uarts": 2, "pcnt_units": 0,
    },
}

REQUIRED = {
    "BOARD": str, "CHIP": str, "FLASH_SIZE": int, "PSRAM": int,
    "PIN_POWER_GOOD": int, "POWER_GOOD_LEVEL": int,
    "PIN_RELAY": int, "RELAY_CLOSED_LEVEL": int, "PIN_RELAY_FEEDBACK": int,
    "FEEDBACK_CLOSED_LEVEL": int, "FEEDBACK_PULL_UP": bool,
    "PIN_S0": int, "S0_PULL_UP": bool, "S0_ACTIVE_LEVEL": int, "S0_COUNTER": str,
    "S0_PCNT_UNIT": int, "S0_IMP_PER_KWH": int, "S0_MIN_WIDTH_MS": int, "S0_MIN_GAP_MS": int,
    "BL0942_UART_ID": int, "PIN_BL0942_TX": int, "PIN_BL0942_RX": int, "BL0942_ADDRESS": int,
    "BL0942_CAL_V_DV": tuple, "BL0942_CAL_I_MA": tuple, "BL0942_CAL_P_W": tuple,
    "BL0942_CAL_E_J": tuple,
    "WIRING": str, "NOMINAL_V_DV": int, "LINE_HZ": int,
    "METROLOGY": str, "RADIO": str,
    "HOLDUP": dict, "HOLDUP_BUDGET_MS": int, "LASTGASP": dict,
    "CURRENT_LIMITS_A": tuple, "CONTRACT_LIMIT_A": int,
    "JOURNAL_PARTITION": str, "JOURNAL_SIZE": int,
    "MAX_POWER_W": int, "MAX_CURRENT_MA": int, "WDT_TIMEOUT_MS": int,
    "DEMO_SEED": int, "DEMO_PV_W": int,
}
WISUN_KEYS = {"WISUN_UART_ID": int, "PIN_WISUN_TX": int, "PIN_WISUN_RX": int, "WISUN_BAUD": int}
METROLOGY_KINDS = {"bl0942", "s0", "simulated"}
RADIO_KINDS = {"wifi", "wisun", "ethernet", "none"}


def load(name):
    path = os.path.join(BOARD, name, "board_config.py")
    spec = importlib.util.spec_from_file_location("board_config_" + name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def used_pins(c):
    pins = {"power good": c.PIN_POWER_GOOD, "relay": c.PIN_RELAY,
            "relay feedback": c.PIN_RELAY_FEEDBACK, "S0": c.PIN_S0,
            "BL0942 TX": c.PIN_BL0942_TX, "BL0942 RX": c.PIN_BL0942_RX}
    if c.RADIO == "wisun":
        pins.update({"Wi-SUN TX": c.PIN_WISUN_TX, "Wi-SUN RX": c.PIN_WISUN_RX})
    return pins


def test_the_three_reference_boards_are_defined():
    assert {"esp32_devkitc", "esp32_s3_devkitc", "esp32_c3"} <= set(BOARDS)


@pytest.mark.parametrize("name", BOARDS)
def test_every_required_setting_is_present_with_its_type(name):
    c = load(name)
    need = dict(REQUIRED)
    if c.RADIO == "wisun":
        need.update(WISUN_KEYS)
    for key, typ in need.items():
        assert hasattr(c, key), key
        assert isinstance(getattr(c, key), typ), (key, getattr(c, key))
    assert c.BOARD == name
    assert c.CHIP in CHIPS


@pytest.mark.parametrize("name", BOARDS)
def test_pins_are_unique_valid_and_free_on_the_chip(name):
    c = load(name)
    chip = CHIPS[c.CHIP]
    pins = used_pins(c)
    assert len(set(pins.values())) == len(pins), pins
    for what, pin in pins.items():
        assert pin in chip["gpio"], (what, pin)
        assert pin not in chip["reserved"], (what, pin)
        assert pin not in chip["strapping"], (what, pin)
    outputs = [c.PIN_RELAY, c.PIN_BL0942_TX] + ([c.PIN_WISUN_TX] if c.RADIO == "wisun" else [])
    assert not set(outputs) & chip["input_only"]
    if c.S0_PULL_UP:
        assert c.PIN_S0 not in chip["input_only"]  # those pins have no pull-up
    if c.FEEDBACK_PULL_UP:
        assert c.PIN_RELAY_FEEDBACK not in chip["input_only"]
    for level in (c.POWER_GOOD_LEVEL, c.RELAY_CLOSED_LEVEL, c.FEEDBACK_CLOSED_LEVEL,
                  c.S0_ACTIVE_LEVEL):
        assert level in (0, 1)


@pytest.mark.parametrize("name", BOARDS)
def test_fitted_parts_exist_on_the_chip(name):
    c = load(name)
    chip = CHIPS[c.CHIP]
    assert c.METROLOGY in METROLOGY_KINDS
    assert c.RADIO in RADIO_KINDS
    assert 1 <= c.BL0942_UART_ID < chip["uarts"]  # UART0 is the console
    if c.RADIO == "wisun":
        assert 1 <= c.WISUN_UART_ID < chip["uarts"]
        assert c.WISUN_UART_ID != c.BL0942_UART_ID
    assert c.S0_COUNTER in ("pcnt", "edges")
    if c.S0_COUNTER == "pcnt":
        assert 0 <= c.S0_PCNT_UNIT < chip["pcnt_units"], "this chip has no such PCNT unit"


def test_radio_kinds_match_the_module_registry():
    try:
        from meter.broute.radio import registry
    except ImportError:
        pytest.skip("meter.broute.radio.registry not present")
    for name in BOARDS:
        c = load(name)
        assert c.RADIO == "none" or c.RADIO in registry.kinds(), (name, c.RADIO)


@pytest.mark.parametrize("name", BOARDS)
def test_current_limits_are_sorted_and_hold_the_contract(name):
    c = load(name)
    lim = c.CURRENT_LIMITS_A
    assert list(lim) == sorted(set(lim)) and lim[0] > 0
    assert c.CONTRACT_LIMIT_A in lim
    assert c.MAX_CURRENT_MA >= lim[-1] * 1000
    assert c.MAX_POWER_W >= lim[-1] * c.NOMINAL_V_DV // 10
    assert c.WIRING in ("1P2W", "1P3W")
    assert (c.NOMINAL_V_DV > 1500) == (c.WIRING == "1P3W")
    assert c.LINE_HZ in (50, 60)


@pytest.mark.parametrize("name", BOARDS)
def test_holdup_numbers_are_in_range_and_carry_the_sequence(name):
    c = load(name)
    h = c.HOLDUP
    assert set(h) == {"cap_mf", "v_start_mv", "v_min_mv", "eff_pct", "profile"}
    assert 10 <= h["cap_mf"] <= 100_000
    assert 3000 <= h["v_start_mv"] <= 12_000
    assert 1800 <= h["v_min_mv"] <= h["v_start_mv"] - 500
    assert 50 <= h["eff_pct"] <= 100
    assert h["profile"] and all(ms > 0 and 0 <= ma <= 1000 for ms, ma in h["profile"])
    usable = holdup.usable_energy_uj(h["cap_mf"], h["v_start_mv"], h["v_min_mv"],
                                     h["eff_pct"])
    assert usable >= holdup.profile_energy_uj(h["profile"]) * 12 // 10  # 20 % margin
    assert 0 < c.HOLDUP_BUDGET_MS <= holdup.budget_ms(h)
    accepted = set(inspect.signature(LastGasp.__init__).parameters)
    assert set(c.LASTGASP) <= accepted


@pytest.mark.parametrize("name", BOARDS)
def test_front_end_settings_are_accepted_by_the_front_ends(name):
    c = load(name)
    S0PulseInput(c.S0_IMP_PER_KWH, counter=None, min_width_ms=c.S0_MIN_WIDTH_MS,
                 min_gap_ms=c.S0_MIN_GAP_MS, active_level=c.S0_ACTIVE_LEVEL,
                 nominal_v_dv=c.NOMINAL_V_DV, max_power_w=c.MAX_POWER_W)
    Bl0942(object(), address=c.BL0942_ADDRESS, v_cal=c.BL0942_CAL_V_DV,
           i_cal=c.BL0942_CAL_I_MA, p_cal=c.BL0942_CAL_P_W, e_cal=c.BL0942_CAL_E_J,
           line_hz=c.LINE_HZ, max_power_w=c.MAX_POWER_W)
    SimulatedHousehold(object(), seed=c.DEMO_SEED, pv_w=c.DEMO_PV_W,
                       three_wire=c.WIRING == "1P3W")


def partitions(name):
    rows = []
    with open(os.path.join(BOARD, name, "partitions.csv")) as f:
        for row in csv.reader(line for line in f if not line.lstrip().startswith("#")):
            if row and row[0].strip():
                label, typ, sub, off, size = (x.strip() for x in row[:5])
                rows.append((label, typ, sub, int(off, 0), int(size, 0)))
    return rows


@pytest.mark.parametrize("name", BOARDS)
def test_partition_table_holds_the_journal_partition(name):
    c = load(name)
    rows = partitions(name)
    by_label = {r[0]: r for r in rows}
    app = "factory" if "factory" in by_label else "ota_0"  # the S3's 8 MB holds an OTA pair
    assert c.JOURNAL_PARTITION in by_label and app in by_label and "vfs" in by_label
    _, typ, _, off, size = by_label[c.JOURNAL_PARTITION]
    assert typ == "data" and size == c.JOURNAL_SIZE and size % 4096 == 0 and off % 4096 == 0
    spans = sorted((r[3], r[3] + r[4]) for r in rows)
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 <= b0, "partitions overlap"
    assert spans[-1][1] <= c.FLASH_SIZE
    assert by_label[app][3] % 0x10000 == 0


@pytest.mark.parametrize("name", BOARDS)
def test_manifest_freezes_the_firmware_the_hal_and_this_board(name):
    here = os.path.join(BOARD, name)
    calls = []
    env = {f: (lambda f: lambda *a, **k: calls.append((f, a, k)))(f)
           for f in ("include", "package", "module", "require", "freeze", "metadata")}
    with open(os.path.join(here, "manifest.py")) as f:
        exec(compile(f.read(), "manifest.py", "exec"), env)

    def path_of(a, k):
        return os.path.normpath(os.path.join(here, k.get("base_path", "."), a[0]))

    frozen = {(f, path_of(a, k)) for f, a, k in calls if f in ("package", "module")}
    assert ("package", os.path.join(ROOT, "firmware", "meter")) in frozen
    assert ("package", os.path.join(ROOT, "board", "esp32hal")) in frozen
    assert ("module", os.path.join(here, "board_config.py")) in frozen
    assert ("module", os.path.join(ROOT, "firmware", "main.py")) in frozen
    for _, p in frozen:
        assert os.path.exists(p), p
    assert not any(f == "require" and a == ("hmac",) for f, a, k in calls)  # own HMAC
    assert any(f == "include" and "$(PORT_DIR)" in a[0] for f, a, k in calls)


# --- the ESP32 HAL on fakes of machine / esp32 ----------------------------------------------

class FakePad:
    """One GPIO pad as the ESP32 has it. Registers: mode (None after a chip reset: input
    buffer off, output off), output value, input enable; `ext` is what the board puts on
    the wire when the pad does not drive (its external pull, or a test's signal). A held pad
    (gpio_hold_en) latches its drive and input enable: register writes do not reach the wire
    until the hold is released. A chip reset clears the registers and keeps a hold; power-on
    (or brown-out, EN) clears the hold too. `history` lists every level the wire took."""

    def __init__(self, ext=0):
        self.ext = ext
        self.mode = None
        self.out = 0
        self.ie = False
        self.held = False
        self._latch = (None, False)
        self.history = [self.wire()]

    def _drive(self):
        if self.held:
            return self._latch[0]
        return self.out if self.mode == FakePin.OUT else None

    def wire(self):
        d = self._drive()
        return self.ext if d is None else d

    def read(self):
        ie = self._latch[1] if self.held else self.ie
        return self.wire() if ie else 0  # input buffer off: the GPIO_IN bit reads 0

    def hold(self, on):
        self.held = False
        self.update()
        if on:
            self._latch = (self._drive(), self.ie)
            self.held = True

    def update(self):
        if self.wire() != self.history[-1]:
            self.history.append(self.wire())

    def chip_reset(self, power_on):
        if power_on:
            self.held = False
        self.mode, self.out, self.ie = None, 0, False
        self.update()


class FakePin:
    """machine.Pin of the ESP32 port (ports/esp32/machine_pin.c): Pin(id) alone configures
    nothing; init sets the value before the mode; OUT is input+output (readable back);
    hold=... always releases the hold (applying the registers) and re-takes it if True;
    irq(handler, trigger, wake) has no `hard` (the handler always runs scheduled)."""

    IN, OUT = 1, 3
    PULL_UP, PULL_DOWN = 2, 1
    IRQ_RISING, IRQ_FALLING = 1, 2
    made = {}
    pads = {}

    def __init__(self, id, mode=-2, pull=-1, *, value=None, drive=None, hold=None):
        self.id = id
        self.pad = FakePin.pads.get(id)
        if self.pad is None:
            self.pad = FakePin.pads[id] = FakePad()
        self.pull = pull
        self.handler = None
        self.trigger = 0
        FakePin.made[id] = self
        if mode != -2 or pull != -1 or value is not None or hold is not None:
            self.init(None if mode == -2 else mode, pull, value=value, hold=hold)

    def init(self, mode=None, pull=-1, *, value=None, drive=None, hold=None):
        pad = self.pad
        if value is not None:
            pad.out = 1 if value else 0
        if mode is not None:
            pad.mode = mode
            pad.ie = True
        if pull != -1:
            self.pull = pull
        if not pad.held:
            pad.update()
        if hold is not None:
            pad.hold(hold)

    @property
    def mode(self):
        return self.pad.mode

    @property
    def level(self):
        return self.pad.wire()

    @level.setter
    def level(self, v):
        self.pad.ext = v
        self.pad.update()

    def value(self, v=None):
        if v is None:
            return self.pad.read()
        self.pad.out = 1 if v else 0
        if not self.pad.held:
            self.pad.update()

    def irq(self, handler=None, trigger=3, wake=None):
        self.handler = handler
        self.trigger = trigger


class FakeUART:
    made = []

    def __init__(self, id, baudrate=115200, *, bits=8, parity=None, stop=1, tx=None, rx=None,
                 rxbuf=256, timeout=0):
        FakeUART.made.append(self)
        self.id, self.baudrate, self.tx, self.rx = id, baudrate, tx, rx
        self.rxbuf = rxbuf
        self.out = bytearray()
        self.inbox = bytearray()

    def write(self, buf):
        self.out += buf
        return len(buf)

    def readinto(self, buf):
        if not self.inbox:
            return None  # MicroPython: None when nothing arrived within the timeout
        n = min(len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        del self.inbox[:n]
        return n

    def any(self):
        return len(self.inbox)


class FakeRTC:
    mem = b""
    dt = (2000, 1, 1, 5, 0, 0, 0, 0)

    def memory(self, data=None):
        if data is None:
            return FakeRTC.mem
        assert len(data) <= 2048
        FakeRTC.mem = bytes(data)

    def datetime(self, t=None):
        if t is None:
            return FakeRTC.dt
        assert len(t) == 8
        FakeRTC.dt = tuple(t)


class FakeCounter:
    RISING, FALLING = 1, 2

    def __init__(self, unit, src=None, *, edge=1, direction=1, filter_ns=0):
        self.unit, self.src, self.edge, self.filter_ns = unit, src, edge, filter_ns
        self.n = 0

    def value(self, value=None):
        v = self.n
        if value is not None:
            self.n = value
        return v


class FakeWDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.fed = 0

    def feed(self):
        self.fed += 1


class FakePartition:
    TYPE_APP, TYPE_DATA = 0, 1
    table = {}

    def __init__(self, size):
        self.mem = bytearray(b"\xff" * size)
        self.erased = []

    @classmethod
    def find(cls, type=0, subtype=0xFF, label=None, block_size=4096):
        p = cls.table.get(label)
        return [p] if p is not None and type == cls.TYPE_DATA else []

    def readblocks(self, block, buf, offset=0):
        a = block * 4096 + offset
        buf[:] = self.mem[a:a + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        assert offset is not None, "writeblocks without offset erases: never used"
        a = block * 4096 + offset
        for i, b in enumerate(buf):
            self.mem[a + i] &= b

    def ioctl(self, cmd, arg):
        if cmd == 4:
            return len(self.mem) // 4096
        if cmd == 5:
            return 4096
        if cmd == 6:
            self.erased.append(arg)
            self.mem[arg * 4096:(arg + 1) * 4096] = b"\xff" * 4096
            return 0
        return None


class FakeTime:
    """MicroPython's time on a 2000-epoch port: mktime takes 8 fields."""

    def __init__(self):
        self.now = 0
        self.ms = 0

    def ticks_ms(self):
        return self.ms

    def ticks_us(self):
        return self.ms * 1000 & (2**30 - 1)

    def ticks_diff(self, a, b):
        return ((a - b + 2**29) & (2**30 - 1)) - 2**29

    def ticks_add(self, a, b):
        return (a + b) & (2**30 - 1)

    def time(self):
        return self.now

    def mktime(self, t):
        assert len(t) == 8
        import calendar
        return calendar.timegm((t[0], t[1], t[2], t[3], t[4], t[5], 0, 0, 0)) - 946684800

    def localtime(self, secs):
        import time as _t
        g = _t.gmtime(secs + 946684800)
        return (g.tm_year, g.tm_mon, g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec, g.tm_wday,
                g.tm_yday)


def esp_env(monkeypatch):
    """The fake ESP32 modules and fresh esp32hal imports (the `esp` fixture's body, shared
    with test_relay_hold and test_supervisor)."""
    machine = types.ModuleType("machine")
    machine.Pin, machine.UART, machine.RTC = FakePin, FakeUART, FakeRTC
    machine.Counter, machine.WDT = FakeCounter, FakeWDT
    machine.PWRON_RESET, machine.HARD_RESET, machine.WDT_RESET = 1, 2, 3
    machine.DEEPSLEEP_RESET, machine.SOFT_RESET = 4, 5
    machine.reset_cause = lambda: 3
    machine.lightsleep = lambda ms=None: None
    machine.unique_id = lambda: b"\x24\x6f\x28\xa1\xb2\xc3"
    esp32 = types.ModuleType("esp32")
    esp32.Partition = FakePartition
    monkeypatch.setitem(sys.modules, "machine", machine)
    monkeypatch.setitem(sys.modules, "esp32", esp32)
    monkeypatch.syspath_prepend(BOARD)
    for m in [m for m in sys.modules if m == "esp32hal" or m.startswith("esp32hal.")]:
        monkeypatch.delitem(sys.modules, m)
    FakeRTC.mem = b""
    FakePin.made = {}
    FakePin.pads = {}
    FakePartition.table = {"journal": FakePartition(256 * 1024)}
    fake_time = FakeTime()
    clock_mod = importlib.import_module("esp32hal.clock")
    monkeypatch.setattr(clock_mod, "time", fake_time)
    s0_mod = importlib.import_module("esp32hal.s0input")
    monkeypatch.setattr(s0_mod, "time", fake_time)
    monkeypatch.setattr(importlib.import_module("esp32hal.entropy"), "time", fake_time)
    FakeUART.made = []
    factory = importlib.import_module("esp32hal.factory")
    monkeypatch.setattr(factory, "SECRETS_PATH", "/nonexistent/secrets.json")
    yield types.SimpleNamespace(factory=factory, time=fake_time, machine=machine)
    for m in [m for m in sys.modules if m == "esp32hal" or m.startswith("esp32hal.")]:
        sys.modules.pop(m, None)


@pytest.fixture
def esp(monkeypatch):
    yield from esp_env(monkeypatch)


def variant(name, **over):
    c = load(name)
    for k, v in over.items():
        setattr(c, k, v)
    return c


@pytest.mark.parametrize("name", BOARDS)
@pytest.mark.parametrize("metrology", ["bl0942", "s0", "simulated"])
def test_build_hal_wires_every_board_and_front_end(esp, name, metrology):
    cfg = variant(name, METROLOGY=metrology, RADIO="none")
    hal = esp.factory.build_hal(cfg)
    expected = {"bl0942": Bl0942, "s0": S0PulseInput, "simulated": SimulatedHousehold}
    assert isinstance(hal.metrology, expected[metrology])
    assert hal.reset_kind == 3  # WDT_RESET
    assert hal.flash.sector_count() == cfg.JOURNAL_SIZE // 4096
    assert hal.wdt is None  # started by the shell once it decided to run the meter
    assert hal.start_watchdog()._wdt.timeout == cfg.WDT_TIMEOUT_MS
    assert hal.start_watchdog() is hal.wdt  # machine.WDT once: it cannot be stopped
    # the relay output is not driven until the limiter, after the restore, decides
    assert FakePin.made[cfg.PIN_RELAY].level == 0 and hal.relay.operations == 0
    assert "E_KEY_MISSING" in hal.problems  # no key file on the host
    assert hal.meter_id == b"28A1B2C3"  # no /meter.id: from the chip's unique id
    s = Sample()
    hal.metrology.poll(s, 0)
    if metrology == "bl0942":
        uart = hal.metrology._uart._u
        assert (uart.id, uart.baudrate, uart.tx, uart.rx) == (
            cfg.BL0942_UART_ID, 4800, cfg.PIN_BL0942_TX, cfg.PIN_BL0942_RX)
        assert uart.out.endswith(b"\x58\xaa") and len(uart.out) == 18 + 2  # configure+read
        assert uart.rxbuf == 256  # 4800 baud: 192 B in 400 ms, the driver's minimum
        assert hal.metrology.poll(s, 1000) is False  # None from readinto is no data
    if metrology == "s0":
        if cfg.S0_COUNTER == "pcnt":
            hal.s0_input._c.n = 2
            assert hal.metrology.poll(s, 60_000) and s.e_fwd == 7200
        else:
            pin = FakePin.made[cfg.PIN_S0]
            for t, lv in ((1000, 0), (1050, 1), (4600, 0), (4650, 1)):
                esp.time.ms = t
                pin.level = lv
                pin.handler(pin)
            assert hal.metrology.poll(s, 60_000) and s.e_fwd == 7200


def test_s0_falls_back_to_pin_irq_edges_without_machine_counter(esp):
    del esp.machine.Counter  # a MicroPython older than 1.26
    hal = esp.factory.build_hal(variant("esp32_devkitc", METROLOGY="s0", RADIO="none"))
    from esp32hal.s0input import EdgeRing

    assert isinstance(hal.s0_input, EdgeRing)
    assert hal.metrology._counter is None and hal.metrology._edges is hal.s0_input


@pytest.mark.parametrize("name, kind", [("esp32_devkitc", "wifi"),
                                        ("esp32_s3_devkitc", "wisun")])
def test_build_hal_creates_the_radio_module_from_provisioned_secrets(esp, tmp_path, name,
                                                                    kind):
    registry = pytest.importorskip("meter.broute.radio.registry")
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"wifi_ssid": "home", "wifi_password": "pw", '
                       '"broute_id": "00112233445566778899AABBCCDDEEFF", '
                       '"broute_password": "0123456789AB"}')
    esp.factory.SECRETS_PATH = str(secrets)
    hal = esp.factory.build_hal(variant(name))
    assert isinstance(hal.radio, registry.load(kind)), hal.problems
    assert not any(p.startswith("E_RADIO") or p.startswith("E_SECRET") for p in hal.problems)


def test_build_hal_reports_missing_radio_secrets(esp):
    hal = esp.factory.build_hal(variant("esp32_s3_devkitc", RADIO="wisun"))
    assert hal.radio is None
    assert any(p.startswith("E_SECRET_MISSING") for p in hal.problems)


def test_build_hal_reports_a_missing_journal_partition(esp):
    FakePartition.table = {}
    hal = esp.factory.build_hal(variant("esp32_devkitc", RADIO="none"))
    assert hal.flash is None and any("E_NO_PARTITION" in p for p in hal.problems)


def test_partition_flash_programs_pages_and_erases_explicitly(esp):
    from esp32hal.flash import PartitionFlash

    f = PartitionFlash("journal", 256 * 1024)
    part = FakePartition.table["journal"]
    f.program(4096 + 250, b"\x00\x01\x02\x03\x04\x05")
    buf = bytearray(6)
    f.read(4096 + 250, buf)
    assert bytes(buf) == b"\x00\x01\x02\x03\x04\x05"
    with pytest.raises(ValueError, match="E_PAGE_CROSS"):
        f.program(4096 + 253, b"\x00\x00\x00\x00")
    with pytest.raises(ValueError, match="E_FLASH_RANGE"):
        f.program(256 * 1024 - 2, b"\x00\x00\x00")
    f.erase_sector(1)
    assert part.erased == [1] and part.mem[4096 + 250] == 0xFF
    with pytest.raises(OSError, match="E_PARTITION_SIZE"):
        PartitionFlash("journal", 128 * 1024)


def test_clock_sets_the_rtc_and_keeps_validity_in_rtc_memory(esp):
    from esp32hal.clock import EspClock
    from esp32hal import rtcmem

    c = EspClock()
    assert c.wall_valid() is False
    minute = 9_000 * 1440 + 7 * 60 + 5  # Thursday 2024-08-22 07:05 local standard time
    c.set_wall(minute, 42)
    assert FakeRTC.dt == (2024, 8, 22, 3, 7, 5, 42, 0)
    assert rtcmem.get(rtcmem.CLOCK_VALID) == 1
    assert EspClock().wall_valid() is True  # after a soft reset
    esp.time.ms += 17_000  # the clock runs on ticks_ms from the latched RTC reading
    assert (c.wall_minute(), c.wall_second()) == (minute, 59)
    esp.time.ms += 1000  # the second rolls over between the two calls
    assert c.wall_second() == 59  # latched from the wall_minute() sample
    assert (c.wall_minute(), c.wall_second()) == (minute + 1, 0)
    FakeRTC.mem = b""  # power-off clears RTC memory
    rtcmem.load()
    assert EspClock().wall_valid() is False


def test_clock_validity_is_cleared_by_a_power_on_or_brown_out_reset(esp):
    """RTC user memory is not initialised at power-on and a brown-out (reported as
    PWRON_RESET) can leave it readable: a valid-looking flag must not survive either."""
    from esp32hal import rtcmem
    from esp32hal.clock import EspClock

    EspClock().set_wall(9_000 * 1440, 0)
    stale = FakeRTC.mem  # the bytes a brown-out leaves in RTC memory
    assert rtcmem.load(power_on=False) and EspClock().wall_valid()  # a WDT reset keeps it
    FakeRTC.mem = stale
    assert rtcmem.load(power_on=True) is False
    assert EspClock().wall_valid() is False and rtcmem.get(rtcmem.CLOCK_VALID) == 0
    assert FakeRTC.mem != stale  # cleared in RTC memory too, not only in RAM


def test_rtc_memory_with_a_bad_magic_or_crc_reads_as_cleared(esp):
    from esp32hal import rtcmem

    rtcmem.put(rtcmem.CLOCK_VALID, 1)
    rtcmem.put(rtcmem.CRASHES, 2)
    good = bytearray(FakeRTC.mem)
    for k in (0, 5, 20):  # magic, a slot, the CRC
        bad = bytearray(good)
        bad[k] ^= 0x40
        FakeRTC.mem = bytes(bad)
        assert rtcmem.load() is False
        assert rtcmem.get(rtcmem.CLOCK_VALID) == 0 and rtcmem.get(rtcmem.CRASHES) == 0
    FakeRTC.mem = bytes(good)
    assert rtcmem.load() and rtcmem.get(rtcmem.CRASHES) == 2
    FakeRTC.mem = bytes(random_bytes(2048))  # power-on garbage
    assert rtcmem.load() is False


def random_bytes(n):
    import random

    return random.Random(7).randbytes(n)


def test_relay_feedback_and_power_good_edges(esp):
    from esp32hal.pins import PowerGoodPin, RelayPins

    r = RelayPins(26, 35, closed_level=1, feedback_level=0, feedback_pull_up=False)
    assert FakePin.made[35].pull is None
    assert not r.commanded()  # the output level found at boot (low = open), not driven
    r.command(True)
    assert FakePin.made[26].level == 1 and r.operations == 1
    fb = FakePin.made[35]
    fb.level = 0
    assert r.commanded() and r.sensed()
    r.command(False)
    assert FakePin.made[26].level == 0 and r.operations == 2
    fb.level = 1
    assert r.sensed() is False
    pg = PowerGoodPin(34, good_level=1)
    seen = []
    pg.irq(lambda p: seen.append(p.value()))
    pin = FakePin.made[34]
    pin.level = 1
    pin.handler(pin)
    pin.level = 0
    pin.handler(pin)
    assert seen == [1, 0] and pg.edges == 2


def test_pcnt_counter_wraps_at_16_bits(esp):
    from esp32hal.s0input import PcntCounter

    pc = PcntCounter(27, unit=0)
    assert pc._c.filter_ns == 12_000 and pc._c.edge == FakeCounter.FALLING
    pc._c.n = 65_535
    assert pc.count() == 65_535
    pc._c.n = 3
    assert pc.count() == 2


def test_edge_ring_counts_overruns_when_full(esp):
    from esp32hal.s0input import EdgeRing

    ring = EdgeRing(10, size=4)
    pin = FakePin.made[10]
    for t in range(5):
        esp.time.ms = t
        pin.handler(pin)
    got = []
    assert ring.drain(lambda t, lv: got.append(t)) == 3 and got == [0, 1, 2]
    assert ring.overruns == 2


def test_reset_kinds_map_machine_constants(esp):
    from esp32hal import resetcause

    for cause, kind in ((1, resetcause.RESET_POWER_ON), (4, resetcause.RESET_DEEPSLEEP),
                        (99, resetcause.RESET_OTHER)):
        esp.machine.reset_cause = lambda c=cause: c
        assert resetcause.reset_kind() == kind


@pytest.mark.parametrize("name", BOARDS)
def test_the_board_hal_builds_the_product_meter_through_the_root(esp, name):
    """The board HAL is a meter.hal.Board: the composition root builds on it without
    probing, boots it, meters a few seconds, and the shell's sleep is one nap."""
    from meter.assembly import build_meter
    from meter.hal import Board

    cfg = variant(name, METROLOGY="simulated", RADIO="none")
    hal = esp.factory.build_hal(cfg)
    assert isinstance(hal, Board) and hal.key is None and hal.random is not None
    hal.power_good._pin.level = cfg.POWER_GOOD_LEVEL  # mains present
    m = build_meter(hal, cfg, key=b"board-test-key-0123456789abcdef!")
    assert m.boot().chain_ok()
    for k in range(3):
        esp.time.ms = 1000 * (k + 1)
        m.step()
        m.idle()
    assert m.limiter is not None and m.store is not None and m.lastgasp is not None
    assert m.lastgasp.state == 0 and m.metering.samples >= 1 and m.power_poll() == 0  # UP
    naps = []
    esp.machine.lightsleep = naps.append
    hal.power_good._pin.level = 1 - cfg.POWER_GOOD_LEVEL  # mains off
    hal.sleep()
    assert naps == [100]
    hal.power_good._pin.level = cfg.POWER_GOOD_LEVEL
    hal.sleep()
    assert naps == [100]  # mains back: no nap


# --- board wiring of the reset-proof parts ----------------------------------------------------

@pytest.mark.parametrize("name", BOARDS)
def test_the_relay_pull_makes_a_floating_pin_the_de_energised_open_state(name):
    """A pad that is not held (power-on, brown-out, EN) floats to RELAY_PULL: that level
    must be the one that does not close the contact."""
    c = load(name)
    assert c.RELAY_PULL in (0, 1) and c.RELAY_PULL != c.RELAY_CLOSED_LEVEL


BOOT_BUTTONS = {"esp32": 0, "esp32s3": 0, "esp32c3": 9}
ADC1 = {"esp32": set(range(32, 40)), "esp32s3": set(range(1, 11)), "esp32c3": set(range(0, 5))}


def lan_pins(c):
    a = getattr(c, "LAN_ARGS", None) or {}
    pins = {a[k] for k in ("mdc", "mdio", "power", "reset", "cs", "int") if a.get(k) is not None}
    spi = a.get("spi") or {}
    return pins | {spi[k] for k in ("sck", "mosi", "miso") if k in spi}


@pytest.mark.parametrize("name", BOARDS)
def test_recovery_pin_entropy_pin_and_ram_only_setting(name):
    c = load(name)
    chip = CHIPS[c.CHIP]
    taken = set(used_pins(c).values()) | lan_pins(c)
    assert c.ALLOW_RAM_ONLY is False  # a product board never meters without its journal
    if c.SKIP_APP_PIN is not None:
        assert c.SKIP_APP_PIN in chip["gpio"] and c.SKIP_APP_PIN not in taken
        if c.SKIP_APP_PIN in chip["strapping"]:  # read only: the board's BOOT button
            assert c.SKIP_APP_PIN == BOOT_BUTTONS[c.CHIP] and c.SKIP_APP_LEVEL == 0
    assert c.ENTROPY_ADC_PIN in ADC1[c.CHIP] and c.ENTROPY_ADC_PIN not in taken
    assert c.ENTROPY_ADC_PIN not in chip["strapping"]


def test_uart_rx_buffers_outlast_a_worst_case_sector_erase(esp):
    from esp32hal.uart import BLOCK_MS, EspUart, rxbuf_for

    assert BLOCK_MS >= 400  # REFERENCE: a 4 KB sector erase blocks up to 400 ms
    for baud in (4800, 9600, 115_200, 230_400):
        n = rxbuf_for(baud)
        assert n >= baud // 10 * BLOCK_MS // 1000 * 5 // 4 and n % 256 == 0 and n >= 256
    u = EspUart(2, 115_200, 15, 16)
    assert u.rxbuf == u._u.rxbuf >= 4608 + 1152  # Wi-SUN: 11.5 KB/s x 0.4 s, 25 % margin


def test_the_wisun_board_gets_its_large_rx_buffer(esp, tmp_path):
    pytest.importorskip("meter.broute.radio.registry")
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"broute_id": "00112233445566778899AABBCCDDEEFF", '
                       '"broute_password": "0123456789AB"}')
    esp.factory.SECRETS_PATH = str(secrets)
    cfg = variant("esp32_s3_devkitc", RADIO="wisun")
    esp.factory.build_hal(cfg)
    uarts = [p for p in FakeUART.made if p.id == cfg.WISUN_UART_ID]
    assert uarts and uarts[-1].rxbuf >= 5760


def test_s0_edges_ask_for_a_hard_irq_and_fall_back_on_the_esp32_port(esp):
    """The ESP32's Pin.irq has no `hard` (TypeError): the ring registers the scheduled
    handler and says so; a port with hard pin IRQs gets the stamp at the edge."""
    from esp32hal.s0input import EdgeRing

    ring = EdgeRing(10)
    assert ring.hard is False and FakePin.made[10].handler is not None

    class HardPin(FakePin):
        def irq(self, handler=None, trigger=3, wake=None, hard=False):
            self.hard = hard
            FakePin.irq(self, handler, trigger)

    esp.machine.Pin = HardPin
    import esp32hal.s0input as s0

    s0.Pin = HardPin
    ring = EdgeRing(11)
    assert ring.hard is True and FakePin.made[11].hard is True
    esp.time.ms = 1234
    FakePin.made[11].handler(FakePin.made[11])
    got = []
    ring.drain(lambda t, lv: got.append(t))
    assert got == [1234]


def test_nonces_come_from_a_drbg_seeded_with_hardware_rng_and_adc_noise(esp, monkeypatch):
    from esp32hal import entropy

    reads = []

    class FakeADC:
        def __init__(self, pin):
            reads.append(pin.id)
            self.n = 0

        def read_u16(self):
            self.n += 1
            return (self.n * 2654435761) & 0xFFFF

    esp.machine.ADC = FakeADC
    hal = esp.factory.build_hal(variant("esp32_devkitc", RADIO="none"))
    assert isinstance(hal.random, entropy.Drbg) and reads == [36]
    a, b = hal.random(16), hal.random(40)
    assert len(a) == 16 and len(b) == 40 and a != b[:16]
    # the same hardware RNG output twice (pseudo-random with RF off) still gives fresh nonces
    monkeypatch.setattr(entropy.os, "urandom", lambda n: bytes(n))
    d = entropy.Drbg(None)
    assert d(16) != d(16)
