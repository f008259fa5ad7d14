"""Scenario scripts under host_tests/mpy/ run by the real MicroPython unix port, bounded heap.

Each script asserts its own expectations and prints PASS as its last line (or SKIP with a
reason when the port lacks a feature); anything else fails the test."""

import os
import subprocess

import pytest

from paths import MPY_SCENARIOS, ROOT, build_mpy, micropython_env, tool

HEAP = "160k"  # close to an ESP32 without PSRAM (~110 KB free for the application)


@pytest.fixture(scope="session")
def mpy_dir(tmp_path_factory):
    """The firmware as the board gets it: compiled by mpy-cross (one build per worker)."""
    return build_mpy(str(tmp_path_factory.mktemp("mpy")))


def scenarios():
    """The scenarios on the host HAL (scenario_board_* run on the fake ESP32: test_board_unix;
    a scenario with a "# scenario-runner: test_x.py" line needs a peer that test starts, a
    broker, and runs there)."""
    return sorted(f for f in os.listdir(MPY_SCENARIOS)
                  if f.startswith("scenario_") and not f.startswith("scenario_board_")
                  and not _runner(f))


def _runner(name):
    with open(os.path.join(MPY_SCENARIOS, name)) as f:
        for line in f:
            if line.startswith("# scenario-runner:"):
                return line.split(":", 1)[1].strip()
    return None


def script_heap(name):
    """The heap a scenario runs with: HEAP, or what its "# scenario-heap: N" line asks for
    (only a scenario whose simulated flash lives in the heap may ask for more)."""
    with open(os.path.join(MPY_SCENARIOS, name)) as f:
        for line in f:
            if line.startswith("# scenario-heap:"):
                return line.split(":", 1)[1].split()[0]
    return HEAP


def run_script(name, mpy_dir, heap=None, timeout=300, env=None):
    heap = heap or script_heap(name)
    return subprocess.run(
        [tool("micropython"), "-X", "heapsize=" + heap, os.path.join(MPY_SCENARIOS, name)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env=env or micropython_env(mpy_dir))


def test_the_port_is_real_micropython():
    r = subprocess.run([tool("micropython"), "-c",
                        "import sys; print(sys.implementation.name)"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() == "micropython"


@pytest.mark.parametrize("name", scenarios())
def test_scenario(name, mpy_dir):
    r = run_script(name, mpy_dir)
    lines = r.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    if last.startswith("SKIP"):
        pytest.skip(last)
    assert r.returncode == 0 and last == "PASS", r.stdout[-3000:] + r.stderr[-3000:]
