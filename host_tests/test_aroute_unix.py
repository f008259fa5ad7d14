"""The A-route on the real MicroPython unix port, compiled by mpy-cross, against a real
Mosquitto: host_tests/mpy/scenario_aroute_idle.py (birth, a three-hour backfill, pushes, then
the idle poll and the metering second under heap_lock). test_micropython_unix runs the same
scenario without a broker: SKIP."""

import os
import subprocess

import pytest

from broker import Mosquitto
from paths import MPY_SCENARIOS, ROOT, build_mpy, micropython_env, tool


@pytest.fixture
def mosquitto():
    with Mosquitto() as b:
        yield b


@pytest.fixture(scope="module")
def mpy_dir(tmp_path_factory):
    return build_mpy(str(tmp_path_factory.mktemp("mpy")))


def test_the_aroute_idle_poll_allocates_nothing_on_the_unix_port(mosquitto, mpy_dir):
    env = micropython_env(mpy_dir)
    env["MQTT_PORT"] = str(mosquitto.port)
    r = subprocess.run([tool("micropython"), "-X", "heapsize=900k",
                        os.path.join(MPY_SCENARIOS, "scenario_aroute_idle.py")],
                       capture_output=True, text=True, timeout=240, cwd=ROOT, env=env)
    print(r.stdout)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and lines and lines[-1] == "PASS", r.stdout[-3000:] + r.stderr
    assert any(line.startswith("aroute RAM:") for line in lines)
