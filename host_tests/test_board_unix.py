"""The board layer (board/esp32hal and firmware/main.py) on the real MicroPython unix port,
over a simulated ESP32 (host_tests/mpy/fakes: machine, esp32, network, time, select with the
ESP32 port's semantics and a reset model). Each host_tests/mpy/scenario_board_*.py boots
main.py as the board would, through resets, and prints PASS as its last line."""

import os

import pytest

from paths import MPY_SCENARIOS, micropython_env
from test_micropython_unix import mpy_dir, run_script  # noqa: F401  (the compiled firmware)


def board_scenarios():
    return sorted(f for f in os.listdir(MPY_SCENARIOS) if f.startswith("scenario_board_"))


def test_every_board_scenario_is_collected():
    assert {"scenario_board_blank.py", "scenario_board_populated.py",
            "scenario_board_relay_hold.py", "scenario_board_crash_loop.py",
            "scenario_board_fakes.py"} <= set(board_scenarios())


@pytest.mark.parametrize("name", board_scenarios())
def test_board_scenario(name, mpy_dir, tmp_path):  # noqa: F811
    env = micropython_env(mpy_dir, fakes=True)
    env["FAKE_BOARD_FS"] = str(tmp_path)  # the board's own filesystem (littlefs on the chip)
    r = run_script(name, mpy_dir, env=env)
    lines = r.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    if last.startswith("SKIP"):
        pytest.skip(last)
    assert r.returncode == 0 and last == "PASS", r.stdout[-3000:] + r.stderr[-3000:]
