"""Scenarios under a real 32-bit MicroPython: the official WebAssembly port (npm package
@micropython/micropython-webassembly-pyscript, pinned in tools/wasm32/package.json), run by
Node through tools/wasm32/run.mjs. 4-byte pointers and 31-bit small ints, the ESP32's object
model: a value >= 2**30 is a heap-allocated long int, so under micropython.heap_lock() it is
a MemoryError the 64-bit unix port (63-bit small ints) cannot show.

Skipped only where node is missing, and never under CI (CI set): there node and the package
must be present (`make venv` runs `npm ci --prefix tools/wasm32`)."""

import os
import shutil
import subprocess

import pytest

from paths import FIRMWARE, MPY_SCENARIOS, ROOT, build_mpy, micropython_env, tool

WASM32 = os.path.join(ROOT, "tools", "wasm32")
RUNNER = os.path.join(WASM32, "run.mjs")
PACKAGE = os.path.join(WASM32, "node_modules", "@micropython",
                       "micropython-webassembly-pyscript", "micropython.mjs")
HEAP = "160k"

# The heap_lock and allocation scenarios of host_tests/mpy that need no socket, thread,
# termios or ffi (the port has none: the MQTT/TLS/UDP/A-route ones and the fake-board ones
# cannot run), plus the wasm32-only small-int proof.
SCENARIOS = [
    "scenario_meter_step_heap.py",
    "scenario_meter_step_heap_journal.py",
    "scenario_lastgasp_heap.py",
    "scenario_retained_heap.py",
    "scenario_tamper_alarm_heap.py",
    "scenario_limiter.py",
    "scenario_metering_core.py",
    "scenario_journal.py",
    "scenario_echonet.py",
    "scenario_broute_wisun.py",
    "scenario_mqtt_heap.py",
    "scenario_small_ints_2099.py",
    "scenario_ringlog.py",  # was a known defect: AuditLog.append's & 0xFFFFFFFF
]



@pytest.fixture(scope="module")
def wasm32(tmp_path_factory):
    """The firmware compiled by mpy-cross (as the board loads it) and the port's
    environment; skipped without node outside CI."""
    missing = None
    if shutil.which("node") is None:
        missing = "node is not installed"
    elif not os.path.isfile(PACKAGE):
        missing = "the wasm32 MicroPython package is not installed (npm ci --prefix tools/wasm32)"
    if missing:
        if os.environ.get("CI") or shutil.which("node") is not None:
            pytest.fail(missing + ": the 32-bit scenarios must run")
        pytest.skip(missing)
    mpy_dir = build_mpy(str(tmp_path_factory.mktemp("mpy32")))
    return micropython_env(mpy_dir), mpy_dir


def heap_of(name):
    with open(os.path.join(MPY_SCENARIOS, name)) as f:
        for line in f:
            if line.startswith("# scenario-heap:"):
                return line.split(":", 1)[1].split()[0]
    return HEAP


def run32(script, env, heap=HEAP, timeout=120):
    return subprocess.run(["node", RUNNER, "-X", "heapsize=" + heap, script],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


def last_line(r):
    lines = r.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def facts(r):
    return dict(ln.split(None, 2)[1:] for ln in r.stdout.splitlines() if ln.startswith("fact:"))


def test_the_port_is_32_bit_micropython_with_31_bit_small_ints(wasm32):
    env, _ = wasm32
    r = run32(os.path.join(WASM32, "facts.py"), env)
    assert r.returncode == 0 and last_line(r) == "PASS", r.stdout + r.stderr
    f = facts(r)
    assert f["implementation"] == "micropython" and f["platform"] == "webassembly"
    assert f["pointer_bytes"] == "4" and f["maxsize"] == str(2 ** 31 - 1)
    assert f["small_int_bits"] == "31" and f["small_int_max"] == "2**30-1"
    # 1 << 30 under heap_lock: MemoryError (a long int); 1 << 29 is a small int
    assert f["shift30_is_big"] == "True" and f["neg_shift30_is_big"] == "True"
    assert f["shift29_is_big"] == "False"
    assert f["heap_lock"] == f["mem_alloc"] == f["mem_free"] == "True"
    assert f["meter_from"].endswith("meter/__init__.mpy")  # mpy-cross's .mpy files import


def test_heap_lock_raises_for_a_long_int_and_the_runner_exits_non_zero(wasm32, tmp_path):
    env, _ = wasm32
    script = tmp_path / "shift.py"
    script.write_text("import micropython\n"
                      "def shift(n):\n"
                      "    return 1 << n\n"
                      "small = big = None\n"
                      "micropython.heap_lock()\n"
                      "try:\n"
                      "    small = shift(29) - 1 + shift(29)  # 2**30 - 1: a small int\n"
                      "    big = shift(30)\n"
                      "finally:\n"
                      "    micropython.heap_unlock()\n"
                      "    print('small', small, 'big', big)\n")
    r = run32(str(script), env)
    assert r.returncode == 1 and last_line(r) == "small 1073741823 big None", r.stdout + r.stderr
    assert "MemoryError" in r.stderr, r.stderr


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_on_wasm32(name, wasm32):
    env, _ = wasm32
    r = run32(os.path.join(MPY_SCENARIOS, name), env, heap_of(name))
    assert r.returncode == 0 and last_line(r) == "PASS", r.stdout[-3000:] + r.stderr[-3000:]


def test_a_planted_long_int_in_the_step_fails_on_wasm32_only(wasm32, tmp_path):
    """The 2099 scenario is not vacuous: minute * 86400 * 1000 in Meter.step() (ms since 2000,
    > 2**30 at any date) is a MemoryError under the lock on the 31-bit port, and goes
    unnoticed by the 64-bit unix port."""
    env, mpy_dir = wasm32
    planted = os.path.join(str(tmp_path), "mpy")
    shutil.copytree(mpy_dir, planted)
    with open(os.path.join(FIRMWARE, "meter", "app.py")) as f:
        src = f.read()
    step = src.index("    def step(self):")
    read = src.index("        now = self.now.read(self.clock)\n", step)
    read = src.index("\n", read) + 1
    src = src[:read] + "        _ms = now.ev_minute * 86400 * 1000  # planted\n" + src[read:]
    app = tmp_path / "app.py"
    app.write_text(src)
    subprocess.run([tool("mpy-cross"), "-o", os.path.join(planted, "meter", "app.mpy"), str(app)],
                   check=True, capture_output=True)
    penv = micropython_env(planted)
    scenario = os.path.join(MPY_SCENARIOS, "scenario_small_ints_2099.py")
    r32 = run32(scenario, penv)
    assert r32.returncode == 1 and "MemoryError" in r32.stderr, r32.stdout + r32.stderr
    r64 = subprocess.run([tool("micropython"), "-X", "heapsize=512k", scenario],
                         capture_output=True, text=True, timeout=120, cwd=ROOT, env=penv)
    assert r64.returncode == 0 and last_line(r64) == "PASS", r64.stdout + r64.stderr
