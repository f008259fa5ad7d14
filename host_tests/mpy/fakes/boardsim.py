# Board harness for the unix-port board scenarios: runs the real firmware/main.py (its
# asyncio shell, bootguard, supervisor, build_hal, build_meter) on the fake chip (espchip +
# machine, esp32, network, time, select), and after each reset boots it again in the same
# process with fresh modules and the chip state the reset kept.
#
# The board sees its own filesystem: the unix port's VFS root is remounted onto a host
# directory (FAKE_BOARD_FS, else /tmp/fake_board_fs), the host tree moves to /host, so
# "/meter.key", "/secrets.json", "/skip_app" are the board's files, as on littlefs.
# Overrides given to setup() are set on board_config before main.py runs.
# World wiring (board_config names the pins): power-good driven at POWER_GOOD_LEVEL (mains
# up), the relay pad pulled by the board's resistor to the de-energised level (RELAY_PULL
# when the board names one, else 1 - RELAY_CLOSED_LEVEL) and watched, the feedback contact
# following the relay pad.

import gc
import os
import sys
import vfs

import espchip
import esp32

KEY = b"board-sim-key-0123456789abcdef!!"
_CHIPS = {"esp32": "esp32", "esp32s3": "esp32s3", "esp32c3": "esp32c3"}
_HOST = "/host"

root = None  # the repository (host path, under /host once mounted)
cfg = None  # board_config of the running boot
_keep = None  # modules loaded before the firmware (the fakes, this harness)
_overrides = {}
_board = None


def _find_root():
    for p in sys.path:
        if p.endswith("/board"):
            return p[:-len("/board")]
    raise RuntimeError("board/ is not on MICROPYPATH")


def _mount(fs):
    try:
        os.stat(fs)
    except OSError:
        os.mkdir(fs)
    vfs.umount("/")
    vfs.mount(vfs.VfsPosix("/"), _HOST)
    vfs.mount(vfs.VfsPosix(fs), "/")
    sys.path[:] = [_HOST + p if p.startswith("/") else p for p in sys.path]


def write_file(path, data):
    """A file on the board's filesystem (mpremote cp)."""
    with open(path, "wb") as f:
        f.write(data)


def remove_file(path):
    try:
        os.remove(path)
    except OSError:
        pass


def setup(board="esp32_devkitc", key=KEY, blank_fs=True, **overrides):
    """Power a factory-fresh board on for the first time: the board's partition table on
    an erased flash, a filesystem with the key (key=None: none provisioned)."""
    global root, _keep, _overrides, _board
    if "meter" in sys.modules or "esp32hal" in sys.modules:
        raise RuntimeError("import firmware modules after setup(): it moves the host tree")
    root = _find_root()
    fs = os.getenv("FAKE_BOARD_FS") or "/tmp/fake_board_fs"
    if root.startswith(_HOST):
        raise RuntimeError("setup() runs once per process")
    _mount(fs)
    root = _HOST + root
    if blank_fs:
        for name in os.listdir("/"):
            if name != "host":
                os.remove("/" + name)
    if key is not None:
        write_file("/meter.key", key)
    _board = board
    _overrides = overrides
    sys.path.append(root + "/board/" + board)
    import board_config as c

    espchip.power_on(_CHIPS[c.CHIP])
    esp32.erase_flash()
    esp32.load_table(root + "/board/" + board + "/partitions.csv")
    closed = c.RELAY_CLOSED_LEVEL
    espchip.ext_pull[c.PIN_RELAY] = getattr(c, "RELAY_PULL", 1 - closed)
    espchip.watch(c.PIN_RELAY)
    espchip.drive(c.PIN_POWER_GOOD, c.POWER_GOOD_LEVEL)
    fb = getattr(c, "PIN_RELAY_FEEDBACK", None)
    if fb is not None:
        lv = c.FEEDBACK_CLOSED_LEVEL
        espchip.drive(fb, lambda: lv if relay_closed() else 1 - lv)
    del sys.modules["board_config"]
    _keep = set(sys.modules)
    gc.collect()


def relay_closed():
    """The contact as the relay driver sees the pad (a floating pad: the board's pull)."""
    return espchip.level(cfg_pin("PIN_RELAY")) == cfg_pin("RELAY_CLOSED_LEVEL")


def cfg_pin(name):
    if cfg is not None:
        return getattr(cfg, name)
    import board_config as c

    return getattr(c, name)


def relay_log():
    """[(boot, ms, level)] every change of the relay pad since power-on."""
    return espchip.watched[cfg_pin("PIN_RELAY")]


def mains(up):
    espchip.drive(cfg_pin("PIN_POWER_GOOD"), cfg_pin("POWER_GOOD_LEVEL") if up else
                  1 - cfg_pin("POWER_GOOD_LEVEL"))


class Run:
    """One boot of firmware/main.py: what it ended with and the HAL and meter it built
    (captured from build_hal/build_meter, which are wrapped for that and nothing else)."""

    def __init__(self):
        self.hal = None
        self.meter = None
        self.outcome = None  # "stop", "repl" (main returned or raised), "idle", reset kind


faults = []  # [(part, method, fn)]: a firmware bug, meter.<part>.<method> is fn (None: raises)


def _bug(*args):
    raise RuntimeError("E_INJECTED_BUG")


def hang(*args):
    """A firmware bug that never yields: the board stops in it until the watchdog resets."""
    espchip.advance(1 << 28)


def _capture(run):
    import esp32hal.factory as factory
    import meter.assembly as assembly

    build_hal, build_meter = factory.build_hal, assembly.build_meter

    def hal_(*a, **k):
        run.hal = build_hal(*a, **k)
        return run.hal

    def meter_(*a, **k):
        m = run.meter = build_meter(*a, **k)
        for part, method, fn in faults:
            obj = m if part is None else getattr(m, part, None)
            if obj is not None:
                setattr(obj, method, fn or _bug)
        return m
    factory.build_hal, assembly.build_meter = hal_, meter_


def reset(kind):
    """Reset the chip from outside (EN pin, power, brown-out...) between two boots."""
    try:
        espchip.reset(kind)
    except espchip.Reset:
        pass


def at(after_ms, fn):
    """A world event after_ms from now (a reset clears the events still to come)."""
    espchip.at(espchip.ms + after_ms, fn)


def boot(stop_ms=None):
    """Start the firmware from scratch (RAM lost: every firmware module imported anew) and
    run firmware/main.py until stop_ms from now (Stop), a reset, or its end (returns to the
    REPL). Returns the Run; run.outcome says which. Call it first after setup(), then after
    each reset (a run that ended in "stop" needs reset() before the next boot)."""
    global cfg
    espchip.purge(_keep)
    gc.collect()
    import board_config as c

    for k, v in _overrides.items():
        setattr(c, k, v)
    cfg = c
    run = Run()
    _capture(run)
    if stop_ms is not None:
        espchip.stop_at(espchip.ms + stop_ms)
    try:
        import main  # noqa: F401  (runs the shell: it never returns while the meter runs)
        run.outcome = "repl"
    except espchip.Stop:
        run.outcome = "stop"
    except espchip.Reset as r:
        run.outcome = r.args[0]
    except espchip.Idle:
        run.outcome = "idle"
    except Exception as e:  # left main.py: the REPL; only a running watchdog resets
        sys.print_exception(e)
        run.outcome = "repl"
    if run.outcome == "repl" and espchip.wdt_timeout is not None:
        try:
            espchip.idle(-1)
        except espchip.Reset as r:
            run.outcome = r.args[0]
    return run
